/**
 * Entry point: global options, the original's `nvwa -server 1` spelling, dispatch to a
 * command, and the one place that turns errors into a line on stderr and an exit code.
 */
import { ExitCode, NvwaError } from "../errors.ts";
import { COMMANDS, findCommand } from "./commands.ts";
import { GLOBAL_OPTIONS, type GlobalName, type OptionSpec } from "./arg-defs.ts";
import { commandHelp, mainHelp, versionText } from "./help.ts";
import { printError } from "./render.ts";
import { writeOut } from "./output.ts";
import { suggestKey } from "../config/suggest.ts";

/** Which option `arg` spells, if the dispatcher takes it there, and a value given with `=`. */
function globalOption(arg: string, beforeCommand: boolean): { name: GlobalName; spec: OptionSpec; inline?: string } | undefined {
  for (const [name, spec] of GLOBAL_OPTIONS) {
    if (!beforeCommand && spec.anywhere !== true) continue;
    if (arg === `--${name}` || (spec.alias !== undefined && arg === `-${spec.alias}`)) return { name, spec };
    if (spec.type === "string" && arg.startsWith(`--${name}=`)) return { name, spec, inline: arg.slice(`--${name}=`.length) };
  }
  return undefined;
}

/**
 * Global options (OPTIONS in arg-defs.ts with a `global` text) may stand before the command,
 * and those marked `anywhere` after it too; they are consumed here, the rest is the command's.
 */
export function splitGlobal(argv: string[]): { command: string | undefined; rest: string[]; help: boolean; version: boolean } {
  const rest: string[] = [];
  let command: string | undefined;
  const given: Partial<Record<GlobalName, string | true>> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    // The original daemon was started as `nvwa -server 1`; its unit files still say so.
    if (command === undefined && (a === "-server" || a === "--server")) {
      command = "server";
      if (argv[i + 1] === "1" || argv[i + 1] === "true") i++;
      continue;
    }
    const option = globalOption(a, command === undefined);
    if (option !== undefined) {
      const { name, spec } = option;
      if (spec.type === "boolean") {
        given[name] = true;
        continue;
      }
      const value = option.inline ?? argv[++i];
      if (value === undefined) {
        throw new NvwaError("cli.usage", `option "--${name}" needs a value`, { exitCode: ExitCode.usage, hint: `nvwa --${name} ${spec.example ?? spec.value ?? "VALUE"} <command>` });
      }
      given[name] = value;
      continue;
    }
    if (command !== undefined) rest.push(a);
    else if (!a.startsWith("-")) command = a;
    else throw new NvwaError("cli.usage", `unknown global option "${a}"`, { exitCode: ExitCode.usage, hint: "run `nvwa help` for the options" });
  }
  // What the global options do; how they are spelled is OPTIONS' business.
  if (given.verbose === true) process.env.NVWA_LOG_LEVEL = "debug";
  if (typeof given["config-dir"] === "string") process.env.NVWA_CONFIG_DIR = given["config-dir"];
  return { command, rest, help: given.help === true, version: given.version === true };
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
