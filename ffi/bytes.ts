/**
 * Pure: the bytes of C structs and netlink messages, shared by ffi/netlink.ts, ffi/unix.ts and
 * src/net (codec.ts, nft.ts, requests.ts). Fixed-width integers, concatenation, the 4-byte
 * alignment of netlink, and the structs the sockets take: sockaddr_nl, sockaddr_un, timeval.
 *
 * Plain names are host order, which is little-endian on both architectures nvwa supports
 * (x86_64, arm64); `…be` is network order (big-endian), as nf_tables and packet headers take it.
 * Constants are the asm-generic values, the same on both.
 */
import { ERRNO, SyscallError } from "./errno.ts";

/** A DataView over exactly the bytes of `b` (which may be a window into a larger buffer). */
export function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Rounds up to a multiple of 4 (NLMSG_ALIGN, RTA_ALIGN). */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** `size` bytes written by `set` through a DataView. */
function fixed(size: number, set: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(size);
  set(dataView(b));
  return b;
}

export function u8(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff);
}
export const u16 = (n: number): Uint8Array => fixed(2, (v) => v.setUint16(0, n, true));
export const u32 = (n: number): Uint8Array => fixed(4, (v) => v.setUint32(0, n >>> 0, true));
export const i32 = (n: number): Uint8Array => fixed(4, (v) => v.setInt32(0, n, true));
export const u64 = (n: bigint): Uint8Array => fixed(8, (v) => v.setBigUint64(0, n, true));
export const u16be = (n: number): Uint8Array => fixed(2, (v) => v.setUint16(0, n, false));
export const i32be = (n: number): Uint8Array => fixed(4, (v) => v.setInt32(0, n, false));

// ---------------------------------------------------------------- sockets

export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
/** Takes a struct timeval (timeval() below). */
export const SO_RCVTIMEO = 20;

export const AF_UNIX = 1;
export const AF_NETLINK = 16;

/** struct timeval { long tv_sec; long tv_usec; } (64-bit longs), for SO_RCVTIMEO. */
export function timeval(ms: number): Uint8Array {
  return fixed(16, (v) => {
    v.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true);
    v.setBigInt64(8, BigInt((ms % 1000) * 1000), true);
  });
}

/** struct sockaddr_nl: family u16, pad u16, pid u32, groups u32. */
export function sockaddrNl(pid = 0, groups = 0): Uint8Array {
  return fixed(12, (v) => {
    v.setUint16(0, AF_NETLINK, true);
    v.setUint32(4, pid, true);
    v.setUint32(8, groups, true);
  });
}

/** sizeof(struct sockaddr_un): sa_family_t (2 bytes) + sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_MAX = 108;

/**
 * A sockaddr_un for a path, or for an abstract name when the address starts with "@" (as
 * $NOTIFY_SOCKET writes it): the "@" becomes a NUL byte and the length excludes any terminator.
 */
export function sockaddrUn(address: string): { addr: Uint8Array; len: number } {
  if (address === "" || address === "@") {
    throw new SyscallError("sockaddr_un", ERRNO.EINVAL, `empty unix socket address`, "set $NOTIFY_SOCKET to a path or @name");
  }
  const abstract = address.startsWith("@");
  const name = new TextEncoder().encode(abstract ? address.slice(1) : address);
  // A path needs room for its trailing NUL, an abstract name for its leading one.
  const room = SUN_PATH_MAX - 1;
  if (name.length > room) {
    throw new SyscallError("sockaddr_un", ERRNO.ENAMETOOLONG, `unix socket address too long (${name.length} bytes, at most ${room}): ${address}`);
  }
  const addr = fixed(SOCKADDR_UN_SIZE, (v) => v.setUint16(0, AF_UNIX, true));
  // An abstract name starts after sun_path[0], left NUL; a path's NUL follows it, also left.
  addr.set(name, abstract ? 3 : 2);
  return { addr, len: 2 + 1 + name.length };
}
