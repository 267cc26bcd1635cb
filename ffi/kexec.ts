/**
 * kexec_file_load(2), one thin function per use. Errors come back as SyscallError carrying the
 * errno; src/kexec turns them into sentences that know which image and loader were involved.
 */
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
