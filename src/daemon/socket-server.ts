/**
 * The daemon's socket server: JSON lines (protocol.ts) on a unix socket, root clients only,
 * one update at a time. What an update, a restore or a status does is injected (handlers), so
 * this file is only about the connections: reading request lines, timeouts, output a client
 * leaves unread, and never dying of a bad client. Who is let in is server-admission.ts, what
 * runs when is server-requests.ts, the socket file server-socket-file.ts.
 */
import type { Socket } from "bun";
import type { ConsolaInstance } from "consola";
import type { PeerCredentials } from "../../ffi/unix.ts";
import { ExitCode, toNvwaError } from "../errors.ts";
import { log as defaultLog } from "../log.ts";
import { SocketWriter } from "../socket-writer.ts";
import {
  encodeResponse,
  errorToWire,
  IDLE_TIMEOUT_MS,
  MAX_CONNECTIONS,
  MAX_LINE_BYTES,
  MAX_PENDING_OUTPUT_BYTES,
  parseRequest,
  ProtocolError,
  type RequestId,
  type Response,
  type WireError,
} from "./protocol.ts";
import { admit } from "./server-admission.ts";
import { RequestRunner, type ActiveRequest, type Handlers } from "./server-requests.ts";
import { listenPrivate } from "./server-socket-file.ts";

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
  out: SocketWriter;
  closing: boolean;
  closed: boolean;
  inFlight: Set<RequestId>;
  timer: ReturnType<typeof setTimeout> | undefined;
  abort: AbortController;
}

export async function startServer(opts: ServerOptions): Promise<DaemonServer> {
  const log = opts.log ?? defaultLog;
  const allowed = new Set(opts.allowedUids ?? [0]);
  const idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const maxLine = opts.maxLineBytes ?? MAX_LINE_BYTES;
  const maxConns = opts.maxConnections ?? MAX_CONNECTIONS;
  const path = opts.socketPath;

  const conns = new Set<Socket<Conn>>();
  const runner = new RequestRunner(opts.handlers, log, opts.admitRestore);

  /** Writes what the socket takes; a closing connection ends once all is out. */
  const flush = (s: Socket<Conn>): void => {
    const c = s.data;
    if (c.out.flush() && c.closing && !c.closed) s.end();
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
    if (!c.out.write(Buffer.from(line, "utf8"))) {
      log.warn(`daemon: dropping a client (pid ${c.peer?.pid ?? "?"}) that does not read its replies`);
      s.end();
    }
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

  const onLine = (s: Socket<Conn>, line: string): void => {
    const parsed = parseRequest(line);
    if (!parsed.ok) {
      send(s, { id: parsed.id, error: parsed.error });
      return;
    }
    const c = s.data;
    void runner.run(parsed.request, {
      peer: c.peer as PeerCredentials,
      inFlight: c.inFlight,
      signal: c.abort.signal,
      send: (r) => send(s, r),
      changed: () => {
        if (!c.closed) armTimer(s);
      },
    });
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

  const server = await listenPrivate<Conn>(path, {
    open(s) {
      const out = new SocketWriter(MAX_PENDING_OUTPUT_BYTES);
      out.attach(s);
      s.data = { peer: undefined, buf: Buffer.alloc(0), out, closing: false, closed: false, inFlight: new Set(), timer: undefined, abort: new AbortController() };
      conns.add(s);
      const { peer, refusal } = admit(s, { allowed, stopping: runner.stopping, connections: conns.size, maxConnections: maxConns }, log);
      s.data.peer = peer;
      if (refusal !== undefined) refuse(s, null, refusal);
      else armTimer(s);
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
  });
  log.debug(`daemon: listening on ${path}`);

  return {
    socketPath: path,
    get connections() {
      return conns.size;
    },
    get active() {
      return [...runner.active];
    },
    stop() {
      if (runner.stopping) return;
      runner.stopping = true;
      server.stop();
    },
  };
}
