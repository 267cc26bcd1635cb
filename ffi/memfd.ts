/**
 * Anonymous in-memory files. A kernel image that had to be unwrapped in user space (gzip,
 * EFI zboot) is handed to kexec_file_load through one of these, so nothing is written to disk
 * and no temporary file can be left behind or swapped under us.
 */
import { closeSync, fstatSync, writeSync } from "node:fs";
import { NvwaError } from "./error.ts";
import { SyscallError, cstring, sys } from "./libc.ts";

/** From include/uapi/linux/memfd.h. */
export const MFD_CLOEXEC = 0x1;
export const MFD_ALLOW_SEALING = 0x2;

export function memfdCreate(name: string, flags = MFD_CLOEXEC): number {
  const cname = cstring(name);
  return sys("memfd_create", [cname, flags], (e) =>
    new SyscallError("memfd_create", e, `memfd_create("${name}") failed`, "the kernel needs CONFIG_MEMFD_CREATE (Linux 3.17+); check `ulimit -n` if it says EMFILE"),
  );
}

/** A memfd holding exactly `data`. The caller owns the fd and closes it with closeFd(). */
export function memfdFromBytes(name: string, data: Uint8Array): number {
  const fd = memfdCreate(name);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    const size = fstatSync(fd).size;
    if (size !== data.length) {
      throw new NvwaError("memfd.short-write", `memfd "${name}" holds ${size} bytes, expected ${data.length}`, {
        hint: "the machine may be out of memory; free some and retry",
      });
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    if (e instanceof NvwaError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new NvwaError("memfd.write", `cannot fill memfd "${name}" with ${data.length} bytes: ${err.code ?? err.message}`, {
      hint: err.code === "ENOMEM" || err.code === "ENOSPC" ? "free memory and retry" : undefined,
      cause: e,
    });
  }
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // closing is best effort: the fd may already be gone when an error path runs twice
  }
}

/**
 * A path another process (kexec_exe) can open to read the memfd: /proc/<our pid>/fd/<fd> is a
 * magic link that reopens the same in-memory file, so the unwrapped image never touches disk.
 */
export function memfdPath(fd: number): string {
  return `/proc/${process.pid}/fd/${fd}`;
}
