import { defineCommand } from "citty";
import { notAvailableYet } from "./not-yet.ts";

export const command = defineCommand({
  meta: { name: "update" },
  args: { version: { type: "positional", required: true, description: "kernel version" }, append: { type: "string" }, remove: { type: "string" }, fast: { type: "boolean" }, "config-dir": { type: "string" } },
  run() {
    notAvailableYet("update");
  },
});
