/**
 * DBusConnection over real unix sockets, against servers written here: one that reads the way
 * sd-bus does as PID 1's private-socket server (the stand-in behind issue 12's lost LoadUnit),
 * and scripted ones that send bytes in awkward chunkings. Plus MessageFramer split everywhere.
 */
import { concat } from "../../ffi/bytes.ts";
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket, UnixSocketListener } from "bun";
import { authRequest } from "../../src/systemd/dbus-auth.ts";
import { DBusConnection } from "../../src/systemd/dbus-conn.ts";
import { MessageFramer } from "../../src/systemd/dbus-framer.ts";
import { decodeMessage, encodeMessage, messageLength, MessageType, type Message } from "../../src/systemd/dbus-wire.ts";
import { NvwaError } from "../../src/errors.ts";

const MANAGER = { path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" } as const;
const GUID = "0123456789abcdef0123456789abcdef";
const UNIT_PATH = "/org/freedesktop/systemd1/unit/x_2eservice";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function socketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-dbus-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "s");
}

function listen<T>(path: string, handlers: Parameters<typeof Bun.listen<T>>[0]["socket"]): UnixSocketListener<T> {
  const server = Bun.listen<T>({ unix: path, socket: handlers });
  cleanups.push(() => server.stop(true));
  return server;
}

async function connect(path: string): Promise<DBusConnection> {
  const conn = await DBusConnection.connect({ path, bus: false, timeoutMs: 3000 });
  cleanups.push(() => conn.close());
  return conn;
}


/** Polls `cond` until it holds or `ms` passed; returns whether it held. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await Bun.sleep(5);
  }
  return true;
}

const loadUnit = (conn: DBusConnection, timeoutMs: number): Promise<Message> =>
  conn.call({ ...MANAGER, member: "LoadUnit", signature: "s", body: ["x.service"], timeoutMs });

/** Whole messages at the front of a byte buffer; returns them and what is left. */
function cut(buf: Uint8Array): { messages: Message[]; rest: Uint8Array } {
  const messages: Message[] = [];
  for (;;) {
    const len = messageLength(buf);
    if (len === undefined || buf.length < len) return { messages, rest: buf };
    messages.push(decodeMessage(buf.subarray(0, len)));
    buf = buf.slice(len);
  }
}

/**
 * PID 1's end of /run/systemd/private as sd-bus reads it (systemd 252; unchanged in 255), one
 * event-loop iteration at a time, each `busyMs` after what woke it (a PID 1 busy elsewhere):
 * - authenticating (bus_socket_process_authenticating): first write queued SASL output, then
 *   bus_socket_read_auth: one read of at most max(256, 2 × buffered) bytes, then
 *   bus_socket_auth_verify_server on the complete lines: AUTH EXTERNAL queues "OK <guid>";
 *   BEGIN waits until that is written, then moves what follows it to the front of the read
 *   buffer and the connection is running (bus_start_running);
 * - running (process_running → dispatch_rqueue → bus_socket_read_message): reads only what the
 *   next message still needs, answers at most one message per iteration;
 * - the loop wakes the connection only when the socket has unread bytes or SASL output is queued
 *   (sd_bus_get_events: POLLIN in both states, POLLOUT with output queued; nothing else is ever
 *   queued here). Bytes already in the read buffer wake nothing.
 */
class SdBusLikeServer {
  served = 0;
  private readonly server: UnixSocketListener<SdBusConn>;

  constructor(path: string, busyMs: number) {
    this.server = listen<SdBusConn>(path, {
      open: (s) => {
        s.data = new SdBusConn(s, busyMs, () => this.served++);
      },
      data: (s, chunk) => s.data.received(chunk),
    });
  }

  get path(): string {
    return this.server.unix;
  }
}

class SdBusConn {
  private unread: Uint8Array = new Uint8Array(0); // in the kernel's socket buffer
  private rbuffer: Uint8Array = new Uint8Array(0); // read by sd-bus, not yet a message
  private authOut = "";
  private authBegin = 0;
  private running = false;
  private scheduled = false;

  constructor(
    private readonly s: Socket<SdBusConn>,
    private readonly busyMs: number,
    private readonly onServed: () => void,
  ) {}

  received(chunk: Uint8Array): void {
    this.unread = concat([this.unread, chunk]);
    this.wake();
  }

  private wake(): void {
    if (this.scheduled || (this.unread.length === 0 && this.authOut === "")) return;
    this.scheduled = true;
    setTimeout(() => {
      this.scheduled = false;
      if (this.running) this.processRunning();
      else this.processAuthenticating();
      this.wake();
    }, this.busyMs);
  }

  private read(max: number): void {
    const n = Math.min(max, this.unread.length);
    this.rbuffer = concat([this.rbuffer, this.unread.subarray(0, n)]);
    this.unread = this.unread.slice(n);
  }

  private processAuthenticating(): void {
    if (this.authOut !== "") {
      this.s.write(this.authOut);
      this.authOut = "";
      if (this.verify()) return;
    }
    if (this.verify()) return;
    this.read(Math.max(256, this.rbuffer.length * 2) - this.rbuffer.length);
    this.verify();
  }

  /** bus_socket_auth_verify_server; true when it did something. */
  private verify(): boolean {
    if (this.running || this.rbuffer.length < 3) return false;
    if (this.authBegin === 0) this.authBegin = 1; // after the NUL byte
    let processed = false;
    for (;;) {
      const text = Buffer.from(this.rbuffer).toString("latin1");
      const e = text.indexOf("\r\n", this.authBegin);
      if (e < 0) return processed;
      const line = text.slice(this.authBegin, e);
      if (line.startsWith("AUTH EXTERNAL")) this.authOut += `OK ${GUID}\r\n`;
      else if (line === "BEGIN") {
        if (this.authOut !== "") return true; // "We can't leave from the auth phase before we haven't written everything queued"
        this.rbuffer = this.rbuffer.slice(e + 2);
        this.running = true;
        return true;
      } else this.authOut += "ERROR\r\n";
      this.authBegin = e + 2;
      processed = true;
    }
  }

  private processRunning(): void {
    for (;;) {
      const need = this.rbuffer.length < 16 ? 24 : (messageLength(this.rbuffer) as number);
      if (this.rbuffer.length >= need) break;
      if (this.unread.length === 0) return;
      this.read(need - this.rbuffer.length);
    }
    const len = messageLength(this.rbuffer) as number;
    const call = decodeMessage(this.rbuffer.subarray(0, len));
    this.rbuffer = this.rbuffer.slice(len);
    this.onServed();
    this.s.write(encodeMessage({ type: MessageType.methodReturn, flags: 1, serial: call.serial, replySerial: call.serial, signature: "o", body: [UNIT_PATH] }));
  }
}

describe("against a server that reads like sd-bus (PID 1's private socket)", () => {
  test("the stand-in loses a call that arrives in the same read as a late BEGIN, as sd-bus does", async () => {
    const server = new SdBusLikeServer(socketPath(), 20);
    const got: string[] = [];
    const s = await Bun.connect({ unix: server.path, socket: { data: (_s, d) => void got.push(d.toString("latin1")) } });
    cleanups.push(() => s.end());
    s.write("\0AUTH EXTERNAL 30\r\n");
    expect(await until(() => got.join("").includes("\r\n"))).toBe(true);
    expect(got.join("")).toBe(`OK ${GUID}\r\n`);
    const call = encodeMessage({ type: MessageType.methodCall, flags: 0, serial: 1, ...MANAGER, member: "LoadUnit", signature: "s", body: ["x.service"] });
    s.write(concat([Buffer.from("BEGIN\r\n"), call]));
    await Bun.sleep(300);
    expect(server.served).toBe(0); // read, parsed as far as BEGIN, never answered
    s.write(call); // any later byte wakes the connection: both calls are answered
    expect(await until(() => server.served === 2)).toBe(true);
  });

  test("BEGIN goes out with AUTH, in one write", () => {
    expect(Buffer.from(authRequest(0)).toString("latin1")).toBe("\0AUTH EXTERNAL 30\r\nBEGIN\r\n");
    expect(Buffer.from(authRequest(1000)).toString("latin1")).toBe("\0AUTH EXTERNAL 31303030\r\nBEGIN\r\n");
  });

  test("a call made right after connecting is answered by a slow server (issue 12)", async () => {
    const server = new SdBusLikeServer(socketPath(), 20);
    for (let i = 0; i < 5; i++) {
      const conn = await connect(server.path);
      const reply = await loadUnit(conn, 2000);
      expect(reply.body).toEqual([UNIT_PATH]);
      conn.close();
    }
    expect(server.served).toBe(5);
  });

  test("fresh connections and pipelined calls on one, with no delay in the server", async () => {
    const server = new SdBusLikeServer(socketPath(), 0);
    const conn = await connect(server.path);
    for (let i = 0; i < 20; i++) {
      const fresh = await connect(server.path);
      const [a, b] = await Promise.all([loadUnit(fresh, 2000), loadUnit(conn, 2000)]);
      expect([a.body, b.body]).toEqual([[UNIT_PATH], [UNIT_PATH]]);
      fresh.close();
    }
    const many = await Promise.all(Array.from({ length: 30 }, () => loadUnit(conn, 2000)));
    expect(many.every((m) => m.body[0] === UNIT_PATH)).toBe(true);
    expect(server.served).toBe(70);
  });
});

describe("MessageFramer", () => {
  const stream = concat([
    encodeMessage({ type: MessageType.signal, flags: 1, serial: 5, path: "/a", interface: "a.B", member: "C", signature: "uoss", body: [7, "/j/7", "x.service", "done"] }),
    encodeMessage({ type: MessageType.methodReturn, flags: 1, serial: 6, replySerial: 2, signature: "o", body: [UNIT_PATH] }),
    encodeMessage({ type: MessageType.error, flags: 1, serial: 7, replySerial: 1, errorName: "org.freedesktop.systemd1.NoSuchUnit", signature: "s", body: ["no"] }),
    encodeMessage({ type: MessageType.methodReturn, flags: 1, serial: 8, replySerial: 3, signature: "", body: [] }),
  ]);
  const serials = (ms: Message[]): number[] => ms.map((m) => m.serial);
  const drain = (f: MessageFramer): Message[] => {
    const out: Message[] = [];
    for (let m = f.next(); m !== undefined; m = f.next()) out.push(m);
    return out;
  };

  test("four messages in one chunk", () => {
    const f = new MessageFramer();
    f.push(stream);
    expect(serials(drain(f))).toEqual([5, 6, 7, 8]);
    expect(f.buffered).toBe(0);
  });

  test("split in two at every byte", () => {
    for (let i = 0; i <= stream.length; i++) {
      const f = new MessageFramer();
      f.push(stream.subarray(0, i));
      const first = drain(f);
      f.push(stream.subarray(i));
      expect(serials([...first, ...drain(f)])).toEqual([5, 6, 7, 8]);
    }
  });

  test("one byte at a time, the caller's buffer reused between chunks", () => {
    const f = new MessageFramer();
    const reused = new Uint8Array(1);
    const out: Message[] = [];
    for (const b of stream) {
      reused[0] = b;
      f.push(reused);
      out.push(...drain(f));
    }
    expect(serials(out)).toEqual([5, 6, 7, 8]);
    expect(out[0]?.body).toEqual([7, "/j/7", "x.service", "done"]);
  });

  test("a stream that is not D-Bus throws a dbus.* error", () => {
    const f = new MessageFramer();
    f.push(Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n"));
    expect(() => f.next()).toThrow(NvwaError);
  });
});

describe("scripted servers: awkward chunkings, partial writes, a peer that hangs up", () => {
  type State = { buf: Uint8Array; answered: boolean; begun: boolean };
  /** Answers the AUTH line with `onAuth`'s bytes; after BEGIN hands every whole message to `onMessage`. */
  function scripted(onAuth: (s: Socket<State>) => void, onMessage: (s: Socket<State>, m: Message) => void): string {
    const path = socketPath();
    listen<State>(path, {
      open: (s) => {
        s.data = { buf: new Uint8Array(0), answered: false, begun: false };
      },
      data: (s, chunk) => {
        const st = s.data;
        st.buf = concat([st.buf, chunk]);
        if (!st.begun) {
          const text = Buffer.from(st.buf).toString("latin1");
          if (!st.answered && text.includes("\r\n")) {
            st.answered = true;
            onAuth(s);
          }
          const begin = text.indexOf("BEGIN\r\n");
          if (begin < 0) return;
          st.begun = true;
          st.buf = st.buf.slice(begin + 7);
        }
        const { messages, rest } = cut(st.buf);
        st.buf = rest;
        for (const m of messages) onMessage(s, m);
      },
    });
    return path;
  }
  const ok = Buffer.from(`OK ${GUID}\r\n`);
  const reply = (call: Message, serial: number, body: string): Uint8Array =>
    encodeMessage({ type: MessageType.methodReturn, flags: 1, serial, replySerial: call.serial, signature: "s", body: [body] });

  test("bytes glued to the OK line are message data: a method call in them is answered", async () => {
    const answers: Message[] = [];
    const ping = encodeMessage({ type: MessageType.methodCall, flags: 0, serial: 41, path: "/x", interface: "x.Y", member: "Ping", signature: "", body: [] });
    const path = scripted(
      (s) => s.write(concat([ok, ping])),
      (_s, m) => answers.push(m),
    );
    await connect(path);
    await until(() => answers.length > 0);
    expect(answers.map((m) => [m.type, m.replySerial, m.errorName])).toEqual([[MessageType.error, 41, "org.freedesktop.DBus.Error.UnknownMethod"]]);
  });

  test("replies out of order, glued to signals, one byte per write; a throwing signal handler loses nothing", async () => {
    const calls: Message[] = [];
    const path = scripted(
      (s) => s.write(ok),
      (s, m) => {
        calls.push(m);
        if (calls.length < 3) return;
        const [c1, c2, c3] = calls as [Message, Message, Message];
        const signal = encodeMessage({ type: MessageType.signal, flags: 1, serial: 100, path: "/a", interface: "a.B", member: "C", signature: "", body: [] });
        const bytes = concat([signal, reply(c3, 101, "three"), signal, reply(c1, 102, "one"), reply(c2, 103, "two")]);
        void (async () => {
          for (const b of bytes) {
            s.write(new Uint8Array([b]));
            await Bun.sleep(0);
          }
        })();
      },
    );
    const conn = await connect(path);
    let signals = 0;
    conn.onSignal(() => {
      signals++;
      throw new Error("a handler's bug");
    });
    const call = (n: string): Promise<Message> => conn.call({ path: "/x", interface: "x.Y", member: n, timeoutMs: 5000 });
    const got = await Promise.all([call("One"), call("Two"), call("Three")]);
    expect(got.map((m) => m.body[0])).toEqual(["one", "two", "three"]);
    expect(signals).toBe(2);
  });

  test("a call larger than the socket buffer goes out whole (partial writes, drain), and the next one after it", async () => {
    const big = "x".repeat(8 * 1024 * 1024);
    const path = scripted(
      (s) => s.write(ok),
      (s, m) => {
        const arg = m.body[0];
        s.write(reply(m, m.serial + 1000, `${m.member}:${typeof arg === "string" ? arg.length : -1}`));
      },
    );
    const conn = await connect(path);
    const a = conn.call({ path: "/x", interface: "x.Y", member: "Big", signature: "s", body: [big], timeoutMs: 20_000 });
    const b = conn.call({ path: "/x", interface: "x.Y", member: "Small", signature: "s", body: ["s"], timeoutMs: 20_000 });
    expect([(await a).body[0], (await b).body[0]]).toEqual([`Big:${big.length}`, "Small:1"]);
  });

  test("a peer that hangs up fails the pending call at once with dbus.disconnected", async () => {
    const path = scripted(
      (s) => s.write(ok),
      (s) => s.end(),
    );
    const conn = await connect(path);
    const t0 = performance.now();
    const err = await loadUnit(conn, 10_000).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err instanceof NvwaError ? err.code : String(err)).toBe("dbus.disconnected");
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(conn.closed).toBe(true);
  });
});
