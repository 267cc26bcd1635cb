import { defineCommand } from "citty";
import { notAvailableYet } from "./not-yet.ts";

export const command = defineCommand({
  meta: { name: "check" },
  args: { version: { type: "positional", required: false }, json: { type: "boolean" }, rehearse: { type: "boolean" }, "config-dir": { type: "string" } },
  run() {
    notAvailableYet("check");
  },
});
