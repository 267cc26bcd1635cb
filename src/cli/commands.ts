/**
 * The command table. Modules load lazily so `nvwa --help` and `nvwa status` do not pay for
 * the D-Bus, netlink and criu code they never touch, and a command line is parsed (and a
 * usage error reported) before its command's module is loaded at all. This module and what it
 * imports stay free of yaml, valibot, consola, node:fs and bun:ffi: they are on every start.
 */
import type { CommandDef } from "citty";
import { argsOf, type ArgsOf, type CommandName, optionRows, usageLine } from "./arg-defs.ts";
import { parseStrict } from "./args.ts";

/** What the dispatcher needs of a command: a way to run it with its raw arguments. */
export interface CommandModule {
  run(rawArgs: string[]): Promise<unknown>;
}

/**
 * Each command file exports a citty-style command (its args are argsOf(name)); its run() may
 * return an ExitCode. The arguments are checked first; the module is imported only for a
 * command line that is going to run.
 */
function lazy<C extends CommandName>(name: C, importer: () => Promise<{ command: CommandDef<ArgsOf<C>> }>): () => Promise<CommandModule> {
  return async () => ({
    async run(rawArgs) {
      const args = parseStrict(name, argsOf(name), rawArgs);
      const c = (await importer()).command;
      return c.run?.({ rawArgs, args, cmd: c, data: undefined });
    },
  });
}

/** A command as the table below writes it; its usage line and options come from arg-defs.ts. */
interface CommandSpec {
  name: CommandName;
  summary: string;
  /** Other names the command answers to (the original's help lists `help, h`). */
  aliases?: string[];
  hidden?: boolean;
  load(): Promise<CommandModule>;
}

export interface CommandEntry extends CommandSpec {
  /** `nvwa help [command]  (or nvwa h [command])`. */
  usage: string;
  /** The help rows of its options: [`--append PARAMS`, what it does]. */
  options: [string, string][];
}

function entry(c: CommandSpec): CommandEntry {
  const [first = "", ...more] = [c.name, ...(c.aliases ?? [])].map((spelling) => usageLine(c.name, spelling));
  return { ...c, usage: more.length === 0 ? first : `${first}  (or ${more.join(", ")})`, options: optionRows(c.name) };
}

const TABLE: CommandSpec[] = [
  {
    name: "update",
    summary: "move to /boot/vmlinuz-<kernel-version>, keeping the configured processes and services running",
    load: lazy("update", () => import("./update.ts")),
  },
  {
    name: "check",
    summary: "run every preflight check (and, with --rehearse, a checkpoint rehearsal) without changing anything",
    load: lazy("check", () => import("./check.ts")),
  },
  {
    name: "status",
    summary: "show the last update: kernels, each target's phase, timings and errors",
    load: lazy("status", () => import("./status.ts")),
  },
  {
    name: "init",
    summary: "wipe saved state: images, manifest, nvwa's systemd drop-ins, a loaded kernel",
    load: lazy("init", () => import("./init.ts")),
  },
  {
    name: "server",
    summary: "run the daemon (started by nvwa.service; restores after a jump, performs updates)",
    load: lazy("server", () => import("./server.ts")),
  },
  {
    name: "restore",
    summary: "restore one service (used by nvwa's drop-in as the unit's ExecStart after a jump)",
    hidden: true,
    load: lazy("restore", () => import("./restore.ts")),
  },
  {
    name: "help",
    aliases: ["h"],
    summary: "show this help, or a command's",
    load: lazy("help", () => import("./help.ts")),
  },
];

export const COMMANDS: CommandEntry[] = TABLE.map(entry);

export function findCommand(name: string): CommandEntry | undefined {
  return COMMANDS.find((c) => c.name === name || (c.aliases ?? []).includes(name));
}
