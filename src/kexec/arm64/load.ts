/**
 * The native arm64 loader: reads what buildArm64Load() needs from the running system and calls
 * kexec_load (syscall 104) through ffi. No kexec-tools, no purgatory.
 */
import { randomFillSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { currentArch } from "../../../ffi/arch.ts";
import { ERRNO, errnoName } from "../../../ffi/errno.ts";
import { KEXEC_ARCH_AARCH64, KEXEC_QUICK, kexecLoad, kexecLoadUnload } from "../../../ffi/kexec.ts";
import { SyscallError } from "../../../ffi/libc.ts";
import { ExitCode, NvwaError } from "../../errors.ts";
import { parseIomem, formatRange, type Iomem, type Range } from "../../mem/iomem.ts";
import { humanBytes } from "../../mem/size.ts";
import { buildArm64Load, type Arm64Load } from "./build.ts";
import { FIRMWARE_FDT } from "../state.ts";
import { KASLR_SEED_BYTES, RNG_SEED_BYTES } from "./chosen.ts";

const AUXV = "/proc/self/auxv";
const AT_PAGESZ = 6n;

/** Pure: AT_PAGESZ from an auxiliary vector (u64 type/value pairs), or null. */
export function pageSizeFromAuxv(auxv: Uint8Array): number | null {
  const dv = new DataView(auxv.buffer, auxv.byteOffset, auxv.byteLength);
  for (let at = 0; at + 16 <= auxv.length; at += 16) {
    const type = dv.getBigUint64(at, true);
    if (type === 0n) break;
    if (type === AT_PAGESZ) return Number(dv.getBigUint64(at + 8, true));
  }
  return null;
}

/** The running kernel's page size: segments must be aligned to it (arm64 kernels use 4, 16 or 64 KiB). */
export function runningPageSize(): number {
  return pageSizeFromAuxv(new Uint8Array(readFileSync(AUXV))) ?? 4096;
}

function readOrThrow(path: string, what: string, hint: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new NvwaError("kexec.arm64-input", `cannot read ${what} (${path}): ${err.code ?? err.message}`, { hint, cause: e, details: { path }, exitCode: ExitCode.preflight });
  }
}

export function readFirmwareFdt(): Uint8Array {
  return readOrThrow(
    FIRMWARE_FDT,
    "the device tree the running kernel booted with",
    "the native arm64 loader needs it (CONFIG_OF, a device-tree or UEFI boot); on ACPI-only machines without a device tree set kexec_loader: kexec_exe",
  );
}

export function readRootIomem(): Iomem {
  const text = new TextDecoder().decode(readOrThrow("/proc/iomem", "the physical memory map", "run nvwa as root"));
  const io = parseIomem(text);
  if (io.redacted) {
    throw new NvwaError("kexec.iomem-redacted", "/proc/iomem shows only zero addresses: it was read without CAP_SYS_ADMIN", { hint: "run nvwa as root", exitCode: ExitCode.preflight });
  }
  return io;
}

export interface NativeArm64Options {
  image: Uint8Array;
  /** /proc/iomem, read once by the caller (readRootIomem), which also finds the quick kexec region in it. */
  iomem: Iomem;
  initrdPath: string | null;
  cmdline: string;
  quickRegion: Range | null;
  avoid: Range[];
  kernelPath: string;
}

function randomBytes(n: number): Uint8Array {
  return randomFillSync(new Uint8Array(n));
}

/** Pure: a failed kexec_load as a sentence. */
export function explainKexecLoad(e: number, kernelPath: string, load: Arm64Load): NvwaError {
  const name = errnoName(e);
  const layout = load.segments.map((s) => `${s.name} ${formatRange({ start: s.mem, end: s.mem + s.memsz - 1n })}`).join(", ");
  const err = (message: string, hint: string): NvwaError =>
    new NvwaError(`kexec.load.${name}`, `kexec_load of ${kernelPath} failed (${name}): ${message}`, { hint, details: { call: "kexec_load", errno: e, layout } });
  switch (e) {
    case ERRNO.EPERM:
      return err(
        "not permitted: the process lacks CAP_SYS_BOOT, kexec_load_disabled is set, the kernel is in lockdown (which refuses kexec_load), IMA's policy refused the load, or /proc/sys/kernel/kexec_load_limit_reboot (Linux 6.7+) is used up",
        "run nvwa as root on the host; under lockdown only kexec_file_load with a signed image works",
      );
    case ERRNO.EBUSY:
      return err("another kexec load or unload is in progress", "wait for the other kexec (kdump's loader, another nvwa) to finish and retry");
    case ERRNO.ENOSYS:
      return err(
        "the running kernel has no kexec_load (built without CONFIG_KEXEC; kexec core can come from CONFIG_CRASH_DUMP alone)",
        "boot a kernel with CONFIG_KEXEC=y or CONFIG_KEXEC_FILE=y once, the traditional way",
      );
    case ERRNO.EINVAL:
    case ERRNO.EADDRNOTAVAIL:
      return err(`the kernel refused the segment layout (${layout})`, "this is a bug in nvwa's arm64 planner: report it with `cat /proc/iomem` (as root); set kexec_loader: kexec_exe meanwhile");
    case ERRNO.ENOMEM:
      return err(
        `not enough free memory to stage ${humanBytes(BigInt(load.segments.reduce((n, s) => n + s.buf.length, 0)))}`,
        "free memory (stop large processes or drop caches) and retry; a smaller initramfs helps too",
      );
    default:
      return err("unexpected error from the kernel", "check `dmesg` for kexec messages");
  }
}

/** Builds and loads; returns what was loaded (for the log). */
export function loadArm64Native(o: NativeArm64Options): Arm64Load {
  // The segments are physical addresses of an arm64 machine: never hand them to another kernel
  // (a test that forces arch "arm64" on an x86_64 host stops here, before any syscall).
  if (currentArch() !== "arm64") {
    throw new NvwaError("internal.arm64-loader", `the native arm64 loader runs only on arm64 (this is ${currentArch()})`, { hint: "this is a bug in nvwa" });
  }
  const initrd = o.initrdPath === null ? null : readOrThrow(o.initrdPath, "the initramfs", "run nvwa as root; check the file's permissions");
  const load = buildArm64Load({
    image: o.image,
    initrd,
    cmdline: o.cmdline,
    fdt: readFirmwareFdt(),
    iomem: o.iomem,
    pageSize: runningPageSize(),
    kaslrSeed: randomBytes(KASLR_SEED_BYTES),
    rngSeed: randomBytes(RNG_SEED_BYTES),
    avoid: o.avoid,
    quickRegion: o.quickRegion,
  });
  const flags = KEXEC_ARCH_AARCH64 | (o.quickRegion !== null ? KEXEC_QUICK : 0);
  try {
    kexecLoad(load.entry, load.segments, flags);
  } catch (e) {
    if (e instanceof SyscallError) throw explainKexecLoad(e.errno, o.kernelPath, load);
    throw e;
  }
  return load;
}

export function unloadArm64Native(): void {
  kexecLoadUnload(KEXEC_ARCH_AARCH64);
}

/** One line for the log: where each segment went. */
export function describeLayout(load: Arm64Load): string {
  return load.segments.map((s) => `${s.name} ${formatRange({ start: s.mem, end: s.mem + s.memsz - 1n })} (${humanBytes(BigInt(s.buf.length))})`).join(", ");
}
