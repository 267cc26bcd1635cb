/**
 * kexec_file_load errnos as sentences, the loader choice, and the real syscall on this host.
 * The real calls here never load anything: the probe passes flag bits no kernel accepts, and
 * the memfd load runs only where the probe proved the syscall does not exist.
 */
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ERRNO } from "../../ffi/errno.ts";
import { interpretProbeErrno, kexecFileLoad, probeKexecFileLoad } from "../../ffi/kexec.ts";
import { SyscallError } from "../../ffi/libc.ts";
import { closeFd, memfdFromBytes } from "../../ffi/memfd.ts";
import { isNvwaError, type NvwaError } from "../../src/errors.ts";
import { explainKexecFileLoad, type LoadContext } from "../../src/kexec/explain.ts";
import { loadKernel, planKernelLoad } from "../../src/kexec/load.ts";
import { chooseLoader, type LoaderFacts } from "../../src/kexec/loader.ts";
import { readKexecLoaded } from "../../src/kexec/state.ts";
import { realKernel } from "../fixtures/kernels/kernels.ts";

const ctx: LoadContext = {
  kernelPath: "/boot/vmlinuz-6.12.0",
  initrdPath: "/boot/initramfs-6.12.0.img",
  format: "arm64 Image (little-endian, signed)",
  unwrapped: false,
  lockdown: "none",
  kexecLoadDisabled: false,
  kexecExe: "/usr/sbin/kexec",
};

describe("explainKexecFileLoad", () => {
  const cases: [string, number, Partial<LoadContext>, string[]][] = [
    ["ENOSYS", ERRNO.ENOSYS, {}, ["built without kexec_file_load", "CONFIG_KEXEC_FILE", "/usr/sbin/kexec", "kexec -c"]],
    ["EPERM (no capability)", ERRNO.EPERM, {}, ["CAP_SYS_BOOT", "as root"]],
    ["EPERM (kexec_load_disabled)", ERRNO.EPERM, { kexecLoadDisabled: true }, ["kexec_load_disabled is 1", "reboot once"]],
    ["EPERM (lockdown)", ERRNO.EPERM, { lockdown: "integrity" }, ["lockdown (integrity)", "signed"]],
    ["EPERM (lockdown, unwrapped)", ERRNO.EPERM, { lockdown: "integrity", unwrapped: true }, ["does not cover the payload", "signed raw Image"]],
    ["EKEYREJECTED", ERRNO.EKEYREJECTED, {}, ["signature was rejected", "mokutil"]],
    ["ENOKEY", ERRNO.ENOKEY, {}, ["key the running kernel does not know"]],
    ["EBADMSG", ERRNO.EBADMSG, {}, ["malformed"]],
    ["EBUSY", ERRNO.EBUSY, {}, ["another kexec load", "retry"]],
    ["EINVAL", ERRNO.EINVAL, {}, ["rejected the image as arm64 Image (little-endian, signed)", "architecture"]],
    ["ENOEXEC", ERRNO.ENOEXEC, {}, ["rejected the image as"]],
    ["ENOMEM", ERRNO.ENOMEM, {}, ["not enough contiguous memory", "free memory"]],
  ];
  for (const [name, e, extra, words] of cases) {
    test(name, () => {
      const err = explainKexecFileLoad(e, { ...ctx, ...extra });
      const text = `${err.message} ${err.hint}`;
      for (const w of words) expect(text).toContain(w);
      expect(err.message).toContain("/boot/vmlinuz-6.12.0");
      expect(err.code).toMatch(/^kexec\.load\.E[A-Z]+$/);
      expect(err.details.errno).toBe(e);
    });
  }
});

describe("chooseLoader", () => {
  const base: LoaderFacts = {
    arch: "x64",
    prefer: "auto",
    firmwareFdt: false,
    kexecCore: true,
    fileLoad: { kind: "available" },
    quick: false,
    kexecExe: "/usr/sbin/kexec",
    kexecExeExists: true,
    lockdown: "none",
    kexecLoadDisabled: false,
  };
  const pick = (f: Partial<LoaderFacts>): string => {
    const c = chooseLoader({ ...base, ...f });
    return c.ok ? c.loader : c.error.code;
  };
  test("native wherever the syscall exists, even when kexec-tools is installed", () => {
    expect(pick({})).toBe("kexec_file_load");
  });
  test("kexec_exe -c where the kernel lacks kexec_file_load (Debian arm64), and says why", () => {
    expect(pick({ fileLoad: { kind: "missing" } })).toBe("kexec_exe -c");
    const c = chooseLoader({ ...base, fileLoad: { kind: "missing" } });
    expect(c.ok && c.reason).toContain("CONFIG_KEXEC_FILE");
    expect(pick({ fileLoad: { kind: "missing" }, kexecExeExists: false })).toBe("kexec.no-loader");
    expect(pick({ fileLoad: { kind: "missing" }, lockdown: "integrity" })).toBe("kexec.no-loader");
  });
  test("quick kexec goes through kexec_exe -q on x86_64", () => {
    expect(pick({ quick: true })).toBe("kexec_exe -q");
    expect(pick({ quick: true, kexecExeExists: false })).toBe("kexec.exe-missing");
    expect(pick({ quick: true, lockdown: "confidentiality" })).toBe("kexec.quick-locked-down");
  });
  test("arm64 loads natively with kexec_load where kexec_file_load is missing and for quick kexec, kexec-tools or not", () => {
    const arm = { arch: "arm64" as const, firmwareFdt: true };
    expect(pick({ ...arm, fileLoad: { kind: "missing" }, kexecExeExists: false })).toBe("kexec_load");
    expect(pick({ ...arm, fileLoad: { kind: "missing" } })).toBe("kexec_load");
    const c = chooseLoader({ ...base, ...arm, fileLoad: { kind: "missing" } });
    expect(c.ok && c.reason).toContain("CONFIG_KEXEC_FILE");
    expect(pick({ ...arm, quick: true, kexecExeExists: false })).toBe("kexec_load");
    expect(pick({ ...arm, quick: true, lockdown: "integrity" })).toBe("kexec.quick-locked-down");
    expect(pick({ ...arm, fileLoad: { kind: "missing" }, lockdown: "integrity" })).toBe("kexec.no-loader");
    // where the kernel has kexec_file_load, arm64 uses it like x86_64
    expect(pick({ ...arm })).toBe("kexec_file_load");
    // no device tree to hand on: refused with the escape hatch named
    const noFdt = chooseLoader({ ...base, arch: "arm64", firmwareFdt: false, fileLoad: { kind: "missing" } });
    expect(noFdt.ok).toBe(false);
    if (!noFdt.ok) {
      expect(noFdt.error.code).toBe("kexec.no-fdt");
      expect(noFdt.error.hint).toContain("kexec_loader: kexec_exe");
    }
  });
  test("kexec_loader: kexec_exe makes kexec-tools load everywhere, and is refused where it cannot", () => {
    const exe = { prefer: "kexec_exe" as const };
    expect(pick({ ...exe })).toBe("kexec_exe -c");
    expect(pick({ ...exe, arch: "arm64", firmwareFdt: true, fileLoad: { kind: "missing" } })).toBe("kexec_exe -c");
    expect(pick({ ...exe, arch: "arm64", quick: true })).toBe("kexec_exe -q");
    expect(pick({ ...exe, kexecExeExists: false })).toBe("kexec.exe-missing");
    expect(pick({ ...exe, lockdown: "integrity" })).toBe("kexec.no-loader");
  });
  test("refusals: no kexec at all, disabled, no permission", () => {
    expect(pick({ kexecCore: false })).toBe("kexec.unsupported");
    expect(pick({ kexecLoadDisabled: true })).toBe("kexec.disabled");
    expect(pick({ fileLoad: { kind: "denied" } })).toBe("kexec.denied");
  });
});

/** Decided once, before any test: the load tests below run only where nothing can be loaded. */
const PROBE = probeKexecFileLoad();
const NO_KEXEC_CORE = readKexecLoaded() === null;

describe("the real syscall on this host", () => {
  test("the probe's errno maps to the three situations", () => {
    expect(interpretProbeErrno(ERRNO.EINVAL)).toEqual({ kind: "available" });
    expect(interpretProbeErrno(ERRNO.ENOSYS)).toEqual({ kind: "missing" });
    expect(interpretProbeErrno(ERRNO.EPERM)).toEqual({ kind: "denied" });
    expect(interpretProbeErrno(ERRNO.EBUSY)).toEqual({ kind: "unexpected", errno: ERRNO.EBUSY });
  });

  test("the probe agrees with /sys/kernel/kexec_loaded: no kexec core means no kexec_file_load", () => {
    expect(["available", "missing", "denied"]).toContain(PROBE.kind);
    if (NO_KEXEC_CORE) expect(PROBE.kind).toBe("missing");
  });

  // Never attempt a real load where it could succeed: skipped unless the probe proved ENOSYS.
  test.skipIf(PROBE.kind !== "missing")("where kexec_file_load is missing, a real load attempt fails with ENOSYS and the sentence names CONFIG_KEXEC_FILE", () => {
    const fd = memfdFromBytes("nvwa-test-kernel", new Uint8Array(4096));
    let err: unknown;
    try {
      kexecFileLoad({ kernelFd: fd, initrdFd: null, cmdline: "quiet" });
    } catch (e) {
      err = e;
    } finally {
      closeFd(fd);
    }
    expect(err).toBeInstanceOf(SyscallError);
    const e = err as SyscallError;
    expect(e.errnoName).toBe("ENOSYS");
    const human = explainKexecFileLoad(e.errno, ctx);
    expect(human.message).toContain("CONFIG_KEXEC_FILE");
    expect(human.hint).toContain("kexec -c");
  });

  test.skipIf(!NO_KEXEC_CORE)("loadKernel with a real Debian kernel stops before loading anything on a kernel without kexec", () => {
    const k = realKernel("bookworm", "amd64");
    const boot = mkdtempSync(join(tmpdir(), "nvwa-boot-"));
    try {
      copyFileSync(k.path, join(boot, "vmlinuz-6.1.0-50-amd64"));
      writeFileSync(join(boot, "initrd.img-6.1.0-50-amd64"), new Uint8Array(1024));
      const opts = { version: "6.1.0-50-amd64", bootDir: boot, modulesDir: boot, kexecExe: "/nonexistent/kexec", currentCmdline: "BOOT_IMAGE=/vmlinuz root=/dev/vda1", arch: "x64" as const };
      let err: NvwaError | undefined;
      try {
        loadKernel(opts);
      } catch (e) {
        if (isNvwaError(e)) err = e;
      }
      expect(err?.code).toBe("kexec.unsupported");
      expect(() => planKernelLoad(opts)).toThrow(/CONFIG_KEXEC_CORE/);
    } finally {
      rmSync(boot, { recursive: true, force: true });
    }
  });
});
