import { defineCommand } from "./define.ts";
import { ExitCode, NvwaError } from "../errors.ts";
import { COMMANDS, findCommand } from "./commands.ts";
import { argsOf, globalRows } from "./arg-defs.ts";
import { writeOut } from "./output.ts";

const VERSION = process.env.NVWA_BUILD_VERSION ?? "0.1.0";

/** Help rows as two columns, the second starting three spaces after the longest first. */
function columns(rows: [string, string][]): string[] {
  const width = Math.max(0, ...rows.map(([o]) => o.length)) + 3;
  return rows.map(([o, d]) => `   ${o.padEnd(width)}${d}`);
}

export function mainHelp(): string {
  const visible = COMMANDS.filter((c) => !c.hidden);
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
    ...columns(visible.map((c) => [[c.name, ...(c.aliases ?? [])].join(", "), c.summary])),
    "",
    "GLOBAL OPTIONS:",
    ...columns(globalRows()),
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
  return [
    "NAME:",
    `   nvwa ${c.name} - ${c.summary}`,
    "",
    "USAGE:",
    `   ${c.usage}`,
    ...(c.options.length === 0 ? [] : ["", "OPTIONS:", ...columns(c.options)]),
    "",
  ].join("\n");
}

export function versionText(): string {
  return `nvwa ${VERSION}\n`;
}

export const command = defineCommand({
  meta: { name: "help" },
  args: argsOf("help"),
  async run({ args }) {
    await writeOut(args.command ? commandHelp(args.command) : mainHelp());
    return ExitCode.ok;
  },
});
