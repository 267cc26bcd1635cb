/**
 * /sys/kernel/kexec_loaded: the kernel's own word on whether an image is loaded for the next
 * kexec. Both jumps check it first: systemd's kexec.target falls back to a full firmware reboot
 * when nothing is loaded, which would lose every checkpointed process.
 */
import { readFileSync } from "node:fs";
import { NvwaError } from "../errors.ts";

export const KEXEC_LOADED_PATH = "/sys/kernel/kexec_loaded";
/** The device tree the running kernel booted with (arm64; the native loader hands it on). */
export const FIRMWARE_FDT = "/sys/firmware/fdt";

/** true / false, or null when the file is missing (kernel built without CONFIG_KEXEC_CORE). */
export function readKexecLoaded(path: string = KEXEC_LOADED_PATH): boolean | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  return text.trim() === "1";
}

export function isKexecLoaded(path: string = KEXEC_LOADED_PATH): boolean {
  return readKexecLoaded(path) === true;
}

/** Throws unless a kernel is loaded for kexec. Call before either jump. */
export function assertKexecLoaded(path: string = KEXEC_LOADED_PATH): void {
  const loaded = readKexecLoaded(path);
  if (loaded === true) return;
  if (loaded === null) {
    throw new NvwaError("kexec.unsupported", `${path} does not exist: this kernel was built without kexec (CONFIG_KEXEC_CORE)`, {
      hint: "boot a kernel with CONFIG_KEXEC and CONFIG_KEXEC_FILE before using nvwa",
      details: { path },
    });
  }
  throw new NvwaError("kexec.not-loaded", `no kernel is loaded for kexec (${path} reads 0)`, {
    hint: "the new kernel must be loaded before the jump; without it the machine would reboot through the firmware and lose the checkpointed processes",
    details: { path },
  });
}

export const LOCKDOWN_PATH = "/sys/kernel/security/lockdown";
export const KEXEC_LOAD_DISABLED_PATH = "/proc/sys/kernel/kexec_load_disabled";

/** Pure: the active mode of "none [integrity] confidentiality" (the bracketed one). */
export function parseLockdown(text: string): string | null {
  const m = /\[([a-z]+)\]/.exec(text);
  return m?.[1] ?? null;
}

/** The lockdown mode, or null when the lockdown LSM is absent (then nothing is locked down). */
export function readLockdown(path: string = LOCKDOWN_PATH): string | null {
  try {
    return parseLockdown(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}

/** kernel.kexec_load_disabled, or null when the sysctl does not exist (no kexec in the kernel). */
export function readKexecLoadDisabled(path: string = KEXEC_LOAD_DISABLED_PATH): boolean | null {
  try {
    return readFileSync(path, "utf8").trim() === "1";
  } catch {
    return null;
  }
}
