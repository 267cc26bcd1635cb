/**
 * The daemon's requests, once a line parsed (effects: runs the injected handlers): one update at
 * a time, no restore during an update (unless admitRestore says so), ids unique per connection,
 * nothing new while stopping; each request's result or error as its final line.
 */
import type { ConsolaInstance } from "consola";
import type { PeerCredentials } from "../../ffi/unix.ts";
import { ExitCode, toNvwaError } from "../errors.ts";
import {
  errorToWire,
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

export interface ActiveRequest {
  method: "update" | "restore";
  id: RequestId;
  pid: number;
  since: Date;
}

/** The connection a request came on. */
export interface RequestSource {
  peer: PeerCredentials;
  /** Ids of this connection's requests not yet answered. */
  inFlight: Set<RequestId>;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  send(r: Response): void;
  /** After a request joined or left inFlight (the connection's idle timer depends on it). */
  changed(): void;
}

export const STOPPING: WireError = { code: ProtocolError.stopping, message: "the daemon is stopping", hint: "retry once it is back", exitCode: ExitCode.daemon };

export class RequestRunner {
  /** The updates and restores in progress. */
  readonly active: ActiveRequest[] = [];
  stopping = false;

  constructor(
    private readonly handlers: Handlers,
    private readonly log: ConsolaInstance,
    /** True while restores must be served even though an update is running. */
    private readonly admitRestore?: () => boolean,
  ) {}

  /** Why `req` cannot run now, or undefined. */
  private refusal(req: Request, c: RequestSource): WireError | undefined {
    if (c.inFlight.has(req.id)) {
      return { code: ProtocolError.duplicateId, message: `request id ${JSON.stringify(req.id)} is already in use on this connection`, hint: "use a new id per request", exitCode: ExitCode.usage };
    }
    if (this.stopping) return STOPPING;
    if (req.method !== "update" && req.method !== "restore") return undefined;
    // One update at a time, and no restore while an update runs (nor an update during restores).
    // Exception: an update that failed after its commit restores its services on this boot,
    // and their restore helpers must get through (admitRestore says when).
    const clash =
      req.method === "update" ? this.active[0] : this.admitRestore?.() === true ? undefined : this.active.find((a) => a.method === "update");
    if (clash === undefined) return undefined;
    return {
      code: ProtocolError.busy,
      message: `an ${clash.method} is already running (request ${JSON.stringify(clash.id)} from pid ${clash.pid}, since ${clash.since.toISOString()})`,
      hint: "wait for it to finish; `nvwa status` shows its progress",
      exitCode: ExitCode.daemon,
    };
  }

  async run(req: Request, c: RequestSource): Promise<void> {
    const refused = this.refusal(req, c);
    if (refused !== undefined) {
      c.send({ id: req.id, error: refused });
      return;
    }
    let entry: ActiveRequest | undefined;
    if (req.method === "update" || req.method === "restore") {
      entry = { method: req.method, id: req.id, pid: c.peer.pid, since: new Date() };
      this.active.push(entry);
    }
    c.inFlight.add(req.id);
    c.changed();
    const ctx: RequestContext = { id: req.id, peer: c.peer, signal: c.signal };
    const emit: Emit = (event) => c.send({ id: req.id, event });
    try {
      let result: unknown;
      switch (req.method) {
        case "ping":
          result = { pong: true, pid: process.pid };
          break;
        case "status":
          result = await this.handlers.status(req.params, ctx);
          break;
        case "update":
          result = await this.handlers.update(req.params, emit, ctx);
          break;
        case "restore":
          result = await this.handlers.restore(req.params, emit, ctx);
          break;
      }
      c.send({ id: req.id, result: result ?? null });
    } catch (e) {
      const err = toNvwaError(e);
      if (err.code === "internal") this.log.error(`daemon: ${req.method} request ${JSON.stringify(req.id)} failed:`, e);
      c.send({ id: req.id, error: errorToWire(err) });
    } finally {
      if (entry) this.active.splice(this.active.indexOf(entry), 1);
      c.inFlight.delete(req.id);
      c.changed();
    }
  }
}
