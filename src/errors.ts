/**
 * The errors of nvwa, as the rest of src/ imports them. NvwaError and ExitCode are defined in
 * ffi/error.ts, the lowest layer, so that ffi/ throws the very same type without importing
 * anything from src/; `instanceof NvwaError` holds for both.
 */
import { ExitCode, NvwaError } from "../ffi/error.ts";

export { ExitCode, NvwaError, type NvwaErrorOptions } from "../ffi/error.ts";

export function isNvwaError(e: unknown): e is NvwaError {
  return e instanceof NvwaError;
}

/** Wraps anything thrown into an NvwaError, keeping NvwaErrors as they are. */
export function toNvwaError(e: unknown, code = "internal"): NvwaError {
  if (e instanceof NvwaError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new NvwaError(code, message, {
    exitCode: ExitCode.internal,
    hint: "this is a bug in nvwa; please report it with the output of `nvwa status --json`",
    cause: e,
  });
}
