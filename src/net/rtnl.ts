/**
 * A request/response client for rtnetlink over one NETLINK_ROUTE socket: multipart dumps
 * (retried when the kernel flags them inconsistent) and acknowledged requests whose refusals
 * come back as RtnlError with the errno and the kernel's own explanation.
 */
import { openNetlink, type NetlinkSocket } from "../../ffi/netlink.ts";
import { errnoName } from "../../ffi/errno.ts";
import { NvwaError } from "../errors.ts";
import { decodeError, decodeMessages, encodeMessage, type NlMessage } from "./codec.ts";
import { NLM_F, NLMSG } from "./constants.ts";

/** The kernel refused a request; `errno` says why, `kernelMessage` is its extended-ack text. */
export class RtnlError extends NvwaError {
  readonly errno: number;
  readonly errnoName: string;
  readonly kernelMessage: string | undefined;
  constructor(what: string, errnoValue: number, kernelMessage: string | undefined) {
    const name = errnoName(errnoValue);
    super("net.rtnl", `${what}: ${name}${kernelMessage === undefined ? "" : ` (${kernelMessage})`}`, {
      details: { errno: errnoValue, errnoName: name, ...(kernelMessage === undefined ? {} : { kernelMessage }) },
      hint: "the kernel refused the netlink request; the reason is in parentheses when it gave one",
    });
    this.errno = errnoValue;
    this.errnoName = name;
    this.kernelMessage = kernelMessage;
  }
  /** "EEXIST" or "EEXIST: <kernel's words>", for per-item reports. */
  get reason(): string {
    return this.kernelMessage === undefined ? this.errnoName : `${this.errnoName}: ${this.kernelMessage}`;
  }
}

const DUMP_ATTEMPTS = 5;

export class Rtnl {
  private readonly sock: NetlinkSocket;
  /** Every request gets its own number, so a late answer to an abandoned one is recognised and dropped. */
  private seq = 0;

  constructor(sock: NetlinkSocket = openNetlink()) {
    this.sock = sock;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  /** Runs a dump request (`body` is the fixed header of the message type) and returns every answer. */
  dump(type: number, body: Uint8Array, what: string): NlMessage[] {
    for (let attempt = 1; ; attempt++) {
      const { messages, interrupted } = this.dumpOnce(type, body, what);
      if (!interrupted) return messages;
      if (attempt >= DUMP_ATTEMPTS) {
        throw new NvwaError("net.dump-inconsistent", `${what}: the network kept changing during ${DUMP_ATTEMPTS} dumps`, {
          hint: "something (a DHCP client, a routing daemon) is rewriting the network; retry when it has settled",
        });
      }
    }
  }

  private dumpOnce(type: number, body: Uint8Array, what: string): { messages: NlMessage[]; interrupted: boolean } {
    const seq = this.nextSeq();
    this.sock.send(encodeMessage({ type, flags: NLM_F.REQUEST | NLM_F.DUMP, seq }, body));
    const out: NlMessage[] = [];
    let interrupted = false;
    for (;;) {
      for (const m of decodeMessages(this.sock.receive())) {
        if (m.seq !== seq) continue;
        if (m.flags & NLM_F.DUMP_INTR) interrupted = true;
        if (m.type === NLMSG.DONE) {
          // NLMSG_DONE carries the dump's own status as an int.
          const status = m.payload.length >= 4 ? new DataView(m.payload.buffer, m.payload.byteOffset, 4).getInt32(0, true) : 0;
          if (status < 0) throw new RtnlError(what, -status, undefined);
          return { messages: out, interrupted };
        }
        if (m.type === NLMSG.ERROR) {
          const ack = decodeError(m);
          if (ack.errno !== 0) throw new RtnlError(what, ack.errno, ack.message);
          continue;
        }
        if (m.type === NLMSG.NOOP) continue;
        if (m.type === NLMSG.OVERRUN) {
          interrupted = true;
          continue;
        }
        out.push(m);
      }
    }
  }

  /**
   * Sends one change request and waits for its acknowledgement. Throws RtnlError when the
   * kernel refuses it.
   */
  request(type: number, flags: number, body: Uint8Array, what: string): void {
    const seq = this.nextSeq();
    this.sock.send(encodeMessage({ type, flags: flags | NLM_F.REQUEST | NLM_F.ACK, seq }, body));
    for (;;) {
      for (const m of decodeMessages(this.sock.receive())) {
        if (m.seq !== seq || m.type !== NLMSG.ERROR) continue;
        const ack = decodeError(m);
        if (ack.errno !== 0) throw new RtnlError(what, ack.errno, ack.message);
        return;
      }
    }
  }

  close(): void {
    this.sock.close();
  }
}

/** Runs `fn` with a fresh rtnetlink client, closing it afterwards. */
export function withRtnl<T>(fn: (rtnl: Rtnl) => T): T {
  const rtnl = new Rtnl();
  try {
    return fn(rtnl);
  } finally {
    rtnl.close();
  }
}
