/**
 * The daemon's socket protocol (pure): JSON lines over /run/nvwa/nvwa.socket.
 *
 *   client → {"id": 1, "method": "update", "params": {"version": "6.12.9"}}
 *   daemon → {"id": 1, "event": {"kind": "phase", "phase": "dump", "message": "…"}}   (0..n)
 *   daemon → {"id": 1, "result": {…}}  or  {"id": 1, "error": {"code", "message", "hint"}}
 *
 * Every request gets exactly one final line. A line that cannot be tied to a request (not JSON,
 * no usable id) is answered with "id": null. Requests on one connection may overlap; the id
 * tells their lines apart.
 */
import * as v from "valibot";
import { ExitCode, type NvwaError } from "../errors.ts";

export const DEFAULT_SOCKET_PATH = "/run/nvwa/nvwa.socket";
/** A request line longer than this is refused and the connection closed. */
export const MAX_LINE_BYTES = 64 * 1024;
/** A partial line must complete, and an idle connection must send something, within this. */
export const IDLE_TIMEOUT_MS = 10_000;
export const MAX_CONNECTIONS = 64;
/** Unsent output a client may leave unread before it is dropped. */
export const MAX_PENDING_OUTPUT_BYTES = 4 * 1024 * 1024;

export const ProtocolError = {
  invalidJson: "protocol.invalid-json",
  invalidRequest: "protocol.invalid-request",
  unknownMethod: "protocol.unknown-method",
  invalidParams: "protocol.invalid-params",
  duplicateId: "protocol.duplicate-id",
  lineTooLong: "protocol.line-too-long",
  timeout: "protocol.timeout",
  busy: "daemon.busy",
  forbidden: "daemon.forbidden",
  tooManyConnections: "daemon.too-many-connections",
  stopping: "daemon.stopping",
} as const;

const Id = v.union([v.pipe(v.string(), v.minLength(1), v.maxLength(128)), v.pipe(v.number(), v.safeInteger())]);
export type RequestId = v.InferOutput<typeof Id>;

const KernelArg = v.pipe(v.string(), v.minLength(1), v.maxLength(4096), v.regex(/^[^\s\0]+$/, "a kernel argument has no spaces"));

export const UpdateParams = v.strictObject({
  /** The target kernel: a `uname -r` or a path under /boot. */
  version: v.pipe(v.string(), v.minLength(1), v.maxLength(256)),
  /** Skip systemd's orderly shutdown: sync + reboot(KEXEC) directly. */
  fast: v.optional(v.boolean()),
  /** Run preflight and planning only. */
  dryRun: v.optional(v.boolean()),
  cmdlineAppend: v.optional(v.pipe(v.array(KernelArg), v.maxLength(256))),
  cmdlineRemove: v.optional(v.pipe(v.array(KernelArg), v.maxLength(256))),
});
export type UpdateParams = v.InferOutput<typeof UpdateParams>;

export const RestoreParams = v.strictObject({
  /** The service whose restore helper is asking ("redis.service"). */
  unit: v.pipe(v.string(), v.regex(/^[A-Za-z0-9:_.\\@-]+\.service$/, "a full service name such as redis.service"), v.maxLength(255)),
});
export type RestoreParams = v.InferOutput<typeof RestoreParams>;

export const EmptyParams = v.strictObject({});
export type EmptyParams = v.InferOutput<typeof EmptyParams>;

const Request = v.variant("method", [
  v.strictObject({ id: Id, method: v.literal("update"), params: UpdateParams }),
  v.strictObject({ id: Id, method: v.literal("restore"), params: RestoreParams }),
  v.strictObject({ id: Id, method: v.literal("status"), params: v.optional(EmptyParams, {}) }),
  v.strictObject({ id: Id, method: v.literal("ping"), params: v.optional(EmptyParams, {}) }),
]);
export type Request = v.InferOutput<typeof Request>;
export type Method = Request["method"];
export const METHODS: readonly Method[] = ["update", "restore", "status", "ping"];

/** What a restore helper gets back: the restored tree, its root first. */
export const RestoreResult = v.object({
  unit: v.string(),
  mainPid: v.pipe(v.number(), v.integer(), v.minValue(1)),
  pids: v.array(v.pipe(v.number(), v.integer(), v.minValue(1))),
  /**
   * Restored stopped (a service with journal streams): the helper sends these SIGCONT once the
   * tree is in the unit's cgroup, so journald files its first lines under the unit.
   */
  resume: v.optional(v.array(v.pipe(v.number(), v.integer(), v.minValue(1)))),
});
export type RestoreResult = v.InferOutput<typeof RestoreResult>;

export const ProgressEvent = v.object({
  kind: v.picklist(["phase", "log", "target"]),
  message: v.string(),
  level: v.optional(v.picklist(["debug", "info", "warn", "error"])),
  phase: v.optional(v.string()),
  target: v.optional(v.string()),
  /** Milliseconds: a phase's or target's duration, when it ends. */
  ms: v.optional(v.number()),
});
export type ProgressEvent = v.InferOutput<typeof ProgressEvent>;

export const WireError = v.object({
  code: v.string(),
  message: v.string(),
  hint: v.optional(v.string()),
  exitCode: v.optional(v.number()),
  details: v.optional(v.record(v.string(), v.unknown())),
});
export type WireError = v.InferOutput<typeof WireError>;

const ResponseId = v.nullable(Id);
export const Response = v.union([
  v.object({ id: ResponseId, event: ProgressEvent }),
  v.object({ id: ResponseId, result: v.unknown() }),
  v.object({ id: ResponseId, error: WireError }),
]);
export type Response = { id: RequestId | null; event: ProgressEvent } | { id: RequestId | null; result: unknown } | { id: RequestId | null; error: WireError };

export type Parsed = { ok: true; request: Request } | { ok: false; id: RequestId | null; error: WireError };

function fail(id: RequestId | null, code: string, message: string, hint: string): Parsed {
  return { ok: false, id, error: { code, message, hint, exitCode: ExitCode.usage } };
}

/** Parses one request line (without its newline). Never throws. */
export function parseRequest(line: string): Parsed {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return fail(null, ProtocolError.invalidJson, "the request is not valid JSON", 'send one JSON object per line, e.g. {"id":1,"method":"ping"}');
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return fail(null, ProtocolError.invalidRequest, "the request is not a JSON object", 'send {"id": …, "method": …, "params": {…}}');
  }
  const obj = raw as Record<string, unknown>;
  const idCheck = v.safeParse(Id, obj.id);
  if (!idCheck.success) {
    return fail(null, ProtocolError.invalidRequest, "the request has no valid id (a string of 1–128 characters or an integer)", "give every request an id");
  }
  const id = idCheck.output;
  if (typeof obj.method !== "string" || !(METHODS as readonly string[]).includes(obj.method)) {
    return fail(
      id,
      ProtocolError.unknownMethod,
      `unknown method ${JSON.stringify(obj.method)?.slice(0, 64) ?? "undefined"}`,
      `methods: ${METHODS.join(", ")}`,
    );
  }
  const parsed = v.safeParse(Request, raw);
  if (!parsed.success) {
    const where = parsed.issues
      .slice(0, 3)
      .map((i) => `${i.path?.map((p) => String(p.key)).join(".") || "request"}: ${i.message}`)
      .join("; ");
    return fail(id, ProtocolError.invalidParams, `invalid ${obj.method} request: ${where}`.slice(0, 500), "see `nvwa help` for the parameters");
  }
  return { ok: true, request: parsed.output };
}

export function errorToWire(e: NvwaError): WireError {
  return {
    code: e.code,
    message: e.message,
    ...(e.hint === undefined ? {} : { hint: e.hint }),
    exitCode: e.exitCode,
    ...(Object.keys(e.details).length === 0 ? {} : { details: e.details }),
  };
}

/** One response line, newline included. bigints (D-Bus u64s, byte counts) travel as strings. */
export function encodeResponse(r: Response): string {
  return `${JSON.stringify(r, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}\n`;
}

/** Parses a daemon line on the client side; undefined when it is not a valid response. */
export function parseResponse(line: string): Response | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  const r = v.safeParse(Response, raw);
  return r.success ? (r.output as Response) : undefined;
}
