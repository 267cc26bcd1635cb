/**
 * AF_UNIX sockets through libc: the one datagram sd_notify sends, a datagram receiver (for
 * tests, and anything that must play $NOTIFY_SOCKET), SO_PEERCRED on a connected socket, and a
 * blocking write-only stream (a journal stream handed to a restored process through criu's
 * --inherit-fd: criu applies no file flags to an inherited socket, so it must be made the way
 * systemd makes a service's stdout, blocking).
 * Constants are the asm-generic values, the same on x86_64 and arm64.
 */
import { libc, errno, SyscallError } from "./libc.ts";
import { ERRNO, errnoName } from "./errno.ts";
import { AF_UNIX, dataView, SO_RCVTIMEO, SOCK_CLOEXEC, sockaddrUn, SOL_SOCKET, timeval } from "./bytes.ts";

/** Built in ffi/bytes.ts with the other socket structs. */
export { sockaddrUn };

const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SHUT_RD = 0;
const SO_SNDBUF = 7;
const SO_SNDBUFFORCE = 32;
const SO_PEERCRED = 17;
const MSG_DONTWAIT = 0x40;

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
      const tv = timeval(timeoutMs);
      if (libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) !== 0) throw new SyscallError("setsockopt(SO_RCVTIMEO)", errno());
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
  const cred = new Uint8Array(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  const len = new Uint32Array([12]);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) {
    throw new SyscallError("getsockopt(SO_PEERCRED)", errno());
  }
  const v = dataView(cred);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}

/**
 * A blocking stream connected to `address`, shut for reading, its send buffer raised to `sndbuf`
 * (SO_SNDBUFFORCE as root, else SO_SNDBUF), then `first` written in full. The fd is close-on-exec:
 * a child gets it only where the caller maps it (Bun.spawn's stdio slots dup2 it, which clears the flag).
 */
export function connectStream(address: string, first: Uint8Array, sndbuf = 8 * 1024 * 1024): number {
  const fd = libc().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError("socket(AF_UNIX, SOCK_STREAM)", errno());
  try {
    const { addr, len } = sockaddrUn(address);
    if (libc().connect(fd, addr, len) < 0) {
      const e = errno();
      throw new SyscallError("connect", e, `cannot connect to ${address}: ${errnoName(e)}`, e === ERRNO.ENOENT || e === ERRNO.ECONNREFUSED ? "nobody listens there" : undefined);
    }
    if (libc().shutdown(fd, SHUT_RD) < 0) throw new SyscallError("shutdown(SHUT_RD)", errno());
    const size = new Int32Array([sndbuf]);
    if (libc().setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, size, 4) < 0 && libc().setsockopt(fd, SOL_SOCKET, SO_SNDBUF, size, 4) < 0) {
      throw new SyscallError("setsockopt(SO_SNDBUF)", errno());
    }
    let off = 0;
    while (off < first.length) {
      const n = Number(libc().write(fd, first.subarray(off), first.length - off));
      if (n < 0) {
        const e = errno();
        if (e === ERRNO.EINTR) continue;
        throw new SyscallError("write", e, `cannot write to ${address}: ${errnoName(e)}`);
      }
      off += n;
    }
    return fd;
  } catch (e) {
    libc().close(fd);
    throw e;
  }
}

/** Closes an fd this module handed out. */
export function closeFd(fd: number): void {
  libc().close(fd);
}
