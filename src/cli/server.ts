import { defineCommand } from "citty";
import { notAvailableYet } from "./not-yet.ts";

export const command = defineCommand({
  meta: { name: "server" },
  args: { "config-dir": { type: "string" } },
  run() {
    notAvailableYet("server");
  },
});
