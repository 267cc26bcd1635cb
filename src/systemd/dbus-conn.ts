/**
 * A D-Bus connection over a unix stream socket (effects). Two kinds of peer (manager.ts's
 * connectSystemd picks one):
 * - systemd's private socket /run/systemd/private: peer-to-peer with PID 1, root only, no
 *   dbus-daemon involved and no Hello (PID 1 answers directly and sends us every signal);
 * - a message bus (the system bus as fallback, or a test's own dbus-daemon): Hello first, and
 *   destinations on every call.
 * Authentication is SASL EXTERNAL with the hex of our uid's decimal digits, and BEGIN sent in the
 * same write (see dbus-auth.ts authRequest for why it must not wait for the server's OK).
 * Replies are matched to calls by serial (dbus-calls.ts); D-Bus error replies become NvwaError
 * "dbus.<ErrorName>".
 */
import type { Socket } from "bun";
import { NvwaError } from "../errors.ts";
import { SocketWriter } from "../socket-writer.ts";
import { authError, authRequest, AuthReply } from "./dbus-auth.ts";
import { PendingCalls } from "./dbus-calls.ts";
import { MessageFramer } from "./dbus-framer.ts";
import { encodeMessage, MessageFlag, MessageType, type DBusValue, type Message } from "./dbus-wire.ts";

/** libdbus' and sd-bus' default method call timeout. */
export const DEFAULT_CALL_TIMEOUT_MS = 25_000;
const AUTH_TIMEOUT_MS = 10_000;

export interface CallOptions {
  destination?: string;
  path: string;
  interface?: string;
  member: string;
  signature?: string;
  body?: DBusValue[];
  /** Fire and forget: sets NO_REPLY_EXPECTED and resolves at once. */
  noReply?: boolean;
  timeoutMs?: number;
}

export interface ConnectOptions {
  /** Socket path. */
  path: string;
  /** A message bus (dbus-daemon): send Hello and expect a unique name. False for peer-to-peer. */
  bus: boolean;
  timeoutMs?: number;
  /** Overrides process.getuid() in AUTH EXTERNAL (tests prove the server checks it). */
  uid?: number;
}

export class DBusConnection {
  private socket: Socket<undefined> | undefined;
  private serial = 0;
  private readonly framer = new MessageFramer();
  private readonly out = new SocketWriter();
  private readonly calls = new PendingCalls();
  private readonly signalHandlers = new Set<(m: Message) => void>();
  private callHandler: ((m: Message) => void) | undefined;
  private closedError: NvwaError | undefined;
  /** The bus' name for us (only on a message bus). */
  uniqueName: string | undefined;
  /** The server's GUID from the SASL OK line. */
  guid = "";

  private constructor(
    readonly path: string,
    readonly bus: boolean,
  ) {}

  static async connect(opts: ConnectOptions): Promise<DBusConnection> {
    const conn = new DBusConnection(opts.path, opts.bus);
    await conn.open(opts.uid ?? process.getuid?.() ?? 0, opts.timeoutMs ?? AUTH_TIMEOUT_MS);
    if (opts.bus) {
      const reply = await conn.call({
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "Hello",
      });
      conn.uniqueName = String(reply.body[0]);
    }
    return conn;
  }

  private open(uid: number, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const answer = new AuthReply();
      let authed = false;
      const fail = (e: NvwaError): void => {
        clearTimeout(timer);
        this.closedError = e;
        this.socket?.end();
        reject(e);
      };
      const timer = setTimeout(
        () =>
          fail(
            new NvwaError("dbus.timeout", `D-Bus authentication on ${this.path} got no answer in ${timeoutMs} ms`, {
              hint: "the peer is stuck or is not a D-Bus server; check `journalctl -b`",
            }),
          ),
        timeoutMs,
      );
      Bun.connect({
        unix: this.path,
        socket: {
          data: (_s, chunk: Buffer) => {
            if (authed) {
              this.receive(chunk);
              return;
            }
            const a = answer.push(chunk);
            if (a === undefined) return;
            if ("refused" in a) {
              fail(authError(this.path, a.refused));
              return;
            }
            this.guid = a.guid;
            authed = true;
            clearTimeout(timer);
            // BEGIN went out with AUTH (authRequest); what follows OK is already message data.
            if (a.rest.length > 0) this.receive(a.rest);
            resolve();
          },
          drain: () => {
            this.out.flush();
          },
          close: () => {
            if (!authed) fail(authError(this.path, "the connection closed during authentication"));
            else this.onClosed();
          },
          error: (_s, e) => {
            if (!authed) fail(authError(this.path, e.message));
            else {
              // Also what Bun reports when a handler of ours threw mid-chunk: the stream is no
              // longer trustworthy, so fail every pending call now rather than at its timeout.
              this.onClosed(e);
              this.socket?.end();
            }
          },
        },
      }).then(
        (s) => {
          this.socket = s;
          this.out.attach(s);
          this.out.write(authRequest(uid));
        },
        (e: unknown) => {
          clearTimeout(timer);
          const err = e as NodeJS.ErrnoException;
          reject(
            new NvwaError("dbus.unreachable", `cannot connect to D-Bus socket ${this.path}: ${err.code ?? err.message}`, {
              hint:
                err.code === "EACCES"
                  ? "run nvwa as root"
                  : "is systemd running as PID 1? nvwa talks to it over /run/systemd/private",
              details: { path: this.path, errno: err.code },
              cause: e,
            }),
          );
        },
      );
    });
  }

  private receive(chunk: Uint8Array): void {
    this.framer.push(chunk);
    for (;;) {
      let m: Message | undefined;
      try {
        m = this.framer.next();
      } catch (e) {
        // A stream we cannot parse cannot be resynchronised: drop the connection.
        const err = e instanceof NvwaError ? e : new NvwaError("dbus.bad-message", String(e));
        this.onClosed(err);
        this.socket?.end();
        return;
      }
      if (m === undefined) return;
      this.dispatch(m);
    }
  }

  private dispatch(m: Message): void {
    if (m.type === MessageType.methodReturn || m.type === MessageType.error) {
      this.calls.settle(m);
    } else if (m.type === MessageType.signal) {
      for (const h of this.signalHandlers) {
        try {
          h(m);
        } catch {
          // A handler's own bug must not stop the other handlers or the connection; the handlers
          // (job waits) time out and report on their side, so there is nobody to tell here.
        }
      }
    } else if (m.type === MessageType.methodCall) {
      if (this.callHandler !== undefined) this.callHandler(m);
      else this.refuseCall(m);
    }
    // other message types must be ignored (spec)
  }

  /** nvwa serves no methods: a call that wants a reply gets UnknownMethod rather than a timeout. */
  private refuseCall(m: Message): void {
    if ((m.flags & MessageFlag.noReplyExpected) !== 0 || this.closed) return;
    this.send({
      type: MessageType.error,
      flags: MessageFlag.noReplyExpected,
      errorName: "org.freedesktop.DBus.Error.UnknownMethod",
      replySerial: m.serial,
      ...(m.sender === undefined ? {} : { destination: m.sender }),
      signature: "s",
      body: [`no method ${m.interface ?? ""}.${m.member ?? ""} here`],
    });
  }

  private onClosed(cause?: Error): void {
    if (this.closedError === undefined) {
      this.closedError = new NvwaError("dbus.disconnected", `D-Bus connection ${this.path} closed${cause ? `: ${cause.message}` : ""}`, {
        hint: "the peer went away (systemd re-executing or shutting down?); retry the operation",
      });
    }
    this.calls.failAll(this.closedError);
  }

  private nextSerial(): number {
    this.serial = this.serial >= 0xffffffff ? 1 : this.serial + 1;
    return this.serial;
  }

  /** Sends any message; returns its serial. */
  send(m: Omit<Message, "serial">): number {
    if (this.closedError) throw this.closedError;
    const serial = this.nextSerial();
    this.out.write(encodeMessage({ ...m, serial }));
    return serial;
  }

  /** A method call; resolves with the METHOD_RETURN, rejects with NvwaError "dbus.<ErrorName>". */
  call(c: CallOptions): Promise<Message> {
    const what = `${c.interface ? `${c.interface}.` : ""}${c.member}(${c.path})`;
    const msg: Omit<Message, "serial"> = {
      type: MessageType.methodCall,
      flags: c.noReply ? MessageFlag.noReplyExpected : 0,
      path: c.path,
      member: c.member,
      signature: c.signature ?? "",
      body: c.body ?? [],
      ...(c.interface === undefined ? {} : { interface: c.interface }),
      ...(c.destination === undefined ? {} : { destination: c.destination }),
    };
    if (this.closedError) return Promise.reject(this.closedError);
    let serial: number;
    try {
      serial = this.send(msg);
    } catch (e) {
      return Promise.reject(e);
    }
    if (c.noReply) return Promise.resolve({ ...msg, serial });
    return this.calls.wait(serial, what, c.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
  }

  /** Registers a signal handler; returns a function that removes it. */
  onSignal(handler: (m: Message) => void): () => void {
    this.signalHandlers.add(handler);
    return () => this.signalHandlers.delete(handler);
  }

  /**
   * Hands every incoming method call to `handler`, which answers it with send() (tests play a
   * D-Bus service this way). Without one, calls get UnknownMethod.
   */
  onMethodCall(handler: (m: Message) => void): void {
    this.callHandler = handler;
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  close(): void {
    this.onClosed();
    this.socket?.end();
  }
}
