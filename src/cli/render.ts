/**
 * How errors reach a person: one line, what is wrong and how to fix it, never a stack trace.
 * (Set NVWA_DEBUG=1 to see the stack of an internal error.)
 */
import { ExitCode, toNvwaError } from "../errors.ts";

export function renderError(e: unknown): { line: string; exitCode: ExitCode } {
  const err = toNvwaError(e);
  const hint = err.hint === undefined ? "" : ` — ${err.hint}`;
  return { line: `nvwa: ${err.message}${hint} [${err.code}]`, exitCode: err.exitCode };
}

export function printError(e: unknown): ExitCode {
  const { line, exitCode } = renderError(e);
  process.stderr.write(`${line}\n`);
  if (process.env.NVWA_DEBUG === "1" && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return exitCode;
}
