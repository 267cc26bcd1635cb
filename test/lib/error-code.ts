/** The NvwaError code `f` throws (or a note that it threw something else), undefined when it does not throw. */
import { isNvwaError } from "../../src/errors.ts";

export function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isNvwaError(e) ? e.code : `not an NvwaError: ${String(e)}`;
  }
  return undefined;
}
