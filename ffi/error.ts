/**
 * The one error type of nvwa, kept in the lowest layer so that ffi/ (which imports nothing from
 * src/) throws the same type the rest of the program catches. src/ imports it from
 * src/errors.ts, which re-exports it; nothing here may import anything.
 *
 * Every failure nvwa reports to a person goes through NvwaError: a stable code for scripts and
 * tests, one human sentence, and a hint saying how to fix it. The CLI prints these on one line
 * each and never a stack trace (see src/cli/render.ts).
 */

/** Process exit codes. Documented in README.md ("Exit codes"); keep the two in step. */
export const ExitCode = {
  ok: 0,
  /** An operation failed; state was rolled back or left untouched. */
  failed: 1,
  /** Bad input: CLI arguments, config files, kernel names, socket requests. Nothing changed. */
  usage: 2,
  /** A preflight check failed (`nvwa check`, or the start of `nvwa update`). Nothing changed. */
  preflight: 3,
  /** The daemon could not be reached or refused the request. */
  daemon: 4,
  /** Restore after the jump finished, but some targets could not be restored. */
  partial: 5,
  /** Nothing to do: `update --latest` found no installed kernel newer than the running one. */
  current: 6,
  /** `status --wait` gave up before the update finished. */
  timeout: 7,
  /** A bug in nvwa itself. */
  internal: 70,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface NvwaErrorOptions {
  hint?: string;
  exitCode?: ExitCode;
  cause?: unknown;
  /** Structured facts for --json output and tests (errno name, path, pid, ...). */
  details?: Record<string, unknown>;
}

export class NvwaError extends Error {
  override readonly name = "NvwaError";
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: NvwaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.failed;
    this.details = options.details ?? {};
  }

  toJSON(): { code: string; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(Object.keys(this.details).length === 0 ? {} : { details: this.details }),
    };
  }
}
