/**
 * The daemon's socket server on this host, in-process, on a temp socket: its life cycle, the
 * client, one update at a time, peer credentials (a real non-root client), and a fuzz of
 * malformed requests after which the daemon must still answer.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "../../src/daemon/client.ts";
import { ProtocolError, type ProgressEvent } from "../../src/daemon/protocol.ts";
import { startServer, type DaemonServer } from "../../src/daemon/socket-server.ts";
import type { Handlers, RequestContext } from "../../src/daemon/server-requests.ts";
import { ExitCode, NvwaError } from "../../src/errors.ts";

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "nvwa-daemon-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const servers: DaemonServer[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.stop();
});

let n = 0;
function socketPath(): string {
  return join(root, `run${++n}`, "nvwa", "nvwa.socket");
}

/** A gate the test opens to let a handler finish. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => {};
  const wait = new Promise<void>((r) => {
    open = r;
  });
  return { wait, open };
}

const quietLog = {
  debug() {},
  info() {},
  warn() {},
  error() {},
} as unknown as NonNullable<Parameters<typeof startServer>[0]["log"]>;

async function serve(handlers: Partial<Handlers> = {}, extra: Partial<Parameters<typeof startServer>[0]> = {}): Promise<DaemonServer> {
  const s = await startServer({
    socketPath: extra.socketPath ?? socketPath(),
    log: quietLog,
    handlers: {
      update: handlers.update ?? (async () => ({ updated: true })),
      restore: handlers.restore ?? (async () => ({ restored: true })),
      status: handlers.status ?? (() => ({ idle: true })),
    },
    ...extra,
  });
  servers.push(s);
  return s;
}

async function errorOf(p: Promise<unknown>): Promise<NvwaError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof NvwaError) return e;
    throw e;
  }
  throw new Error("expected an error");
}

/**
 * Raw client: sends the chunks (with optional pauses), then collects lines until `want` lines
 * arrived or the server closed. Returns the parsed lines and whether the server closed.
 */
async function exchange(path: string, chunks: (string | Uint8Array)[], want: number): Promise<{ lines: Record<string, unknown>[]; closed: boolean }> {
  const lines: Record<string, unknown>[] = [];
  let buf = "";
  let closed = false;
  let done = (): void => {};
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const sock = await Bun.connect({
    unix: path,
    socket: {
      data(_s, d) {
        buf += d.toString("utf8");
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
          buf = buf.slice(i + 1);
        }
        if (lines.length >= want) done();
      },
      close() {
        closed = true;
        done();
      },
      error() {
        closed = true;
        done();
      },
    },
  });
  for (const c of chunks) {
    let data = typeof c === "string" ? Buffer.from(c, "utf8") : c;
    // Big chunks go out as the socket drains.
    while (data.length > 0 && !closed) {
      const w = sock.write(data);
      if (w < 0) break;
      data = data.subarray(w);
      if (data.length > 0) await Bun.sleep(1);
    }
  }
  await finished;
  sock.end();
  return { lines, closed };
}

describe("life cycle", () => {
  test("directory 0700, socket 0600, ping, stop removes the socket", async () => {
    const path = socketPath();
    const s = await serve({}, { socketPath: path });
    expect(statSync(join(path, "..")).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(path).isSocket()).toBe(true);
    expect(await request(path, "ping", {})).toEqual({ pong: true, pid: process.pid });
    s.stop();
    expect(existsSync(path)).toBe(false);
    const e = await errorOf(request(path, "ping", {}));
    expect(e.code).toBe("daemon.unreachable");
    expect(e.hint).toBe("start it: systemctl start nvwa");
    expect(e.exitCode).toBe(ExitCode.daemon);
  });

  test("an existing directory is tightened to 0700; a stale socket is replaced; a live daemon is not", async () => {
    const path = socketPath();
    const dir = join(path, "..");
    // A stale socket file: bound by a process that is gone.
    const py = Bun.spawnSync(["/usr/bin/python3", "-c", `import os,socket;os.makedirs(${JSON.stringify(dir)},exist_ok=True);s=socket.socket(socket.AF_UNIX);s.bind(${JSON.stringify(path)})`]);
    expect(py.exitCode).toBe(0);
    chmodSync(dir, 0o755);
    expect(statSync(path).isSocket()).toBe(true);
    const s = await serve({}, { socketPath: path });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(await request(path, "ping", {})).toMatchObject({ pong: true });
    const second = await errorOf(serve({}, { socketPath: path }));
    expect(second.code).toBe("daemon.already-running");
    expect(await request(path, "ping", {})).toMatchObject({ pong: true }); // the first one is untouched
    s.stop();
  });

  test("a regular file where the socket goes is not removed", async () => {
    const path = socketPath();
    await serve({}, { socketPath: join(path, "..", "other.socket") }); // creates the directory
    writeFileSync(path, "precious");
    expect((await errorOf(serve({}, { socketPath: path }))).code).toBe("daemon.socket-path");
    expect(existsSync(path)).toBe(true);
  });
});

describe("requests", () => {
  test("progress events stream in order, then the result", async () => {
    const s = await serve({
      update: async (p, emit) => {
        emit({ kind: "phase", phase: "preflight", message: `checking ${p.version}` });
        emit({ kind: "target", target: "redis.service", message: "dumped", ms: 12 });
        emit({ kind: "log", level: "warn", message: "slow disk" });
        return { id: "u1", version: p.version };
      },
    });
    const events: ProgressEvent[] = [];
    const r = await request(s.socketPath, "update", { version: "6.12.9" }, (e) => events.push(e));
    expect(r).toEqual({ id: "u1", version: "6.12.9" });
    expect(events).toEqual([
      { kind: "phase", phase: "preflight", message: "checking 6.12.9" },
      { kind: "target", target: "redis.service", message: "dumped", ms: 12 },
      { kind: "log", level: "warn", message: "slow disk" },
    ]);
  });

  test("a handler's NvwaError reaches the client whole; a bug becomes 'internal' without a stack", async () => {
    const s = await serve({
      update: async () => {
        throw new NvwaError("preflight.failed", "2 checks failed: criu check, kernel 6.99", { hint: "run nvwa check", exitCode: ExitCode.preflight, details: { failed: 2 } });
      },
      restore: async () => {
        throw new TypeError("cannot read properties of undefined");
      },
    });
    const e = await errorOf(request(s.socketPath, "update", { version: "6.99" }));
    expect([e.code, e.message, e.hint, e.exitCode, e.details]).toEqual(["preflight.failed", "2 checks failed: criu check, kernel 6.99", "run nvwa check", ExitCode.preflight, { failed: 2 }]);
    const bug = await errorOf(request(s.socketPath, "restore", { unit: "a.service" }));
    expect(bug.code).toBe("internal");
    expect(bug.exitCode).toBe(ExitCode.internal);
    expect(bug.message).not.toContain("    at ");
  });

  test("a result JSON cannot carry becomes an error for that request only", async () => {
    const s = await serve({
      status: () => {
        const cycle: Record<string, unknown> = {};
        cycle.self = cycle;
        return cycle;
      },
    });
    expect((await errorOf(request(s.socketPath, "status", {}))).code).toBe("internal");
    expect(await request(s.socketPath, "ping", {})).toMatchObject({ pong: true });
  });

  test("one update at a time: a second update or a restore meanwhile gets daemon.busy; status still answers", async () => {
    const g = gate();
    let updates = 0;
    const s = await serve({
      update: async () => {
        updates++;
        await g.wait;
        return { done: true };
      },
      status: () => ({ active: s.active.map((a) => a.method) }),
    });
    const first = request(s.socketPath, "update", { version: "6.1" });
    while (s.active.length === 0) await Bun.sleep(5);
    const busy = await errorOf(request(s.socketPath, "update", { version: "6.2" }));
    expect(busy.code).toBe(ProtocolError.busy);
    expect(busy.message).toContain("an update is already running");
    expect(busy.exitCode).toBe(ExitCode.daemon);
    expect((await errorOf(request(s.socketPath, "restore", { unit: "a.service" }))).code).toBe(ProtocolError.busy);
    expect(await request(s.socketPath, "status", {})).toEqual({ active: ["update"] });
    g.open();
    expect(await first).toEqual({ done: true });
    expect(await request(s.socketPath, "update", { version: "6.3" })).toEqual({ done: true });
    expect(updates).toBe(2);
  });

  test("restores may overlap each other but not an update", async () => {
    const g = gate();
    const s = await serve({ restore: async (p) => (await g.wait, { unit: p.unit }) });
    const a = request(s.socketPath, "restore", { unit: "a.service" });
    const b = request(s.socketPath, "restore", { unit: "b.service" });
    while (s.active.length < 2) await Bun.sleep(5);
    expect((await errorOf(request(s.socketPath, "update", { version: "6.1" }))).code).toBe(ProtocolError.busy);
    g.open();
    expect(await Promise.all([a, b])).toEqual([{ unit: "a.service" }, { unit: "b.service" }]);
  });

  test("the handler learns of a client that went away; the update's result is not lost to the daemon", async () => {
    const g = gate();
    let aborted = false;
    let finished = false;
    const s = await serve({
      update: async (_p, _emit, ctx: RequestContext) => {
        ctx.signal.addEventListener("abort", () => {
          aborted = true;
        });
        await g.wait;
        finished = true;
        return {};
      },
    });
    const sock = await Bun.connect({ unix: s.socketPath, socket: { data() {} } });
    sock.write('{"id":1,"method":"update","params":{"version":"6.1"}}\n');
    while (s.active.length === 0) await Bun.sleep(5);
    sock.end();
    while (!aborted) await Bun.sleep(5);
    g.open();
    while (s.active.length > 0) await Bun.sleep(5);
    expect(finished).toBe(true);
    expect(await request(s.socketPath, "ping", {})).toMatchObject({ pong: true });
  });

  test("the peer's credentials are read from the socket", async () => {
    let peer: RequestContext["peer"] | undefined;
    const s = await serve({
      status: (_p, ctx) => {
        peer = ctx.peer;
        return {};
      },
    });
    await request(s.socketPath, "status", {});
    expect(peer).toEqual({ pid: process.pid, uid: 0, gid: 0 });
  });
});

describe("peer credentials", () => {
  test("a uid outside allowedUids is refused (root, when only 4242 may)", async () => {
    const s = await serve({}, { allowedUids: [4242] });
    const e = await errorOf(request(s.socketPath, "ping", {}));
    expect(e.code).toBe(ProtocolError.forbidden);
    expect(e.message).toBe("uid 0 may not use the nvwa daemon");
  });

  test("a real non-root client that can reach the socket is refused by SO_PEERCRED", async () => {
    const path = socketPath();
    const s = await serve({ update: async () => ({ updated: true }) }, { socketPath: path });
    // Open the file-mode barrier on purpose so only the credential check stands in the way.
    chmodSync(root, 0o755);
    chmodSync(join(path, "..", ".."), 0o755);
    chmodSync(join(path, ".."), 0o755);
    chmodSync(path, 0o666);
    const script = `import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(path)})
try:
    s.sendall(b'{"id":1,"method":"update","params":{"version":"6.1"}}\\n')
except BrokenPipeError:
    pass  # refused and closed before the request went out: the answer is still queued
data=b""
while not data.endswith(b"\\n"):
    c=s.recv(4096)
    if not c: break
    data+=c
sys.stdout.write(data.decode())`;
    // Asynchronously: the server answering it runs on this event loop.
    const child = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script], { stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    chmodSync(root, 0o700);
    expect(err).toBe("");
    const line = JSON.parse(out) as { id: unknown; error: { code: string; message: string } };
    expect(line.id).toBeNull();
    expect(line.error.code).toBe(ProtocolError.forbidden);
    expect(line.error.message).toBe("uid 65534 may not use the nvwa daemon");
    expect(s.active.length).toBe(0);
  });
});

describe("malformed, oversized and slow requests", () => {
  // A fixed seed: a failure reproduces.
  let seed = 0x6e767761;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const int = (k: number): number => Math.floor(rand() * k);

  function randomLine(): Uint8Array {
    const len = int(300);
    const b = new Uint8Array(len + 1);
    for (let i = 0; i < len; i++) {
      let x = int(256);
      if (x === 0x0a) x = 0x0b;
      b[i] = x;
    }
    b[len] = 0x0a;
    return b;
  }

  /** Valid JSON shaped almost like a request, broken in one way. */
  function wrongShapeLine(): string {
    const cases: unknown[] = [
      { method: "ping" },
      { id: null, method: "ping" },
      { id: [1], method: "ping" },
      { id: -0.5, method: "status" },
      { id: int(1000), method: "reboot" },
      { id: int(1000), method: 7 },
      { id: int(1000), method: "update" },
      { id: int(1000), method: "update", params: { version: int(10) } },
      { id: int(1000), method: "update", params: { version: "" } },
      { id: int(1000), method: "update", params: { version: "6.1", fast: "yes" } },
      { id: int(1000), method: "update", params: { version: "6.1", evil: true } },
      { id: int(1000), method: "update", params: { version: "x".repeat(300) } },
      { id: int(1000), method: "update", params: { version: "6.1", cmdlineAppend: "quiet" } },
      { id: int(1000), method: "update", params: [] },
      { id: int(1000), method: "restore", params: { unit: "redis" } },
      { id: int(1000), method: "restore", params: { unit: "../x.service" } },
      { id: int(1000), method: "restore", params: {} },
      { id: int(1000), method: "status", params: { all: true } },
      { id: int(1000), method: "ping", params: null },
      [{ id: 1, method: "ping" }],
      "ping",
      int(100),
      null,
    ];
    return `${JSON.stringify(cases[int(cases.length)])}\n`;
  }

  test("≥ 1000 malformed messages: each answered with an error, nothing dispatched, the daemon still answers", async () => {
    let dispatched = 0;
    const s = await serve(
      {
        update: async () => {
          dispatched++;
          return {};
        },
        restore: async () => {
          dispatched++;
          return {};
        },
      },
      { idleTimeoutMs: 300 },
    );
    const path = s.socketPath;
    let sent = 0;
    let answered = 0;
    const expectErrors = (lines: Record<string, unknown>[], count: number, code?: string): void => {
      expect(lines.length).toBe(count);
      for (const l of lines) {
        expect(l.error).toBeDefined();
        expect(l.result).toBeUndefined();
        if (code) expect((l.error as { code: string }).code).toBe(code);
      }
      answered += lines.length;
    };

    // 1. random bytes, 20 lines per connection, 30 connections at a time
    const randomBatches = Array.from({ length: 30 }, () => Array.from({ length: 20 }, randomLine));
    const r1 = await Promise.all(randomBatches.map((b) => exchange(path, b, b.length)));
    r1.forEach((r) => expectErrors(r.lines, 20));
    sent += 600;

    // 2. JSON of the wrong shape, 25 per connection, 12 connections at a time
    const shapeBatches = Array.from({ length: 12 }, () => Array.from({ length: 25 }, wrongShapeLine));
    const r2 = await Promise.all(shapeBatches.map((b) => exchange(path, b, b.length)));
    r2.forEach((r) => expectErrors(r.lines, 25));
    sent += 300;

    // 3. a whole burst in one write, with CRLF endings and empty lines
    const burst = Array.from({ length: 50 }, (_, i) => (i % 5 === 0 ? "\r\n" : `{"id":${i},"method":"nope"}\r\n`)).join("");
    expectErrors((await exchange(path, [burst], 50)).lines, 50);
    sent += 50;

    // 4. oversized lines (no newline within 64 KiB): an error, then the connection is closed
    for (let i = 0; i < 25; i++) {
      const size = 65 * 1024 + int(900 * 1024);
      const r = await exchange(path, [new Uint8Array(size).fill(0x61)], 1);
      expectErrors(r.lines, 1, ProtocolError.lineTooLong);
      expect(r.closed).toBe(true);
    }
    sent += 25;

    // 5. half a line, then silence: an error after the idle timeout, then the connection is closed
    const halves = await Promise.all(Array.from({ length: 40 }, (_, i) => exchange(path, [`{"id":${i},"method":"pi`], 1)));
    halves.forEach((r) => {
      expectErrors(r.lines, 1, ProtocolError.timeout);
      expect(r.closed).toBe(true);
    });
    sent += 40;

    // 6. a valid request followed by half a line: the request is answered, the fragment times out
    const mixed = await exchange(path, ['{"id":"ok","method":"ping"}\n{"id":2,'], 2);
    expect(mixed.lines[0]).toMatchObject({ id: "ok", result: { pong: true } });
    expectErrors(mixed.lines.slice(1), 1, ProtocolError.timeout);
    sent += 1;

    // 7. a trickle that keeps sending bytes does not extend the deadline of its line
    const trickle = await (async () => {
      const chunks: string[] = [];
      const line = '{"id":1,"method":"ping"';
      for (const ch of line) chunks.push(ch);
      const lines: Record<string, unknown>[] = [];
      let closed = false;
      const sock = await Bun.connect({
        unix: path,
        socket: {
          data(_s, d) {
            for (const l of d.toString().trim().split("\n")) lines.push(JSON.parse(l) as Record<string, unknown>);
          },
          close() {
            closed = true;
          },
        },
      });
      for (const c of chunks) {
        if (closed) break;
        sock.write(c);
        await Bun.sleep(40); // 23 bytes × 40 ms is well past the 300 ms deadline of the line
      }
      while (!closed) await Bun.sleep(10);
      return lines;
    })();
    expectErrors(trickle, 1, ProtocolError.timeout);
    sent += 1;

    // 8. a connection that never sends anything is closed with an error too
    expectErrors((await exchange(path, [], 1)).lines, 1, ProtocolError.timeout);
    sent += 1;

    expect(sent).toBeGreaterThanOrEqual(1000);
    expect(answered).toBe(sent);
    expect(dispatched).toBe(0);
    expect(await request(path, "ping", {})).toEqual({ pong: true, pid: process.pid });
    while (s.connections > 0) await Bun.sleep(10);
  });

  test("more connections than allowed: the extra ones get an error, the rest are served", async () => {
    const s = await serve({}, { maxConnections: 4, idleTimeoutMs: 5_000 });
    const holders = await Promise.all(Array.from({ length: 4 }, () => Bun.connect({ unix: s.socketPath, socket: { data() {} } })));
    while (s.connections < 4) await Bun.sleep(5);
    const extra = await exchange(s.socketPath, [], 1);
    expect((extra.lines[0]?.error as { code: string }).code).toBe(ProtocolError.tooManyConnections);
    for (const h of holders) h.end();
    while (s.connections > 0) await Bun.sleep(5);
    expect(await request(s.socketPath, "ping", {})).toMatchObject({ pong: true });
  });

  test("duplicate ids in flight on one connection are refused", async () => {
    const g = gate();
    const s = await serve({ restore: async () => (await g.wait, { ok: 1 }) });
    const pending = exchange(s.socketPath, ['{"id":5,"method":"restore","params":{"unit":"a.service"}}\n{"id":5,"method":"ping"}\n'], 2);
    while (s.active.length === 0) await Bun.sleep(5);
    await Bun.sleep(20);
    g.open();
    const r = await pending;
    expect(r.lines[0]).toMatchObject({ id: 5, error: { code: ProtocolError.duplicateId } });
    expect(r.lines[1]).toMatchObject({ id: 5, result: { ok: 1 } });
  });
});
