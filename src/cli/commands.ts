/**
 * The command table. Modules load lazily so `nvwa --help` and `nvwa status` do not pay for
 * the D-Bus, netlink and criu code they never touch, and a command line is parsed (and a
 * usage error reported) before its command's module is loaded at all. This module and what it
 * imports stay free of yaml, valibot, consola, node:fs and bun:ffi: they are on every start.
 */
import type { ArgsDef, CommandDef } from "citty";
import { ARGS, type CommandName } from "./arg-defs.ts";
import { parseStrict } from "./args.ts";

/** What the dispatcher needs of a command: a way to run it with its raw arguments. */
export interface CommandModule {
  run(rawArgs: string[]): Promise<unknown>;
}

/**
 * Each command file exports a citty-style command (its args are ARGS[name]); its run() may
 * return an ExitCode. The arguments are checked first; the module is imported only for a
 * command line that is going to run.
 */
function lazy<T extends ArgsDef>(name: CommandName, def: T, importer: () => Promise<{ command: CommandDef<T> }>): () => Promise<CommandModule> {
  return async () => ({
    async run(rawArgs) {
      const args = parseStrict(name, def, rawArgs);
      const c = (await importer()).command;
      return c.run?.({ rawArgs, args, cmd: c, data: undefined });
    },
  });
}

export interface CommandEntry {
  name: string;
  usage: string;
  summary: string;
  options: [string, string][];
  /** Other names the command answers to (the original's help lists `help, h`). */
  aliases?: string[];
  hidden?: boolean;
  load(): Promise<CommandModule>;
}

const COMMON: [string, string][] = [["--config-dir DIR", "read nvwa-restore.yaml and nvwa-server.yaml from DIR (default /etc/nvwa, or $NVWA_CONFIG_DIR)"]];

export const COMMANDS: CommandEntry[] = [
  {
    name: "update",
    usage: "nvwa update <kernel-version> [--append PARAMS] [--remove PARAMS] [--fast]",
    summary: "move to /boot/vmlinuz-<kernel-version>, keeping the configured processes and services running",
    options: [
      ["--append PARAMS", "add kernel command-line parameters for the new kernel"],
      ["--remove PARAMS", "drop these parameters (by name) from the running command line"],
      ["--fast", "jump with reboot(KEXEC) right after sync, without systemd's orderly shutdown"],
      ...COMMON,
    ],
    load: lazy("update", ARGS.update, () => import("./update.ts")),
  },
  {
    name: "check",
    usage: "nvwa check [kernel-version] [--json] [--rehearse]",
    summary: "run every preflight check (and, with --rehearse, a checkpoint rehearsal) without changing anything",
    options: [
      ["--json", "print the checks as JSON"],
      ["--rehearse", "checkpoint each target and resume it at once, reporting freeze time and image size"],
      ...COMMON,
    ],
    load: lazy("check", ARGS.check, () => import("./check.ts")),
  },
  {
    name: "status",
    usage: "nvwa status [--json]",
    summary: "show the last update: kernels, each target's phase, timings and errors",
    options: [["--json", "print the manifest as JSON"], ...COMMON],
    load: lazy("status", ARGS.status, () => import("./status.ts")),
  },
  {
    name: "init",
    usage: "nvwa init [--force]",
    summary: "wipe saved state: images, manifest, nvwa's systemd drop-ins, a loaded kernel",
    options: [["--force", "also discard images of processes still waiting for their restore"], ...COMMON],
    load: lazy("init", ARGS.init, () => import("./init.ts")),
  },
  {
    name: "server",
    usage: "nvwa server",
    summary: "run the daemon (started by nvwa.service; restores after a jump, performs updates)",
    options: COMMON,
    load: lazy("server", ARGS.server, () => import("./server.ts")),
  },
  {
    name: "restore",
    usage: "nvwa restore <service>",
    summary: "restore one service (used by nvwa's drop-in as the unit's ExecStart after a jump)",
    options: COMMON,
    hidden: true,
    load: lazy("restore", ARGS.restore, () => import("./restore.ts")),
  },
  {
    name: "help",
    aliases: ["h"],
    usage: "nvwa help [command]  (or nvwa h [command])",
    summary: "show this help, or a command's",
    options: [],
    load: lazy("help", ARGS.help, () => import("./help.ts")),
  },
];

export function findCommand(name: string): CommandEntry | undefined {
  return COMMANDS.find((c) => c.name === name || (c.aliases ?? []).includes(name));
}
