/**
 * Commands are described with citty's types (CommandDef/ArgsDef), but citty's runtime is kept
 * off the start-up path: importing it loads consola, which costs about as much as Bun's own
 * start (BENCHMARKS.md, CLI cold start). defineCommand is an identity function, as in citty.
 */
import type { ArgsDef, CommandDef } from "citty";

export function defineCommand<T extends ArgsDef>(def: CommandDef<T>): CommandDef<T> {
  return def;
}
