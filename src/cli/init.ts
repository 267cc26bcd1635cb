import { defineCommand } from "citty";
import { notAvailableYet } from "./not-yet.ts";

export const command = defineCommand({
  meta: { name: "init" },
  args: { "config-dir": { type: "string" } },
  run() {
    notAvailableYet("init");
  },
});
