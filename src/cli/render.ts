/**
 * How errors reach a person: one line, what is wrong and how to fix it, never a stack trace.
 * (Set NVWA_DEBUG=1 to see the stack of an internal error.)
 */
import { ExitCode, toNvwaError } from "../errors.ts";
import { writeErr } from "./output.ts";

export function renderError(e: unknown): { line: string; exitCode: ExitCode } {
  const err = toNvwaError(e);
  const hint = err.hint === undefined ? "" : ` — ${err.hint}`;
  return { line: `nvwa: ${err.message}${hint} [${err.code}]`, exitCode: err.exitCode };
}

export async function printError(e: unknown): Promise<ExitCode> {
  const { line, exitCode } = renderError(e);
  const stack = process.env.NVWA_DEBUG === "1" && e instanceof Error && e.stack ? `${e.stack}\n` : "";
  try {
    await writeErr(`${line}\n${stack}`);
  } catch {
    // stderr itself is broken (a full disk behind 2>file): the exit code still says it failed.
  }
  return exitCode;
}
