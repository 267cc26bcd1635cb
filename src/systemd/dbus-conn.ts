/**
 * A D-Bus connection over a unix stream socket (effects). Two ways in:
 * - systemd's private socket /run/systemd/private: peer-to-peer with PID 1, root only, no
 *   dbus-daemon involved and no Hello (PID 1 answers directly and sends us every signal);
 * - a message bus (the system bus as fallback, or a test's own dbus-daemon): Hello first, and
 *   destinations on every call.
 * Authentication is SASL EXTERNAL with the hex of our uid's decimal digits, and BEGIN sent in the
 * same write (see authRequest for why it must not wait for the server's OK).
 * Replies are matched to calls by serial; D-Bus error replies become NvwaError "dbus.<ErrorName>".
 */
import type { Socket } from "bun";
import { NvwaError } from "../errors.ts";
import { log } from "../log.ts";
import {
  decodeMessage,
  encodeMessage,
  messageLength,
  MessageFlag,
  MessageType,
  type DBusValue,
  type Message,
} from "./dbus-wire.ts";

export const SYSTEMD_PRIVATE_SOCKET = "/run/systemd/private";
export const SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket";
/** libdbus' and sd-bus' default method call timeout. */
export const DEFAULT_CALL_TIMEOUT_MS = 25_000;
const AUTH_TIMEOUT_MS = 10_000;
/** A SASL line longer than this is not a server we understand. */
const MAX_AUTH_LINE = 4096;

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

/** The reply to a method call we serve (see DBusConnection.onMethodCall). */
export interface ServedReply {
  signature?: string;
  body?: DBusValue[];
}

/** Thrown from a method call handler to answer with a D-Bus error of that name. */
export class DBusRemoteError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
  }
}

interface Pending {
  resolve: (m: Message) => void;
  reject: (e: NvwaError) => void;
  timer: ReturnType<typeof setTimeout>;
  what: string;
}

/** "0" → "30": SASL EXTERNAL's identity is the uid as decimal text, hex-encoded. */
export function saslUidHex(uid: number): string {
  return Buffer.from(String(uid), "ascii").toString("hex");
}

/**
 * Everything the client says during authentication, as one write: the NUL byte (where a server
 * may read SCM_CREDENTIALS), AUTH EXTERNAL with our identity, and BEGIN, which the server acts
 * on only after its OK went out. sd-bus' own clients (systemctl, busctl) pipeline it the same way.
 *
 * BEGIN must not wait for the OK. sd-bus as a server (PID 1's /run/systemd/private; systemd 252
 * src/libsystemd/sd-bus/bus-socket.c, unchanged in 255) reads up to 256 bytes at a time while
 * authenticating; a message that arrives in the same read as a late BEGIN is moved to the front
 * of its read buffer and then left there: the connection goes on waiting for POLLIN
 * (sd_bus_get_events in sd-bus.c), and no more bytes come while the client waits for the reply.
 * The call is never answered, and PID 1 logs nothing about it even at debug level. A client that
 * sends BEGIN after the OK and its first call in the same turn of its event loop (nvwa did)
 * loses that call whenever PID 1 is slow to read: under load, or busy after a daemon-reload.
 * Sent with AUTH, BEGIN is in the server's first read and is handled as soon as the OK is
 * written, before the client can have sent anything else.
 */
export function authRequest(uid: number): Uint8Array {
  return Buffer.from(`\0AUTH EXTERNAL ${saslUidHex(uid)}\r\nBEGIN\r\n`, "ascii");
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
export function errorFromReply(reply: Message, call: string): NvwaError {
  const name = reply.errorName ?? "org.freedesktop.DBus.Error.Failed";
  const text = typeof reply.body[0] === "string" ? reply.body[0] : name;
  return new NvwaError(`dbus.${name}`, `${call}: ${text}`, {
    hint: HINTS[name] ?? "see `journalctl -b` for what the peer logged about it",
    details: { errorName: name, call },
  });
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

/**
 * Cuts whole messages out of a byte stream that arrives in chunks of any size: several messages
 * in one chunk, one message over many, a header split anywhere.
 */
export class MessageFramer {
  private buf: Uint8Array = new Uint8Array(0);

  /** Appends a chunk; copied, since the runtime reuses the buffer it hands to the data handler. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const merged = new Uint8Array(this.buf.length + chunk.length);
    merged.set(this.buf);
    merged.set(chunk, this.buf.length);
    this.buf = merged;
  }

  /** The next whole message, or undefined until more bytes arrive. Throws dbus.* NvwaErrors on a stream that is not D-Bus. */
  next(): Message | undefined {
    const len = messageLength(this.buf);
    if (len === undefined || this.buf.length < len) return undefined;
    const m = decodeMessage(this.buf.subarray(0, len));
    this.buf = this.buf.slice(len);
    return m;
  }

  /** Bytes received that do not yet make a whole message. */
  get buffered(): number {
    return this.buf.length;
  }
}

export class DBusConnection {
  private socket: Socket<undefined> | undefined;
  private serial = 0;
  private readonly framer = new MessageFramer();
  private outbox: Uint8Array[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly signalHandlers = new Set<(m: Message) => void>();
  private callHandler: ((m: Message) => ServedReply | Promise<ServedReply>) | undefined;
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
      let authLine = "";
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
            authLine += chunk.toString("latin1");
            const nl = authLine.indexOf("\r\n");
            if (nl < 0) {
              if (authLine.length > MAX_AUTH_LINE) fail(authError(this.path, "an endless SASL line"));
              return;
            }
            const line = authLine.slice(0, nl);
            const rest = Buffer.from(authLine.slice(nl + 2), "latin1");
            if (line.startsWith("OK ")) {
              this.guid = line.slice(3).trim();
              authed = true;
              clearTimeout(timer);
              // BEGIN went out with AUTH (authRequest); what follows OK is already message data.
              if (rest.length > 0) this.receive(rest);
              resolve();
            } else {
              fail(authError(this.path, `"${line.slice(0, 200)}"`));
            }
          },
          drain: () => this.flush(),
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
          this.write(authRequest(uid));
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

  private write(data: Uint8Array): void {
    this.outbox.push(data);
    this.flush();
  }

  private flush(): void {
    const s = this.socket;
    if (s === undefined) return; // the connect promise has not resolved yet; open() writes then
    while (this.outbox.length > 0) {
      const head = this.outbox[0] as Uint8Array;
      const n = s.write(head);
      if (n < 0) return;
      if (n < head.length) {
        this.outbox[0] = head.subarray(n);
        return; // the rest goes out on drain
      }
      this.outbox.shift();
    }
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
      const p = m.replySerial === undefined ? undefined : this.pending.get(m.replySerial);
      if (p === undefined) return; // a reply to a call we gave up on
      this.pending.delete(m.replySerial as number);
      clearTimeout(p.timer);
      if (m.type === MessageType.error) p.reject(errorFromReply(m, p.what));
      else p.resolve(m);
    } else if (m.type === MessageType.signal) {
      for (const h of this.signalHandlers) {
        try {
          h(m);
        } catch (e) {
          log.debug(`D-Bus signal handler failed: ${(e as Error).message}`);
        }
      }
    } else if (m.type === MessageType.methodCall) {
      void this.serve(m);
    }
    // other message types must be ignored (spec)
  }

  private async serve(m: Message): Promise<void> {
    const noReply = (m.flags & MessageFlag.noReplyExpected) !== 0;
    const replyTo = { replySerial: m.serial, ...(m.sender === undefined ? {} : { destination: m.sender }) };
    try {
      if (this.callHandler === undefined) {
        throw new DBusRemoteError("org.freedesktop.DBus.Error.UnknownMethod", `no method ${m.interface ?? ""}.${m.member ?? ""} here`);
      }
      const r = await this.callHandler(m);
      if (noReply) return;
      this.send({ type: MessageType.methodReturn, flags: MessageFlag.noReplyExpected, ...replyTo, signature: r.signature ?? "", body: r.body ?? [] });
    } catch (e) {
      if (noReply) return;
      const name = e instanceof DBusRemoteError ? e.errorName : "org.freedesktop.DBus.Error.Failed";
      const text = e instanceof Error ? e.message : String(e);
      this.send({ type: MessageType.error, flags: MessageFlag.noReplyExpected, errorName: name, ...replyTo, signature: "s", body: [text] });
    }
  }

  private onClosed(cause?: Error): void {
    if (this.closedError === undefined) {
      this.closedError = new NvwaError("dbus.disconnected", `D-Bus connection ${this.path} closed${cause ? `: ${cause.message}` : ""}`, {
        hint: "the peer went away (systemd re-executing or shutting down?); retry the operation",
      });
    }
    for (const [serial, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(this.closedError);
      this.pending.delete(serial);
    }
  }

  private nextSerial(): number {
    this.serial = this.serial >= 0xffffffff ? 1 : this.serial + 1;
    return this.serial;
  }

  /** Sends any message; returns its serial. */
  send(m: Omit<Message, "serial">): number {
    if (this.closedError) throw this.closedError;
    const serial = this.nextSerial();
    this.write(encodeMessage({ ...m, serial }));
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
    const timeoutMs = c.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
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

  /** Registers a signal handler; returns a function that removes it. */
  onSignal(handler: (m: Message) => void): () => void {
    this.signalHandlers.add(handler);
    return () => this.signalHandlers.delete(handler);
  }

  /** Serves incoming method calls (used by tests to play a D-Bus service on a real bus). */
  onMethodCall(handler: (m: Message) => ServedReply | Promise<ServedReply>): void {
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

function authError(path: string, what: string): NvwaError {
  return new NvwaError("dbus.auth-rejected", `D-Bus server ${path} refused authentication: ${what}`, {
    hint: "nvwa must run as root to talk to systemd",
    details: { path },
  });
}

/**
 * Connects to systemd: its private socket first, then the system bus (where systemd is
 * org.freedesktop.systemd1 and calls need a destination).
 */
export async function connectSystemd(
  opts: { privateSocket?: string; busSocket?: string | null; timeoutMs?: number } = {},
): Promise<DBusConnection> {
  const privatePath = opts.privateSocket ?? SYSTEMD_PRIVATE_SOCKET;
  const busPath = opts.busSocket === undefined ? SYSTEM_BUS_SOCKET : opts.busSocket;
  const timing = opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs };
  try {
    return await DBusConnection.connect({ path: privatePath, bus: false, ...timing });
  } catch (first) {
    if (busPath === null) throw first;
    try {
      const conn = await DBusConnection.connect({ path: busPath, bus: true, ...timing });
      log.debug(`systemd's private socket failed (${(first as Error).message}); using the system bus ${busPath}`);
      return conn;
    } catch (second) {
      throw new NvwaError(
        "dbus.unreachable",
        `cannot reach systemd over D-Bus: ${(first as Error).message}; ${(second as Error).message}`,
        {
          hint: "nvwa needs systemd as PID 1 and root privileges; check `systemctl is-system-running`",
          details: { privateSocket: privatePath, busSocket: busPath },
          cause: second,
        },
      );
    }
  }
}
