/**
 * The method calls of a D-Bus connection that wait for their reply (effects: timers): each
 * matched to its reply by serial, given up after its timeout, and failed all at once when the
 * connection closes. D-Bus error replies become NvwaError "dbus.<ErrorName>" with a hint.
 */
import { NvwaError } from "../errors.ts";
import { MessageType, type Message } from "./dbus-wire.ts";

interface Pending {
  resolve: (m: Message) => void;
  reject: (e: NvwaError) => void;
  timer: ReturnType<typeof setTimeout>;
  what: string;
}

const HINTS: Record<string, string> = {
  "org.freedesktop.DBus.Error.AccessDenied": "run nvwa as root",
  "org.freedesktop.DBus.Error.ServiceUnknown": "the D-Bus service is not running; is systemd PID 1 on this machine?",
  "org.freedesktop.DBus.Error.UnknownMethod": "the peer does not implement this method; its version may be too old",
  "org.freedesktop.DBus.Error.UnknownObject": "the object does not exist (any more)",
  "org.freedesktop.DBus.Error.NoReply": "the peer did not answer in time; check `journalctl -b` for why it is stuck",
  "org.freedesktop.systemd1.NoSuchUnit": "check the unit name with `systemctl list-units --all`",
  "org.freedesktop.systemd1.LoadFailed": "check the unit file with `systemctl status <unit>`",
  "org.freedesktop.systemd1.TransactionIsDestructive": "another job conflicts with this one; retry when systemd is idle",
};

/** The NvwaError for an ERROR reply: code "dbus.<ErrorName>", the peer's message, a hint. */
function errorFromReply(reply: Message, call: string): NvwaError {
  const name = reply.errorName ?? "org.freedesktop.DBus.Error.Failed";
  const text = typeof reply.body[0] === "string" ? reply.body[0] : name;
  return new NvwaError(`dbus.${name}`, `${call}: ${text}`, {
    hint: HINTS[name] ?? "see `journalctl -b` for what the peer logged about it",
    details: { errorName: name, call },
  });
}

export class PendingCalls {
  private readonly pending = new Map<number, Pending>();

  /** The reply to the call sent with `serial` (`what` names it in errors), or dbus.timeout after timeoutMs. */
  wait(serial: number, what: string, timeoutMs: number): Promise<Message> {
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(
          new NvwaError("dbus.timeout", `${what} got no reply in ${timeoutMs} ms`, {
            hint: "the peer is busy or stuck; check `journalctl -b` and retry",
            details: { call: what, timeoutMs },
          }),
        );
      }, timeoutMs);
      this.pending.set(serial, { resolve, reject, timer, what });
    });
  }

  /** Settles the call a METHOD_RETURN or ERROR answers. */
  settle(m: Message): void {
    const p = m.replySerial === undefined ? undefined : this.pending.get(m.replySerial);
    if (p === undefined) return; // a reply to a call we gave up on
    this.pending.delete(m.replySerial as number);
    clearTimeout(p.timer);
    if (m.type === MessageType.error) p.reject(errorFromReply(m, p.what));
    else p.resolve(m);
  }

  /** Rejects every call still waiting with `e` (the connection closed). */
  failAll(e: NvwaError): void {
    for (const [serial, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(e);
      this.pending.delete(serial);
    }
  }
}
