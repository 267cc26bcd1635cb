/**
 * The command table. Modules load lazily so `nvwa --help` and `nvwa status` do not pay for
 * the D-Bus, netlink and criu code they never touch.
 */
import type { ArgsDef, CommandDef } from "citty";
import { parseStrict } from "./args.ts";

/** What the dispatcher needs of a command: a way to run it with its raw arguments. */
export interface CommandModule {
  run(rawArgs: string[]): Promise<unknown>;
}

/** Each command file exports a citty-style command; its run() may return an ExitCode. */
function wrap<T extends ArgsDef>(c: CommandDef<T>, name: string): CommandModule {
  return {
    async run(rawArgs) {
      const def = (typeof c.args === "function" ? await c.args() : await c.args) ?? ({} as T);
      const args = parseStrict(name, def, rawArgs);
      return c.run?.({ rawArgs, args, cmd: c, data: undefined });
    },
  };
}

export interface CommandEntry {
  name: string;
  usage: string;
  summary: string;
  options: [string, string][];
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
    load: async () => wrap((await import("./update.ts")).command, "update"),
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
    load: async () => wrap((await import("./check.ts")).command, "check"),
  },
  {
    name: "status",
    usage: "nvwa status [--json]",
    summary: "show the last update: kernels, each target's phase, timings and errors",
    options: [["--json", "print the manifest as JSON"], ...COMMON],
    load: async () => wrap((await import("./status.ts")).command, "status"),
  },
  {
    name: "init",
    usage: "nvwa init [--force]",
    summary: "wipe saved state: images, manifest, nvwa's systemd drop-ins, a loaded kernel",
    options: [["--force", "also discard images of processes still waiting for their restore"], ...COMMON],
    load: async () => wrap((await import("./init.ts")).command, "init"),
  },
  {
    name: "server",
    usage: "nvwa server",
    summary: "run the daemon (started by nvwa.service; restores after a jump, performs updates)",
    options: COMMON,
    load: async () => wrap((await import("./server.ts")).command, "server"),
  },
  {
    name: "restore",
    usage: "nvwa restore <service>",
    summary: "restore one service (used by nvwa's drop-in as the unit's ExecStart after a jump)",
    options: COMMON,
    hidden: true,
    load: async () => wrap((await import("./restore.ts")).command, "restore"),
  },
  {
    name: "help",
    usage: "nvwa help [command]",
    summary: "show this help, or a command's",
    options: [],
    load: async () => wrap((await import("./help.ts")).command, "help"),
  },
];

export function findCommand(name: string): CommandEntry | undefined {
  return COMMANDS.find((c) => c.name === name);
}
