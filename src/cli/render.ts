/**
 * How errors reach a person: one line, what is wrong and how to fix it, never a stack trace.
 * (Set NVWA_DEBUG=1 to see the stack of an internal error.) An error that lists several
 * problems (a refused update's failed checks, several config typos) has a message of several
 * lines: its first line, then one indented line per problem, then the hint on a last indented
 * line that ends with the code.
 */
import { ExitCode, toNvwaError } from "../errors.ts";
import { writeErr } from "./output.ts";

export function renderError(e: unknown): { line: string; exitCode: ExitCode } {
  const err = toNvwaError(e);
  if (err.message.includes("\n")) {
    const [head = "", ...rest] = err.message.split("\n");
    const lines = [`nvwa: ${head}`, ...rest.filter((l) => l.trim() !== "").map((l) => (l.startsWith("  ") ? l : `  ${l}`))];
    if (err.hint === undefined) lines[lines.length - 1] += ` [${err.code}]`;
    else lines.push(`  ${err.hint} [${err.code}]`);
    return { line: lines.join("\n"), exitCode: err.exitCode };
  }
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
