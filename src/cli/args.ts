/**
 * Strict argument parsing for citty-style argument definitions. citty's own parser silently
 * accepts unknown flags and extra positionals, and a typo such as `--apend` must not be
 * ignored on a command that reboots the machine; it also pulls consola into every start.
 */
import type { ArgsDef, ParsedArgs } from "citty";
import { ExitCode, NvwaError } from "../errors.ts";
import { suggestKey } from "../config/suggest.ts";

function usageError(command: string, message: string, hint?: string): NvwaError {
  return new NvwaError("cli.usage", message, {
    exitCode: ExitCode.usage,
    hint: hint ?? `see \`nvwa help ${command}\``,
  });
}

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function parseStrict<T extends ArgsDef>(command: string, def: T, rawArgs: string[]): ParsedArgs<T> {
  const flags = new Map<string, "boolean" | "string">();
  const positionals: { name: string; required: boolean }[] = [];
  for (const [name, arg] of Object.entries(def)) {
    if (arg.type === "positional") {
      positionals.push({ name, required: arg.required !== false });
      continue;
    }
    const kind = arg.type === "boolean" ? "boolean" : "string";
    flags.set(kebab(name), kind);
    const alias = "alias" in arg ? arg.alias : undefined;
    const aliases = alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
    for (const a of aliases) flags.set(a, kind);
  }
  const given: string[] = [];
  const values: Record<string, string | boolean> = {};
  const canonical = new Map<string, string>();
  for (const [name, arg] of Object.entries(def)) {
    if (arg.type === "positional") continue;
    canonical.set(kebab(name), name);
    const alias = "alias" in arg ? arg.alias : undefined;
    for (const a of alias === undefined ? [] : Array.isArray(alias) ? alias : [alias]) canonical.set(a, name);
  }
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i] ?? "";
    if (a === "--") {
      given.push(...rawArgs.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      given.push(a);
      continue;
    }
    const name = a.replace(/^--?/, "").split("=")[0] ?? "";
    const bare = name.startsWith("no-") && flags.get(name.slice(3)) === "boolean" ? name.slice(3) : name;
    const kind = flags.get(bare);
    if (kind === undefined) {
      const guess = suggestKey(name, [...flags.keys()]);
      throw usageError(command, `unknown option "${a}" for \`nvwa ${command}\``, guess === undefined ? undefined : `did you mean --${guess}? (see \`nvwa help ${command}\`)`);
    }
    const key = canonical.get(bare) ?? bare;
    if (kind === "boolean") {
      if (a.includes("=")) throw usageError(command, `option "--${bare}" takes no value`);
      values[key] = name === bare;
      continue;
    }
    if (a.includes("=")) {
      values[key] = a.slice(a.indexOf("=") + 1);
      continue;
    }
    const next = rawArgs[i + 1];
    if (next === undefined || (next.startsWith("-") && next.length > 1 && !/^-[^-]/.test(next))) {
      throw usageError(command, `option "${a}" needs a value`);
    }
    values[key] = next;
    i++;
  }
  const required = positionals.filter((p) => p.required);
  if (given.length < required.length) {
    const missing = required[given.length];
    throw usageError(command, `\`nvwa ${command}\` needs <${missing?.name ?? "argument"}>`);
  }
  if (given.length > positionals.length) {
    throw usageError(command, `unexpected argument "${given[positionals.length]}" for \`nvwa ${command}\``);
  }
  positionals.forEach((p, i) => {
    if (given[i] !== undefined) values[p.name] = given[i];
  });
  return { _: given, ...values } as ParsedArgs<T>;
}
