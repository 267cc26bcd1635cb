/**
 * AF_UNIX sockets through libc: the one datagram sd_notify sends, a datagram receiver (for
 * tests, and anything that must play $NOTIFY_SOCKET), and SO_PEERCRED on a connected socket.
 * Constants are the asm-generic values, the same on x86_64 and arm64.
 */
import { libc, errno, SyscallError } from "./libc.ts";
import { ERRNO, errnoName } from "./errno.ts";
import { AF_UNIX, dataView, SO_RCVTIMEO, SOCK_CLOEXEC, sockaddrUn, SOL_SOCKET, timeval } from "./bytes.ts";

/** Built in ffi/bytes.ts with the other socket structs. */
export { sockaddrUn };

const SOCK_DGRAM = 2;
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
