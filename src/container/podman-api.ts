/**
 * podman's REST API on its unix socket, the few calls nvwa needs (research note:
 * notes/podman-checkpoint.md §1). nvwa never runs the podman CLI, as it never runs systemctl.
 *
 * Every container route exists only under a version prefix; /v4.0.0 is the oldest libpod API with
 * the checkpoint query names used here (podman 4.3.1 answers any version). Query names matter:
 * podman ignores unknown keys silently, so a typo would be a flag quietly not passed.
 */
import { rootCause } from "../criu/log.ts";
import { NvwaError } from "../errors.ts";

export const PODMAN_SOCKET = "/run/podman/podman.sock";
const PREFIX = "/v4.0.0/libpod";

export interface CheckpointFlags {
  tcpEstablished: boolean;
  fileLocks: boolean;
}

/** What podman says in an error reply: {cause, message, response}. */
export function podmanErrorText(status: number, body: string): string {
  try {
    const j = JSON.parse(body) as { message?: unknown; cause?: unknown };
    if (typeof j.message === "string" && j.message.length > 0) return j.message;
    if (typeof j.cause === "string" && j.cause.length > 0) return j.cause;
  } catch {
    // not JSON: an unknown route answers plain text
  }
  const text = body.trim().split("\n")[0] ?? "";
  return text.length > 0 ? `HTTP ${status}: ${text.slice(0, 300)}` : `HTTP ${status}`;
}

function unreachable(socket: string, why: string): NvwaError {
  return new NvwaError("container.engine-unreachable", `podman's API on ${socket} does not answer: ${why}`, {
    hint: "start it: systemctl enable --now podman.socket (Debian's podman package ships it)",
    details: { socket },
  });
}

export class PodmanClient {
  constructor(
    readonly socket: string = PODMAN_SOCKET,
    /** A checkpoint of a large container takes as long as its memory takes to write. */
    readonly timeoutMs: number = 10 * 60_000,
  ) {}

  private async call(method: "GET" | "POST", path: string, query: Record<string, string> = {}, timeoutMs = this.timeoutMs): Promise<Response> {
    const qs = new URLSearchParams(query).toString();
    const url = `http://d${PREFIX}${path}${qs ? `?${qs}` : ""}`;
    try {
      return await fetch(url, { method, unix: this.socket, signal: AbortSignal.timeout(timeoutMs), headers: { Host: "d" } });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError")) {
        throw new NvwaError("container.engine-timeout", `podman did not answer ${method} ${path} within ${Math.round(timeoutMs / 1000)} s`, {
          hint: "see podman's journal: journalctl -u podman.service",
        });
      }
      throw unreachable(this.socket, msg);
    }
  }

  /** The engine answers; returns its Libpod-API-Version ("4.3.1"). */
  async ping(timeoutMs = 30_000): Promise<string> {
    const r = await this.call("GET", "/_ping", {}, timeoutMs);
    const body = await r.text();
    if (r.status !== 200) throw unreachable(this.socket, podmanErrorText(r.status, body));
    return r.headers.get("Libpod-API-Version") ?? "unknown";
  }

  /** The engine's default OCI runtime (`info`, host.ociRuntime): its name and version line. */
  async runtime(): Promise<{ name: string; version: string } | null> {
    const r = await this.call("GET", "/info", {}, 60_000);
    const body = await r.text();
    if (r.status !== 200) return null;
    try {
      const rt = (JSON.parse(body) as { host?: { ociRuntime?: { name?: unknown; version?: unknown } } }).host?.ociRuntime;
      return typeof rt?.name === "string" ? { name: rt.name, version: typeof rt.version === "string" ? rt.version : "" } : null;
    } catch {
      return null;
    }
  }

  /**
   * `inspect` of one container as podman returns it, or null when it has none by that name or id.
   * It waits for the container's lock: a checkpoint or restore under way holds it (give those
   * callers the checkpoint's timeout).
   */
  async inspect(nameOrId: string, timeoutMs = 60_000): Promise<unknown> {
    const r = await this.call("GET", `/containers/${encodeURIComponent(nameOrId)}/json`, {}, timeoutMs);
    const body = await r.text();
    if (r.status === 404) return null;
    if (r.status !== 200) throw engineError(`inspect ${nameOrId}`, r.status, body);
    return JSON.parse(body) as unknown;
  }

  /**
   * Checkpoints into the container's own bundle (no export) and stops it. `keep`: podman leaves
   * its dump.log, which nvwa copies beside criu's logs.
   */
  async checkpoint(id: string, flags: CheckpointFlags): Promise<void> {
    const r = await this.call("POST", `/containers/${id}/checkpoint`, { keep: "true", ...flagQuery(flags) });
    const body = await r.text();
    if (r.status !== 200) throw engineError(`checkpoint ${id.slice(0, 12)}`, r.status, body);
  }

  /** Restores from the bundle's checkpoint (the container must exist, exited). */
  async restore(id: string, flags: CheckpointFlags): Promise<void> {
    const r = await this.call("POST", `/containers/${id}/restore`, { keep: "true", ...flagQuery(flags) });
    const body = await r.text();
    if (r.status !== 200) throw engineError(`restore ${id.slice(0, 12)}`, r.status, body);
  }
}

function flagQuery(f: CheckpointFlags): Record<string, string> {
  return { tcpEstablished: String(f.tcpEstablished), fileLocks: String(f.fileLocks) };
}

function engineError(what: string, status: number, body: string): NvwaError {
  const text = podmanErrorText(status, body);
  return new NvwaError("container.engine-error", `podman ${what}: ${text}`, {
    hint: "the engine's own log of it is named above; podman's journal: journalctl -u podman.service",
    details: { status, podmanMessage: text },
  });
}

/**
 * Pure: one line for a failed checkpoint or restore: criu's own reason from the engine's log when
 * it has one, then podman's reply with the runtime's long command line cut to its name.
 */
export function describeEngineFailure(podmanMessage: string, criuLogLines: readonly string[]): string {
  const short = podmanMessage.replace(/`(\S+?)\s+(checkpoint|restore)\b[^`]*`/, (_m, exe: string, verb: string) => `${exe.split("/").pop() ?? exe} ${verb}`);
  const cause = rootCause(criuLogLines);
  return cause === undefined || cause === "" ? `podman: ${short}` : `${cause} (podman: ${short})`;
}
