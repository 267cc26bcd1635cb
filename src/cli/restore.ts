import { defineCommand } from "citty";
import { notAvailableYet } from "./not-yet.ts";

export const command = defineCommand({
  meta: { name: "restore" },
  args: { service: { type: "positional", required: true, description: "unit" }, "config-dir": { type: "string" } },
  run() {
    notAvailableYet("restore");
  },
});
