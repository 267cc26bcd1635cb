import { defineCommand } from "citty";
import { notAvailableYet } from "./not-yet.ts";

export const command = defineCommand({
  meta: { name: "status" },
  args: { json: { type: "boolean" }, "config-dir": { type: "string" } },
  run() {
    notAvailableYet("status");
  },
});
