/**
 * kexec_file_load(2) and kexec_load(2), one thin function per use. Errors come back as SyscallError carrying the
 * errno; src/kexec turns them into sentences that know which image and loader were involved.
 */
import { ptr } from "bun:ffi";
import { SyscallError, cstring, sys } from "./libc.ts";
import { ERRNO } from "./errno.ts";

/** include/uapi/linux/kexec.h */
export const KEXEC_FILE_UNLOAD = 0x1;
export const KEXEC_FILE_ON_CRASH = 0x2;
export const KEXEC_FILE_NO_INITRAMFS = 0x4;

/**
 * Flag bits no kernel defines. The syscall checks CAP_SYS_BOOT / kexec_load_disabled first and
 * the flags second (kernel/kexec_file.c), before it touches any fd or lock, so a call with these
 * bits changes nothing and its errno tells which of the three situations we are in.
 */
export const KEXEC_FILE_PROBE_FLAGS = 0xffff0000;

export interface KexecFileLoadArgs {
  kernelFd: number;
  /** null: no initramfs (KEXEC_FILE_NO_INITRAMFS is added). */
  initrdFd: number | null;
  /** Without the trailing NUL; it is added here and counted in cmdline_len, as the kernel requires. */
  cmdline: string;
}

/** Pure: the cmdline as the syscall takes it, NUL-terminated; its length is cmdline_len. */
export function cmdlineBuffer(cmdline: string): Buffer {
  return cstring(cmdline);
}

/** Loads the image for the next kexec reboot. Throws SyscallError with the errno. */
export function kexecFileLoad(args: KexecFileLoadArgs): void {
  const buf = cmdlineBuffer(args.cmdline);
  const flags = args.initrdFd === null ? KEXEC_FILE_NO_INITRAMFS : 0;
  sys("kexec_file_load", [args.kernelFd, args.initrdFd ?? -1, buf.length, buf, flags]);
}

/** Unloads whatever image is loaded for the next kexec reboot (a no-op when none is). */
export function kexecFileUnload(): void {
  sys("kexec_file_load", [-1, -1, 0, null, KEXEC_FILE_UNLOAD]);
}

export type KexecFileLoadSupport =
  | { kind: "available" }
  | { kind: "missing" }
  | { kind: "denied" }
  | { kind: "unexpected"; errno: number };

/** Pure: what the probe's errno means. */
export function interpretProbeErrno(e: number): KexecFileLoadSupport {
  if (e === ERRNO.EINVAL) return { kind: "available" };
  if (e === ERRNO.ENOSYS) return { kind: "missing" };
  if (e === ERRNO.EPERM) return { kind: "denied" };
  return { kind: "unexpected", errno: e };
}

/** Asks the kernel whether kexec_file_load exists, without loading or unloading anything. */
export function probeKexecFileLoad(): KexecFileLoadSupport {
  try {
    sys("kexec_file_load", [-1, -1, 0, null, KEXEC_FILE_PROBE_FLAGS]);
  } catch (e) {
    if (e instanceof SyscallError) return interpretProbeErrno(e.errno);
    throw e;
  }
  // Success with undefined flags would be a kernel bug; treat it as present but say so.
  return { kind: "unexpected", errno: 0 };
}

// ------------------------------------------------------------------------------ kexec_load

/** include/uapi/linux/kexec.h: the architecture in bits 16..31 of kexec_load's flags (EM_AARCH64). */
export const KEXEC_ARCH_AARCH64 = 183 << 16;
/** openEuler's quick kexec: the kernel copies the segments into its "Quick kexec" region at load time. */
export const KEXEC_QUICK = 0x4;
const SEGMENT_STRUCT = 32;

export interface KexecSegment {
  buf: Uint8Array;
  /** Physical destination, page-aligned. */
  mem: bigint;
  /** Bytes reserved at the destination, whole pages, ≥ buf.length. */
  memsz: bigint;
}

/**
 * Pure: the array of struct kexec_segment { const void *buf; size_t bufsz; const void *mem;
 * size_t memsz; } (64-bit), with each buffer's address given by `addressOf`.
 */
export function segmentArray(segments: readonly KexecSegment[], addressOf: (b: Uint8Array) => bigint): Uint8Array {
  const out = new Uint8Array(segments.length * SEGMENT_STRUCT);
  const dv = new DataView(out.buffer);
  segments.forEach((s, i) => {
    const at = i * SEGMENT_STRUCT;
    dv.setBigUint64(at, s.buf.length === 0 ? 0n : addressOf(s.buf), true);
    dv.setBigUint64(at + 8, BigInt(s.buf.length), true);
    dv.setBigUint64(at + 16, s.mem, true);
    dv.setBigUint64(at + 24, s.memsz, true);
  });
  return out;
}

/**
 * Loads an image for the next kexec reboot with kexec_load: the kernel copies each buffer now
 * and, at the jump, moves the copies to their destinations and branches to `entry`.
 */
export function kexecLoad(entry: bigint, segments: readonly KexecSegment[], flags: number): void {
  const array = segmentArray(segments, (b) => BigInt(ptr(b)));
  sys("kexec_load", [entry, segments.length, array, flags]);
}

/** Unloads through kexec_load (no segments), for images it loaded. */
export function kexecLoadUnload(flags = 0): void {
  sys("kexec_load", [0, 0, null, flags]);
}
