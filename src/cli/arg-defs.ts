/**
 * Every command's arguments, in one module that imports nothing. The dispatcher parses (and
 * refuses) a command line with these before it loads the command's implementation, so a typo
 * such as `nvwa status --jsn` costs no yaml, valibot or criu code; the command files use the
 * same objects, so there is one definition of each.
 */
import type { ArgsDef } from "citty";

/** Identity, for literal types ("positional", "boolean") in the definitions below. */
const args = <T extends ArgsDef>(def: T): T => def;

export const ARGS = {
  update: args({
    version: { type: "positional", required: true, description: "kernel version" },
    append: { type: "string" },
    remove: { type: "string" },
    fast: { type: "boolean" },
    "config-dir": { type: "string" },
  }),
  check: args({
    version: { type: "positional", required: false, description: "kernel version to check loading (as `uname -r` prints it)" },
    json: { type: "boolean", description: "print { ok, checks } as JSON" },
    rehearse: { type: "boolean", description: "also checkpoint and resume each target" },
    "config-dir": { type: "string", description: "directory with nvwa-restore.yaml and nvwa-server.yaml" },
  }),
  status: args({ json: { type: "boolean" }, "config-dir": { type: "string" } }),
  init: args({ force: { type: "boolean" }, "config-dir": { type: "string" } }),
  server: args({ "config-dir": { type: "string" } }),
  restore: args({ service: { type: "positional", required: true, description: "unit" }, "config-dir": { type: "string" } }),
  help: args({ command: { type: "positional", required: false, description: "command to describe" } }),
};

export type CommandName = keyof typeof ARGS;
