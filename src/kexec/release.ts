/**
 * The kernel version the user names ends up in paths under /boot, so it is checked before any
 * path is built: it must look like a kernel release (`uname -r`), which always starts with the
 * version number and stays within 64 characters (__NEW_UTS_LEN).
 */
import { ExitCode, NvwaError } from "../errors.ts";

const RELEASE_CHARS = /^[0-9A-Za-z._+~-]+$/;
const MAX_RELEASE = 64;

/** Pure: why `ver` is not acceptable, or null. */
export function releaseProblem(ver: string): string | null {
  if (ver.length === 0) return "it is empty";
  if (ver.length > MAX_RELEASE) return `it is ${ver.length} characters long; kernel releases have at most ${MAX_RELEASE}`;
  if (ver.includes("/")) return "it contains '/'";
  if (ver.includes("..")) return "it contains '..'";
  const bad = [...ver].find((c) => !RELEASE_CHARS.test(c));
  if (bad !== undefined) return `it contains ${JSON.stringify(bad)}, which is not in a kernel release (letters, digits, . _ + ~ -)`;
  if (!/^[0-9]/.test(ver)) return "it does not start with a digit, as every kernel release does";
  return null;
}

export function assertRelease(ver: string): string {
  const problem = releaseProblem(ver);
  if (problem !== null) {
    throw new NvwaError("kexec.bad-version", `"${ver}" is not a kernel version: ${problem}`, {
      hint: "give the release as `uname -r` prints it for that kernel, e.g. 6.1.0-18-amd64; ls /boot/vmlinuz-* lists the installed ones",
      exitCode: ExitCode.usage,
      details: { version: ver },
    });
  }
  return ver;
}
