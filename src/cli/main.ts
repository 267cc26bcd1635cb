/**
 * Entry point: global options, the original's `nvwa -server 1` spelling, dispatch to a
 * command, and the one place that turns errors into a line on stderr and an exit code.
 */
import { ExitCode, NvwaError } from "../errors.ts";
import { COMMANDS, findCommand } from "./commands.ts";
import { commandHelp, mainHelp, versionText } from "./help.ts";
import { printError } from "./render.ts";
import { writeOut } from "./output.ts";
import { suggestKey } from "../config/suggest.ts";

/** Global options may stand before the command; they are moved behind it or consumed here. */
export function splitGlobal(argv: string[]): { command: string | undefined; rest: string[]; help: boolean; version: boolean } {
  const rest: string[] = [];
  let command: string | undefined;
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (command === undefined) {
      // The original daemon was started as `nvwa -server 1`; its unit files still say so.
      if (a === "-server" || a === "--server") {
        command = "server";
        if (argv[i + 1] === "1" || argv[i + 1] === "true") i++;
        continue;
      }
      if (a === "-h" || a === "--help") { help = true; continue; }
      if (a === "-V" || a === "--version") { version = true; continue; }
      if (a === "-v" || a === "--verbose") { process.env.NVWA_LOG_LEVEL = "debug"; continue; }
      if (a === "--config-dir" || a.startsWith("--config-dir=")) {
        const value = a.includes("=") ? a.slice("--config-dir=".length) : argv[++i];
        if (value === undefined) throw new NvwaError("cli.usage", `option "--config-dir" needs a value`, { exitCode: ExitCode.usage, hint: "nvwa --config-dir /etc/nvwa <command>" });
        process.env.NVWA_CONFIG_DIR = value;
        continue;
      }
      if (a.startsWith("-")) {
        throw new NvwaError("cli.usage", `unknown global option "${a}"`, { exitCode: ExitCode.usage, hint: "run `nvwa help` for the options" });
      }
      command = a;
      continue;
    }
    if (a === "-h" || a === "--help") { help = true; continue; }
    if (a === "-v" || a === "--verbose") { process.env.NVWA_LOG_LEVEL = "debug"; continue; }
    rest.push(a);
  }
  return { command, rest, help, version };
}

export async function main(argv: string[]): Promise<ExitCode> {
  try {
    const { command, rest, help, version } = splitGlobal(argv);
    if (version) {
      await writeOut(versionText());
      return ExitCode.ok;
    }
    const entry = command === undefined ? undefined : findCommand(command);
    if (command === undefined || (entry?.name === "help" && rest.length === 0)) {
      await writeOut(mainHelp());
      return help || entry?.name === "help" ? ExitCode.ok : ExitCode.usage;
    }
    if (entry === undefined) {
      const guess = suggestKey(command, COMMANDS.filter((c) => !c.hidden).map((c) => c.name));
      throw new NvwaError("cli.unknown-command", `unknown command "${command}"`, {
        exitCode: ExitCode.usage,
        hint: guess === undefined ? "run `nvwa help` for the list of commands" : `did you mean \`nvwa ${guess}\`?`,
      });
    }
    if (help) {
      await writeOut(commandHelp(entry.name));
      return ExitCode.ok;
    }
    const mod = await entry.load();
    const result = await mod.run(rest);
    return typeof result === "number" ? (result as ExitCode) : ExitCode.ok;
  } catch (e) {
    return await printError(e);
  }
}
