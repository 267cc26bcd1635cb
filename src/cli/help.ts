import { defineCommand } from "./define.ts";
import { ExitCode, NvwaError } from "../errors.ts";
import { COMMANDS, findCommand } from "./commands.ts";
import { ARGS } from "./arg-defs.ts";
import { writeOut } from "./output.ts";

const VERSION = process.env.NVWA_BUILD_VERSION ?? "0.1.0";

export function mainHelp(): string {
  const visible = COMMANDS.filter((c) => !c.hidden);
  const title = (c: (typeof visible)[number]): string => [c.name, ...(c.aliases ?? [])].join(", ");
  const width = Math.max(...visible.map((c) => title(c).length)) + 3;
  return [
    "NAME:",
    "   nvwa - kernel hot upgrade: move to a new kernel while chosen processes and services keep running",
    "",
    "USAGE:",
    "   nvwa [global options] command [command options] [arguments...]",
    "",
    "VERSION:",
    `   ${VERSION}`,
    "",
    "COMMANDS:",
    ...visible.map((c) => `   ${title(c).padEnd(width)}${c.summary}`),
    "",
    "GLOBAL OPTIONS:",
    "   --config-dir DIR   configuration directory (default /etc/nvwa, or $NVWA_CONFIG_DIR)",
    "   --verbose, -v      show debug output",
    "   --help, -h         show help",
    "   --version, -V      print the version",
    "",
    "Targets come from /etc/nvwa/nvwa-restore.yaml (pids, services); paths from nvwa-server.yaml.",
    "Exit codes: 0 ok, 1 failed (rolled back), 2 bad input, 3 preflight failed, 4 daemon unreachable,",
    "5 restored with failures, 70 internal error.",
    "",
  ].join("\n");
}

export function commandHelp(name: string): string {
  const c = findCommand(name);
  if (c === undefined) {
    throw new NvwaError("cli.unknown-command", `no command "${name}"`, { exitCode: ExitCode.usage, hint: "run `nvwa help` for the list" });
  }
  const width = Math.max(0, ...c.options.map(([o]) => o.length)) + 3;
  return [
    "NAME:",
    `   nvwa ${c.name} - ${c.summary}`,
    "",
    "USAGE:",
    `   ${c.usage}`,
    ...(c.options.length === 0 ? [] : ["", "OPTIONS:", ...c.options.map(([o, d]) => `   ${o.padEnd(width)}${d}`)]),
    "",
  ].join("\n");
}

export function versionText(): string {
  return `nvwa ${VERSION}\n`;
}

export const command = defineCommand({
  meta: { name: "help" },
  args: ARGS.help,
  async run({ args }) {
    await writeOut(args.command ? commandHelp(args.command) : mainHelp());
    return ExitCode.ok;
  },
});
