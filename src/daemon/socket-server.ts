/**
 * The daemon's socket server: JSON lines (protocol.ts) on a unix socket, root clients only,
 * one update at a time. What an update, a restore or a status does is injected (handlers), so
 * this file is only about the socket: limits, timeouts, peers, and never dying of a bad client.
 *
 * Who may talk to it: the socket is 0600 in a 0700 directory, and each connection's peer
 * credentials (SO_PEERCRED on the accepted fd) must show an allowed uid (root). Bun's socket
 * exposes the accepted fd as an undocumented `fd` property; if a Bun version stops doing so the
 * server refuses every connection rather than serve unchecked ones.
 */
import type { Socket, UnixSocketListener } from "bun";
import { chmodSync, existsSync, lstatSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { ConsolaInstance } from "consola";
import { peerCredentials, type PeerCredentials } from "../../ffi/unix.ts";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import { log as defaultLog } from "../log.ts";
import { ensureDir } from "../state/atomic.ts";
import {
  encodeResponse,
  errorToWire,
  IDLE_TIMEOUT_MS,
  MAX_CONNECTIONS,
  MAX_LINE_BYTES,
  MAX_PENDING_OUTPUT_BYTES,
  parseRequest,
  ProtocolError,
  type EmptyParams,
  type ProgressEvent,
  type Request,
  type RequestId,
  type Response,
  type RestoreParams,
  type UpdateParams,
  type WireError,
} from "./protocol.ts";

export type Emit = (event: ProgressEvent) => void;

export interface RequestContext {
  id: RequestId;
  peer: PeerCredentials;
  /** Aborted when the client goes away. An update should carry on regardless; its log is on disk. */
  signal: AbortSignal;
}

/** What the daemon does, injected by src/daemon/main.ts (update, restore, status). Throw NvwaError to fail. */
export interface Handlers {
  update(params: UpdateParams, emit: Emit, ctx: RequestContext): Promise<unknown>;
  restore(params: RestoreParams, emit: Emit, ctx: RequestContext): Promise<unknown>;
  status(params: EmptyParams, ctx: RequestContext): unknown;
}

export interface ServerOptions {
  socketPath: string;
  handlers: Handlers;
  log?: ConsolaInstance;
  /** Peer uids allowed in; root only unless a test says otherwise. */
  allowedUids?: readonly number[];
  idleTimeoutMs?: number;
  maxLineBytes?: number;
  maxConnections?: number;
  /** True while restores must be served even though an update is running. */
  admitRestore?: () => boolean;
}

export interface ActiveRequest {
  method: "update" | "restore";
  id: RequestId;
  pid: number;
  since: Date;
}

export interface DaemonServer {
  readonly socketPath: string;
  /** Connections currently open. */
  readonly connections: number;
  /** The updates and restores in progress. */
  readonly active: readonly ActiveRequest[];
  stop(): void;
}

interface Conn {
  peer: PeerCredentials | undefined;
  buf: Buffer;
  out: Buffer[];
  outBytes: number;
  closing: boolean;
  closed: boolean;
  inFlight: Set<RequestId>;
  timer: ReturnType<typeof setTimeout> | undefined;
  abort: AbortController;
}

/** Refuses to start over a live daemon; removes a stale socket file left by a dead one. */
async function claimSocketPath(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const st = lstatSync(path);
  if (!st.isSocket()) {
    throw new NvwaError("daemon.socket-path", `${path} exists and is not a socket`, {
      hint: `remove it if nothing needs it, then start the daemon again`,
    });
  }
  const alive = await Bun.connect({ unix: path, socket: { data() {}, error() {} } }).then(
    (s) => {
      s.end();
      return true;
    },
    () => false,
  );
  if (alive) {
    throw new NvwaError("daemon.already-running", `another nvwa daemon is listening on ${path}`, {
      hint: "stop it first (`systemctl stop nvwa`), or talk to it with `nvwa status`",
      exitCode: ExitCode.daemon,
    });
  }
  unlinkSync(path);
}

export async function startServer(opts: ServerOptions): Promise<DaemonServer> {
  const log = opts.log ?? defaultLog;
  const allowed = new Set(opts.allowedUids ?? [0]);
  const idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const maxLine = opts.maxLineBytes ?? MAX_LINE_BYTES;
  const maxConns = opts.maxConnections ?? MAX_CONNECTIONS;
  const path = opts.socketPath;

  const dir = dirname(path);
  ensureDir(dir, 0o700);
  chmodSync(dir, 0o700); // it may have existed with a wider mode
  await claimSocketPath(path);

  const conns = new Set<Socket<Conn>>();
  const active: ActiveRequest[] = [];
  let stopping = false;

  const flush = (s: Socket<Conn>): void => {
    const c = s.data;
    while (c.out.length > 0) {
      const head = c.out[0] as Buffer;
      const n = s.write(head);
      if (n <= 0) break;
      c.outBytes -= n;
      if (n < head.length) {
        c.out[0] = head.subarray(n);
        break;
      }
      c.out.shift();
    }
    if (c.closing && c.out.length === 0 && !c.closed) s.end();
  };

  const send = (s: Socket<Conn>, r: Response): void => {
    const c = s.data;
    if (c.closed || c.closing) return;
    let line: string;
    try {
      line = encodeResponse(r);
    } catch (e) {
      // A handler returned something JSON cannot carry (a cycle): a bug, reported as one.
      log.error("daemon: cannot encode a response:", e);
      line = encodeResponse({ id: r.id, error: errorToWire(toNvwaError(e)) });
    }
    const b = Buffer.from(line, "utf8");
    c.out.push(b);
    c.outBytes += b.length;
    if (c.outBytes > MAX_PENDING_OUTPUT_BYTES) {
      log.warn(`daemon: dropping a client (pid ${c.peer?.pid ?? "?"}) that does not read its replies`);
      c.out = [];
      c.outBytes = 0;
      s.end();
      return;
    }
    flush(s);
  };

  /** Sends a last error line and closes once it is out. */
  const refuse = (s: Socket<Conn>, id: RequestId | null, error: WireError): void => {
    send(s, { id, error });
    s.data.closing = true;
    clearTimeout(s.data.timer);
    flush(s);
  };

  const armTimer = (s: Socket<Conn>): void => {
    const c = s.data;
    clearTimeout(c.timer);
    c.timer = undefined;
    // A request in flight may take minutes (an update); only a pending partial line is timed then.
    if (c.inFlight.size > 0 && c.buf.length === 0) return;
    c.timer = setTimeout(() => {
      if (c.closed || c.closing) return;
      const partial = c.buf.length > 0;
      refuse(s, null, {
        code: ProtocolError.timeout,
        message: partial ? `the request line was not completed within ${idleMs} ms` : `no request within ${idleMs} ms`,
        hint: "send a whole request line, ending with a newline, promptly",
        exitCode: ExitCode.usage,
      });
    }, idleMs);
  };

  const handle = async (s: Socket<Conn>, req: Request): Promise<void> => {
    const c = s.data;
    const peer = c.peer as PeerCredentials;
    if (c.inFlight.has(req.id)) {
      send(s, {
        id: req.id,
        error: { code: ProtocolError.duplicateId, message: `request id ${JSON.stringify(req.id)} is already in use on this connection`, hint: "use a new id per request", exitCode: ExitCode.usage },
      });
      return;
    }
    if (stopping) {
      send(s, { id: req.id, error: { code: ProtocolError.stopping, message: "the daemon is stopping", hint: "retry once it is back", exitCode: ExitCode.daemon } });
      return;
    }
    let entry: ActiveRequest | undefined;
    if (req.method === "update" || req.method === "restore") {
      // One update at a time, and no restore while an update runs (nor an update during restores).
      // Exception: an update that failed after its commit restores its services on this boot,
      // and their restore helpers must get through (admitRestore says when).
      const clash =
        req.method === "update" ? active[0] : opts.admitRestore?.() === true ? undefined : active.find((a) => a.method === "update");
      if (clash) {
        send(s, {
          id: req.id,
          error: {
            code: ProtocolError.busy,
            message: `an ${clash.method} is already running (request ${JSON.stringify(clash.id)} from pid ${clash.pid}, since ${clash.since.toISOString()})`,
            hint: "wait for it to finish; `nvwa status` shows its progress",
            exitCode: ExitCode.daemon,
          },
        });
        return;
      }
      entry = { method: req.method, id: req.id, pid: peer.pid, since: new Date() };
      active.push(entry);
    }
    c.inFlight.add(req.id);
    armTimer(s);
    const ctx: RequestContext = { id: req.id, peer, signal: c.abort.signal };
    const emit: Emit = (event) => send(s, { id: req.id, event });
    try {
      let result: unknown;
      switch (req.method) {
        case "ping":
          result = { pong: true, pid: process.pid };
          break;
        case "status":
          result = await opts.handlers.status(req.params, ctx);
          break;
        case "update":
          result = await opts.handlers.update(req.params, emit, ctx);
          break;
        case "restore":
          result = await opts.handlers.restore(req.params, emit, ctx);
          break;
      }
      send(s, { id: req.id, result: result ?? null });
    } catch (e) {
      const err = toNvwaError(e);
      if (err.code === "internal") log.error(`daemon: ${req.method} request ${JSON.stringify(req.id)} failed:`, e);
      send(s, { id: req.id, error: errorToWire(err) });
    } finally {
      if (entry) active.splice(active.indexOf(entry), 1);
      c.inFlight.delete(req.id);
      if (!c.closed) armTimer(s);
    }
  };

  const onLine = (s: Socket<Conn>, line: string): void => {
    const parsed = parseRequest(line);
    if (!parsed.ok) {
      send(s, { id: parsed.id, error: parsed.error });
      return;
    }
    void handle(s, parsed.request);
  };

  const onData = (s: Socket<Conn>, chunk: Buffer): void => {
    const c = s.data;
    if (c.closing || c.closed || c.peer === undefined) return;
    const hadPartial = c.buf.length > 0;
    c.buf = c.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([c.buf, chunk]);
    let nl: number;
    while ((nl = c.buf.indexOf(0x0a)) >= 0) {
      if (nl > maxLine) break;
      const line = c.buf.subarray(0, nl).toString("utf8");
      c.buf = c.buf.subarray(nl + 1);
      onLine(s, line.endsWith("\r") ? line.slice(0, -1) : line);
      if (c.closing) return;
    }
    if (c.buf.length > maxLine) {
      c.buf = Buffer.alloc(0);
      refuse(s, null, {
        code: ProtocolError.lineTooLong,
        message: `request line longer than ${maxLine} bytes`,
        hint: "requests are small JSON objects; this client is sending something else",
        exitCode: ExitCode.usage,
      });
      return;
    }
    // A partial line keeps the deadline it got when it started: trickling bytes does not extend it.
    if (c.buf.length === 0 || !hadPartial) armTimer(s);
  };

  const oldUmask = process.umask(0o177); // the socket is born 0600; chmod below makes sure
  let listener: UnixSocketListener<Conn>;
  try {
    listener = Bun.listen<Conn>({
      unix: path,
      socket: {
        open(s) {
          s.data = {
            peer: undefined,
            buf: Buffer.alloc(0),
            out: [],
            outBytes: 0,
            closing: false,
            closed: false,
            inFlight: new Set(),
            timer: undefined,
            abort: new AbortController(),
          };
          conns.add(s);
          const fd = (s as unknown as { fd?: unknown }).fd;
          let peer: PeerCredentials | undefined;
          try {
            if (typeof fd === "number" && fd >= 0) peer = peerCredentials(fd);
          } catch (e) {
            log.warn(`daemon: cannot read a client's credentials: ${(e as Error).message}`);
          }
          if (peer === undefined) {
            refuse(s, null, { code: ProtocolError.forbidden, message: "cannot verify who is connecting; refused", hint: "this Bun build does not expose socket fds; see src/daemon/socket-server.ts", exitCode: ExitCode.daemon });
            return;
          }
          if (!allowed.has(peer.uid)) {
            log.warn(`daemon: refused a client with uid ${peer.uid} (pid ${peer.pid})`);
            refuse(s, null, { code: ProtocolError.forbidden, message: `uid ${peer.uid} may not use the nvwa daemon`, hint: "run nvwa as root", exitCode: ExitCode.daemon });
            return;
          }
          s.data.peer = peer;
          if (stopping) {
            refuse(s, null, { code: ProtocolError.stopping, message: "the daemon is stopping", hint: "retry once it is back", exitCode: ExitCode.daemon });
            return;
          }
          if (conns.size > maxConns) {
            refuse(s, null, {
              code: ProtocolError.tooManyConnections,
              message: `the daemon already serves ${maxConns} connections`,
              hint: "close idle clients and retry",
              exitCode: ExitCode.daemon,
            });
            return;
          }
          armTimer(s);
        },
        data(s, chunk) {
          try {
            onData(s, chunk);
          } catch (e) {
            // Nothing a client sends may take the daemon down; this would be a bug here.
            log.error("daemon: unexpected error handling client data:", e);
            refuse(s, null, errorToWire(toNvwaError(e)));
          }
        },
        drain(s) {
          flush(s);
        },
        close(s) {
          const c = s.data;
          c.closed = true;
          clearTimeout(c.timer);
          c.abort.abort();
          conns.delete(s);
        },
        error(s, e) {
          log.debug(`daemon: client socket error: ${e.message}`);
          s.data.closed = true;
          conns.delete(s);
        },
      },
    });
  } catch (e) {
    throw new NvwaError("daemon.listen", `cannot listen on ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      hint: `check that ${dir} is a writable directory`,
      cause: e,
    });
  } finally {
    process.umask(oldUmask);
  }
  chmodSync(path, 0o600);
  const ino = statSync(path).ino;
  log.debug(`daemon: listening on ${path}`);

  return {
    socketPath: path,
    get connections() {
      return conns.size;
    },
    get active() {
      return [...active];
    },
    stop() {
      if (stopping) return;
      stopping = true;
      listener.stop(true);
      try {
        // Only our own socket file: a new daemon may already have replaced it.
        if (statSync(path).ino === ino) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}
