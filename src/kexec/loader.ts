/**
 * Which loader puts the new kernel in place. Pure.
 *
 * The kernel's own loaders come first:
 * - kexec_file_load wherever the syscall exists: the kernel parses and verifies the image
 *   itself, and lockdown allows it;
 * - on arm64, kexec_load called by nvwa itself (src/kexec/arm64/) where kexec_file_load is
 *   missing (Debian's arm64 kernels: ENOSYS) and for openEuler's quick kexec, whose KEXEC_QUICK
 *   flag exists only for kexec_load;
 * - kexec-tools (`kexec_exe`) only where nvwa has no loader of its own: on x86_64 without
 *   kexec_file_load (`-c`) or with quick kexec (`-q`). `kexec_loader: kexec_exe` in
 *   nvwa-server.yaml makes kexec-tools load everywhere, the escape hatch.
 */
import type { Arch } from "../../ffi/arch.ts";
import type { KexecFileLoadSupport } from "../../ffi/kexec.ts";
import { errnoName } from "../../ffi/errno.ts";
import type { KexecLoaderChoice } from "../config/types.ts";
import { ExitCode, NvwaError } from "../errors.ts";

export type Loader = "kexec_file_load" | "kexec_load" | "kexec_exe -c" | "kexec_exe -q";

export interface LoaderFacts {
  arch: Arch;
  /** nvwa-server.yaml kexec_loader. */
  prefer: KexecLoaderChoice;
  /** /sys/firmware/fdt exists (the native arm64 loader hands its tree on). */
  firmwareFdt: boolean;
  /** /sys/kernel/kexec_loaded exists: the kernel has kexec at all (CONFIG_KEXEC_CORE). */
  kexecCore: boolean;
  fileLoad: KexecFileLoadSupport;
  quick: boolean;
  kexecExe: string;
  kexecExeExists: boolean;
  /** Lockdown mode ("none", "integrity", "confidentiality") or null when unknown. */
  lockdown: string | null;
  kexecLoadDisabled: boolean | null;
}

export type LoaderChoice = { ok: true; loader: Loader; reason: string } | { ok: false; error: NvwaError };

function no(code: string, message: string, hint: string, details: Record<string, unknown> = {}): LoaderChoice {
  return { ok: false, error: new NvwaError(code, message, { hint, exitCode: ExitCode.preflight, details }) };
}

const INSTALL_KEXEC_TOOLS = "install kexec-tools (dnf/yum install kexec-tools, apt install kexec-tools) or set kexec_exe in nvwa-server.yaml";

export function chooseLoader(f: LoaderFacts): LoaderChoice {
  if (!f.kexecCore) {
    return no(
      "kexec.unsupported",
      "the running kernel has no kexec support (/sys/kernel/kexec_loaded is missing: CONFIG_KEXEC_CORE is not set)",
      "boot a kernel built with CONFIG_KEXEC and CONFIG_KEXEC_FILE once, the traditional way; nvwa can take over from there",
    );
  }
  if (f.kexecLoadDisabled) {
    return no(
      "kexec.disabled",
      "kexec is disabled on this machine (/proc/sys/kernel/kexec_load_disabled is 1)",
      "the switch is one-way until the next boot; remove whatever sets kernel.kexec_load_disabled=1 and reboot once",
    );
  }
  const locked = f.lockdown !== null && f.lockdown !== "none";
  if (f.fileLoad.kind === "denied") {
    return no(
      "kexec.denied",
      "kexec is not permitted for this process (the kernel answered EPERM before looking at any image)",
      "run nvwa as root on the host (not in a container); CAP_SYS_BOOT is required",
    );
  }
  const native = f.prefer === "auto" && f.arch === "arm64";
  const nativeArm64 = (reason: string): LoaderChoice => {
    if (!f.firmwareFdt) {
      return no(
        "kexec.no-fdt",
        "the native arm64 loader needs the device tree the kernel booted with, and /sys/firmware/fdt does not exist",
        `set kexec_loader: kexec_exe in nvwa-server.yaml to load with kexec-tools instead (${INSTALL_KEXEC_TOOLS})`,
      );
    }
    return { ok: true, loader: "kexec_load", reason };
  };
  if (f.quick) {
    if (locked) {
      return no(
        "kexec.quick-locked-down",
        `quick kexec needs kexec_load, which the kernel refuses in lockdown (${f.lockdown})`,
        "set enable_quick_kexec: false to use the signed kexec_file_load path, or disable lockdown",
      );
    }
    if (native) return nativeArm64("quick kexec is enabled: the KEXEC_QUICK flag exists only for kexec_load, which nvwa calls itself with the segments in the reserved region");
    if (!f.kexecExeExists) {
      return no("kexec.exe-missing", `quick kexec is enabled but ${f.kexecExe} does not exist`, `quick kexec is loaded by kexec-tools -q here: ${INSTALL_KEXEC_TOOLS}`, {
        kexecExe: f.kexecExe,
      });
    }
    return {
      ok: true,
      loader: "kexec_exe -q",
      reason: `quick kexec is enabled: the KEXEC_QUICK flag exists only for kexec_load, so ${f.kexecExe} -q loads the kernel into the reserved region${f.prefer === "kexec_exe" ? " (kexec_loader: kexec_exe)" : ""}`,
    };
  }
  if (f.prefer === "kexec_exe") {
    if (locked) {
      return no("kexec.no-loader", `kexec_loader is kexec_exe, whose kexec_load the kernel refuses in lockdown (${f.lockdown})`, "set kexec_loader: auto to use the signed kexec_file_load path");
    }
    if (!f.kexecExeExists) {
      return no("kexec.exe-missing", `kexec_loader is kexec_exe but ${f.kexecExe} does not exist`, `${INSTALL_KEXEC_TOOLS}, or set kexec_loader: auto`, { kexecExe: f.kexecExe });
    }
    return { ok: true, loader: "kexec_exe -c", reason: `kexec_loader: kexec_exe in nvwa-server.yaml: ${f.kexecExe} -c (kexec_load) loads the kernel` };
  }
  switch (f.fileLoad.kind) {
    case "available":
      return { ok: true, loader: "kexec_file_load", reason: "the running kernel has kexec_file_load" };
    case "unexpected":
      return {
        ok: true,
        loader: "kexec_file_load",
        reason: `kexec_file_load probe answered ${f.fileLoad.errno === 0 ? "success" : errnoName(f.fileLoad.errno)}; trying the native loader`,
      };
    case "missing":
      if (locked) {
        return no(
          "kexec.no-loader",
          `the running kernel lacks kexec_file_load (CONFIG_KEXEC_FILE) and is in lockdown (${f.lockdown}), which refuses kexec_load`,
          "boot a kernel with CONFIG_KEXEC_FILE (and signed images), or disable lockdown",
        );
      }
      if (native) return nativeArm64("the running kernel was built without kexec_file_load (CONFIG_KEXEC_FILE), so nvwa loads it with kexec_load itself");
      if (!f.kexecExeExists) {
        return no(
          "kexec.no-loader",
          `the running kernel was built without kexec_file_load (CONFIG_KEXEC_FILE is not set) and the fallback loader ${f.kexecExe} does not exist`,
          `${INSTALL_KEXEC_TOOLS}; nvwa then loads with \`kexec -c\` (kexec_load)`,
          { kexecExe: f.kexecExe },
        );
      }
      return {
        ok: true,
        loader: "kexec_exe -c",
        reason: `the running kernel was built without kexec_file_load (CONFIG_KEXEC_FILE), so ${f.kexecExe} -c (kexec_load) loads the kernel`,
      };
  }
}
