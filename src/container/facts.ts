/**
 * What preflight and the update need to know of the configured containers, asked of podman and
 * /proc. Reads only.
 */
import { readFileSync } from "node:fs";
import { currentTree } from "../criu/proc.ts";
import { isNvwaError } from "../errors.ts";
import type { ServiceProperties } from "../systemd/units.ts";
import { tcpConnectionsOf } from "../net/tcp-conns.ts";
import { parseInspect, serviceOfCgroup, type ContainerInfo } from "./inspect.ts";
import { PodmanClient } from "./podman-api.ts";

export interface ContainerProbe {
  /** As written in `containers:`. */
  name: string;
  /** null: podman has no container by that name or id. */
  info: ContainerInfo | null;
  /** podman answered, but not with something nvwa could read. */
  error?: string;
  /** Its tree, from its init process (empty when it does not run). */
  pids: number[];
  processes: number[];
  /** Established TCP connections in its processes' network namespace that its processes hold. */
  tcpConnections: number;
  /** The service conmon runs in, when a unit (not podman itself) started the container. */
  conmonUnit?: string;
  /**
   * The unit running it (its PODMAN_SYSTEMD_UNIT label, else conmon's service), as systemd
   * describes it; null when systemd could not be asked. Filled by the caller (D-Bus).
   */
  unitProps?: ServiceProperties | null;
}

/** The unit that runs a probed container, if any. */
export function unitOf(c: Pick<ContainerProbe, "info" | "conmonUnit">): string | undefined {
  return c.info?.unitLabel ?? c.conmonUnit;
}

export interface ContainerFacts {
  socket: string;
  engine: { ok: true; apiVersion: string } | { ok: false; error: string };
  /** podman's default runtime as `podman info` names it (crun prints +CRIU when built with it). */
  defaultRuntime?: { name: string; version: string } | null;
  containers: ContainerProbe[];
}

function message(e: unknown): string {
  return isNvwaError(e) ? e.message : e instanceof Error ? e.message : String(e);
}

function unitOfPid(pid: number): string | undefined {
  if (pid <= 0) return undefined;
  try {
    return serviceOfCgroup(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
  } catch {
    return undefined;
  }
}

export async function probeContainers(names: readonly string[], client = new PodmanClient()): Promise<ContainerFacts> {
  let apiVersion: string;
  try {
    apiVersion = await client.ping();
  } catch (e) {
    return { socket: client.socket, engine: { ok: false, error: message(e) }, containers: [] };
  }
  const defaultRuntime = await client.runtime().catch(() => null);
  const containers: ContainerProbe[] = [];
  for (const name of names) {
    try {
      const raw = await client.inspect(name);
      if (raw === null) {
        containers.push({ name, info: null, pids: [], processes: [], tcpConnections: 0 });
        continue;
      }
      const info = parseInspect(raw);
      const tree = info.running && info.pid > 0 ? currentTree(info.pid) : { pids: [], processes: [] };
      const unit = unitOfPid(info.conmonPid);
      containers.push({
        name,
        info,
        pids: tree.pids,
        processes: tree.processes,
        tcpConnections: tcpConnectionsOf(tree.processes).length,
        ...(unit === undefined ? {} : { conmonUnit: unit }),
      });
    } catch (e) {
      containers.push({ name, info: null, error: message(e), pids: [], processes: [], tcpConnections: 0 });
    }
  }
  return { socket: client.socket, engine: { ok: true, apiVersion }, defaultRuntime, containers };
}
