/**
 * The one dlopen of libc. Everything that needs a raw pointer or a syscall number lives in
 * ffi/; the rest of nvwa calls the typed functions exported from here and its siblings.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { NvwaError } from "./error.ts";
import { SyscallError } from "./errno.ts";
import { syscallNumber, type SyscallName } from "./arch.ts";

const LIBC_NAMES = ["libc.so.6", "libc.so"];

const symbols = {
  syscall: {
    args: [FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64],
    returns: FFIType.i64,
  },
  __errno_location: { args: [], returns: FFIType.ptr },
  sync: { args: [], returns: FFIType.void },
  syncfs: { args: [FFIType.i32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  open: { args: [FFIType.ptr, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  shutdown: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  sendto: {
    args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
    returns: FFIType.i64,
  },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  setsockopt: {
    args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32],
    returns: FFIType.i32,
  },
  getsockopt: {
    args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr],
    returns: FFIType.i32,
  },
  getuid: { args: [], returns: FFIType.u32 },
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
} as const;

function openLibc() {
  let last: unknown;
  for (const name of LIBC_NAMES) {
    try {
      return dlopen(name, symbols);
    } catch (e) {
      last = e;
    }
  }
  throw new NvwaError("ffi.libc", "could not load the C library (libc.so.6)", {
    hint: "nvwa needs glibc; on musl systems it is not supported",
    cause: last,
  });
}

let cached: ReturnType<typeof openLibc> | undefined;
/** Lazily opened so that pure modules importing ffi types never touch libc. */
export function libc(): ReturnType<typeof openLibc>["symbols"] {
  cached ??= openLibc();
  return cached.symbols;
}

export function errno(): number {
  const p = libc().__errno_location();
  if (p === null) return 0;
  return read.i32(p, 0);
}

/** Defined with the errno names (pure, so ffi/bytes.ts can throw it); src/ imports it from here. */
export { SyscallError };

export type SyscallArg = number | bigint | NodeJS.TypedArray | null;

function toI64(a: SyscallArg): number | bigint {
  if (a === null) return 0;
  if (typeof a === "number" || typeof a === "bigint") return a;
  return ptr(a);
}

/**
 * Raw syscall by name. Returns the result, or throws SyscallError built by `describe`
 * (which turns the errno into a sentence specific to that call).
 */
export function sys(
  name: SyscallName,
  args: SyscallArg[],
  describe?: (errnoValue: number) => SyscallError,
): number {
  const a = [...args.map(toI64), 0, 0, 0, 0, 0, 0].slice(0, 6) as [
    number | bigint, number | bigint, number | bigint, number | bigint, number | bigint, number | bigint,
  ];
  const r = Number(libc().syscall(syscallNumber(name), ...a));
  if (r === -1) {
    const e = errno();
    throw describe ? describe(e) : new SyscallError(name, e);
  }
  return r;
}

/** A NUL-terminated copy of a string, for passing to C. */
export function cstring(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** sync(2): flush every filesystem. Never fails. */
export function syncAll(): void {
  libc().sync();
}

export function getuid(): number {
  return libc().getuid();
}
