/**
 * errno values (the same on x86_64 and arm64: both use asm-generic/errno*.h) with their
 * symbolic names, so errors can say "ENOSYS" rather than "38", and SyscallError, which does.
 */
import { NvwaError } from "./error.ts";

export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9,
  ECHILD: 10, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, EFBIG: 27, ENOSPC: 28,
  EROFS: 30, EPIPE: 32, ERANGE: 34, ENAMETOOLONG: 36, ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40,
  ENODATA: 61, EBADMSG: 74, EOVERFLOW: 75, ENOTSOCK: 88, EMSGSIZE: 90, EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95, EAFNOSUPPORT: 97, EADDRINUSE: 98, EADDRNOTAVAIL: 99, ENETUNREACH: 101,
  ECONNRESET: 104, ENOBUFS: 105, ETIMEDOUT: 110, ECONNREFUSED: 111, EALREADY: 114,
  ENOKEY: 126, EKEYEXPIRED: 127, EKEYREVOKED: 128, EKEYREJECTED: 129,
} as const;
export type ErrnoName = keyof typeof ERRNO;

const BY_NUMBER = new Map<number, ErrnoName>(
  (Object.entries(ERRNO) as [ErrnoName, number][]).map(([name, n]) => [n, name]),
);

export function errnoName(n: number): string {
  return BY_NUMBER.get(n) ?? `errno ${n}`;
}

/** A failed system call: the call, its errno as a name and number, and a sentence for people. */
export class SyscallError extends NvwaError {
  readonly call: string;
  readonly errno: number;
  readonly errnoName: string;
  constructor(call: string, errnoValue: number, message?: string, hint?: string) {
    const name = errnoName(errnoValue);
    super(`syscall.${name}`, message ?? `${call} failed: ${name}`, {
      details: { call, errno: errnoValue, errnoName: name },
      ...(hint === undefined ? {} : { hint }),
    });
    this.call = call;
    this.errno = errnoValue;
    this.errnoName = name;
  }
}
