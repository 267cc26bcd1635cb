/**
 * The CLI's own writes to stdout and stderr. They go through Bun.write on fds 1 and 2, not
 * process.stdout/process.stderr: the first touch of either builds Node's stream machinery,
 * ~25 ms of CPU per start in a compiled nvwa, as much as the rest of `nvwa --help`.
 *
 * A reader that went away (`nvwa status --json | head -1`) is not an error of nvwa's: the rest
 * of the output is dropped quietly. Any other write error (a full disk behind `>file`) is one.
 */
import { ExitCode, NvwaError } from "../errors.ts";

async function write(fd: 1 | 2, text: string): Promise<void> {
  if (text === "") return;
  try {
    await Bun.write(fd === 1 ? Bun.stdout : Bun.stderr, text);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EPIPE") return;
    const name = fd === 1 ? "standard output" : "standard error";
    throw new NvwaError("cli.output", `cannot write to ${name}: ${code ?? String(e)}`, {
      exitCode: ExitCode.failed,
      hint: `check where ${name} goes (a full disk, a closed file)`,
      cause: e,
    });
  }
}

export function writeOut(text: string): Promise<void> {
  return write(1, text);
}

export function writeErr(text: string): Promise<void> {
  return write(2, text);
}
