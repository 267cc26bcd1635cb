/**
 * AF_NETLINK datagram sockets: open, send one message buffer to the kernel, receive one
 * datagram. Only bytes cross this boundary; the message codec is in src/net/codec.ts.
 */
import { libc, errno, SyscallError } from "./libc.ts";
import { ERRNO } from "./errno.ts";
import { AF_NETLINK, i32, SO_RCVTIMEO, SOCK_CLOEXEC, sockaddrNl, SOL_SOCKET, timeval } from "./bytes.ts";

const SOCK_RAW = 3;
export const NETLINK_ROUTE = 0;

const SO_RCVBUF = 8;
const SOL_NETLINK = 270;
const NETLINK_EXT_ACK = 11;
const NETLINK_CAP_ACK = 10;

const MSG_PEEK = 0x2;
const MSG_TRUNC = 0x20;

export interface NetlinkSocketOptions {
  /** How long receive() waits for the kernel before giving up. */
  timeoutMs?: number;
}

export class NetlinkSocket {
  readonly fd: number;
  private closed = false;

  constructor(fd: number) {
    this.fd = fd;
  }

  /** Sends one buffer (one or more netlink messages) to the kernel (port id 0). */
  send(message: Uint8Array): void {
    const dest = sockaddrNl();
    const n = Number(libc().sendto(this.fd, message, message.length, 0, dest, dest.length));
    if (n < 0) {
      const e = errno();
      throw new SyscallError("sendto(netlink)", e, undefined, "the kernel refused a netlink request; see the error name");
    }
    if (n !== message.length) {
      throw new SyscallError("sendto(netlink)", ERRNO.EMSGSIZE, `sendto(netlink) sent ${n} of ${message.length} bytes`);
    }
  }

  /**
   * Receives one datagram. The size is peeked first (MSG_PEEK|MSG_TRUNC reports the full
   * length on netlink) so a large dump chunk is never silently cut.
   */
  receive(): Uint8Array {
    const probe = new Uint8Array(16);
    const size = this.recvInto(probe, MSG_PEEK | MSG_TRUNC);
    const buf = new Uint8Array(Math.max(size, 16));
    const n = this.recvInto(buf, 0);
    return buf.subarray(0, n);
  }

  private recvInto(buf: Uint8Array, flags: number): number {
    for (;;) {
      const n = Number(libc().recv(this.fd, buf, buf.length, flags));
      if (n >= 0) return n;
      const e = errno();
      if (e === ERRNO.EINTR) continue;
      if (e === ERRNO.EAGAIN) {
        throw new SyscallError(
          "recv(netlink)",
          e,
          "the kernel did not answer a netlink request in time",
          "retry; if it persists, the rtnetlink lock may be held by a stuck process (check dmesg)",
        );
      }
      throw new SyscallError("recv(netlink)", e);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc().close(this.fd);
  }
}

/**
 * Opens a netlink socket of the given protocol, bound to an automatic port id, with extended
 * acks on (the kernel then explains refusals in words) and capped acks (errors do not echo
 * the whole request back).
 */
export function openNetlink(protocol = NETLINK_ROUTE, options: NetlinkSocketOptions = {}): NetlinkSocket {
  const c = libc();
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    throw new SyscallError(
      "socket(AF_NETLINK)",
      errno(),
      undefined,
      "nvwa needs netlink sockets to save and restore the network; is this a container without NET_ADMIN?",
    );
  }
  const sock = new NetlinkSocket(fd);
  try {
    const addr = sockaddrNl();
    if (c.bind(fd, addr, addr.length) !== 0) throw new SyscallError("bind(netlink)", errno());
    const on = i32(1);
    // Both are best effort: kernels before 4.12 lack EXT_ACK; the codec copes either way.
    c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, on, on.length);
    c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, on, on.length);
    const rcvbuf = i32(1 << 20);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf, rcvbuf.length);
    const tv = timeval(options.timeoutMs ?? 10_000);
    if (c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) !== 0) {
      throw new SyscallError("setsockopt(SO_RCVTIMEO)", errno());
    }
  } catch (e) {
    sock.close();
    throw e;
  }
  return sock;
}
