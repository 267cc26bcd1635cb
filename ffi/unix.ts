/**
 * AF_UNIX sockets through libc: the one datagram sd_notify sends, a datagram receiver (for
 * tests, and anything that must play $NOTIFY_SOCKET), and SO_PEERCRED on a connected socket.
 * Constants are the asm-generic values, the same on x86_64 and arm64.
 */
import { libc, errno, SyscallError } from "./libc.ts";
import { ERRNO, errnoName } from "./errno.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_RCVTIMEO = 20;
const MSG_DONTWAIT = 0x40;
/** sizeof(struct sockaddr_un): sa_family_t (2 bytes) + sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_MAX = 108;

/**
 * A sockaddr_un for a path, or for an abstract name when the address starts with "@" (as
 * $NOTIFY_SOCKET writes it): the "@" becomes a NUL byte and the length excludes any terminator.
 */
export function sockaddrUn(address: string): { addr: Buffer; len: number } {
  if (address === "" || address === "@") {
    throw new SyscallError("sockaddr_un", ERRNO.EINVAL, `empty unix socket address`, "set $NOTIFY_SOCKET to a path or @name");
  }
  const abstract = address.startsWith("@");
  const name = Buffer.from(abstract ? address.slice(1) : address, "utf8");
  // A path needs room for its trailing NUL, an abstract name for its leading one.
  const room = SUN_PATH_MAX - 1;
  if (name.length > room) {
    throw new SyscallError("sockaddr_un", ERRNO.ENAMETOOLONG, `unix socket address too long (${name.length} bytes, at most ${room}): ${address}`);
  }
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, 0);
  if (abstract) {
    addr[2] = 0;
    name.copy(addr, 3);
    return { addr, len: 2 + 1 + name.length };
  }
  name.copy(addr, 2);
  return { addr, len: 2 + name.length + 1 };
}

function datagramSocket(): number {
  const fd = libc().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError("socket(AF_UNIX, SOCK_DGRAM)", errno());
  return fd;
}

/** Sends one datagram to a unix socket address ("/path" or "@abstract"). */
export function sendDatagram(address: string, payload: Uint8Array): void {
  const { addr, len } = sockaddrUn(address);
  const fd = datagramSocket();
  try {
    const n = Number(libc().sendto(fd, payload, payload.length, 0, addr, len));
    if (n < 0) {
      const e = errno();
      throw new SyscallError(
        "sendto",
        e,
        `cannot send to unix socket ${address}: ${errnoName(e)}`,
        e === ERRNO.ENOENT || e === ERRNO.ECONNREFUSED ? "nobody listens there (is $NOTIFY_SOCKET stale?)" : undefined,
      );
    }
    if (n !== payload.length) throw new SyscallError("sendto", ERRNO.EMSGSIZE, `short datagram to ${address}: ${n} of ${payload.length} bytes`);
  } finally {
    libc().close(fd);
  }
}

export interface DatagramReceiver {
  readonly fd: number;
  readonly address: string;
  /** One datagram, or undefined if none arrived within timeoutMs. Blocks the thread meanwhile. */
  receive(timeoutMs: number, maxBytes?: number): Uint8Array | undefined;
  close(): void;
}

/** Binds a datagram socket at "/path" or "@abstract" (a path must not exist yet). */
export function bindDatagram(address: string): DatagramReceiver {
  const { addr, len } = sockaddrUn(address);
  const fd = datagramSocket();
  if (libc().bind(fd, addr, len) !== 0) {
    const e = errno();
    libc().close(fd);
    throw new SyscallError("bind", e, `cannot bind unix datagram socket ${address}: ${errnoName(e)}`);
  }
  let closed = false;
  return {
    fd,
    address,
    receive(timeoutMs: number, maxBytes = 65536): Uint8Array | undefined {
      const tv = Buffer.alloc(16); // struct timeval { long tv_sec; long tv_usec; }
      tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
      tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
      if (libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) !== 0) throw new SyscallError("setsockopt(SO_RCVTIMEO)", errno());
      const buf = Buffer.alloc(maxBytes);
      const n = Number(libc().recv(fd, buf, maxBytes, timeoutMs === 0 ? MSG_DONTWAIT : 0));
      if (n < 0) {
        const e = errno();
        if (e === ERRNO.EAGAIN || e === ERRNO.EINTR) return undefined;
        throw new SyscallError("recv", e);
      }
      return new Uint8Array(buf.subarray(0, n));
    },
    close(): void {
      if (closed) return;
      closed = true;
      libc().close(fd);
    },
  };
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** SO_PEERCRED: who is on the other end of a connected unix socket (as of connect()). */
export function peerCredentials(fd: number): PeerCredentials {
  const cred = Buffer.alloc(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  const len = new Uint32Array([12]);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) {
    throw new SyscallError("getsockopt(SO_PEERCRED)", errno());
  }
  return { pid: cred.readInt32LE(0), uid: cred.readUInt32LE(4), gid: cred.readUInt32LE(8) };
}
