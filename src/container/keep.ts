/**
 * Checkpoint and restore of the configured podman containers, through podman's API (the engine
 * runs runc, which runs criu). Each step is recorded in the manifest's `containers` before and
 * after it happens, so a daemon that dies midway knows where each container was.
 *
 * podman keeps the images in the container's bundle (`<StaticDir>/checkpoint`); nvwa fsyncs them
 * at the commit (podman does not), copies podman's dump.log and restore.log beside criu's logs
 * (<criu_dir>/containers/<name>/), and removes the checkpoint once the container runs again.
 */
import { copyFileSync, existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ignoreEvents, type OnEvent } from "../criu/events.ts";
import { imageBytes, syncImages } from "../criu/images.ts";
import { meaningfulLines } from "../criu/log.ts";
import { currentTree, sameProcess } from "../criu/proc.ts";
import { tcpConnectionsOf } from "../net/tcp-conns.ts";
import { readTextOrNull } from "../read-text.ts";
import { NvwaError, toNvwaError } from "../errors.ts";
import { note } from "../note.ts";
import { ensureDir } from "../state/atomic.ts";
import { errorRecord, stampTimings, type ContainerTarget, type Manifest } from "../state/manifest.ts";
import { parseInspect } from "./inspect.ts";
import { describeEngineFailure, PodmanClient, type CheckpointFlags } from "./podman-api.ts";

export const CONTAINERS_DIR = "containers";
export const CHECKPOINT_DIR = "checkpoint";

/** <criu_dir>/containers/<name>: where the engine's logs of a container are kept. */
export function containerLogDir(criuDir: string, name: string): string {
  return join(criuDir, CONTAINERS_DIR, name);
}

/** What the update knows of a container when it plans (from preflight's probe). */
export interface ContainerPlan {
  name: string;
  id: string;
  staticDir: string;
  rootPid: number;
  pids: number[];
  networkMode: string;
  unit?: string;
  unitPidFile?: string;
}

export function plannedContainer(p: ContainerPlan, criuDir: string): ContainerTarget {
  return {
    name: p.name,
    id: p.id,
    engine: "podman",
    staticDir: p.staticDir,
    logDir: containerLogDir(criuDir, p.name),
    rootPid: p.rootPid,
    pids: p.pids,
    networkMode: p.networkMode,
    ...(p.unit === undefined ? {} : { unit: p.unit }),
    ...(p.unitPidFile === undefined ? {} : { unitPidFile: p.unitPidFile }),
    phase: "planned",
    timings: {},
  };
}

/** A changed copy of the manifest with one container's record changed. */
export function withContainer(m: Manifest, name: string, change: (c: ContainerTarget) => ContainerTarget): Manifest {
  if (!m.containers.some((c) => c.name === name)) {
    throw new NvwaError("state.no-such-target", `the manifest has no container "${name}"`, { hint: "this is a bug in nvwa; please report it" });
  }
  return { ...m, containers: m.containers.map((c) => (c.name === name ? change(c) : c)) };
}

export function stampContainer(c: ContainerTarget, key: string, edge: "start" | "end"): ContainerTarget {
  return { ...c, timings: stampTimings(c.timings, key, edge) };
}

/**
 * A container on the host's network keeps its connections (criu --tcp-established, through runc;
 * nvwa holds their packets back after the jump). On its own network it is refused in preflight
 * while it has some: podman removes its netns and port forwarding at the checkpoint, so a peer's
 * packet would meet no socket and get a reset; one opened since preflight fails the dump.
 */
export function flagsOf(m: Manifest, c: Pick<ContainerTarget, "networkMode">): CheckpointFlags {
  return { tcpEstablished: c.networkMode === "host", fileLocks: m.options.fileLocks };
}

/** Why the engine failed, in one line: criu's reason from the log nvwa kept, podman's reply. */
function engineReason(c: ContainerTarget, file: "dump.log" | "restore.log", cause: NvwaError): string {
  const podman = typeof cause.details.podmanMessage === "string" ? cause.details.podmanMessage : null;
  if (podman === null) return cause.message;
  const log = readTextOrNull(join(c.logDir, file)) ?? readTextOrNull(join(c.staticDir, file));
  return describeEngineFailure(podman, log === null ? [] : meaningfulLines(log));
}

/** Copies podman's log of the last checkpoint or restore (kept by `keep=true`) beside criu's. */
function keepEngineLog(c: ContainerTarget, file: "dump.log" | "restore.log", emit: OnEvent): void {
  const from = join(c.staticDir, file);
  try {
    if (!existsSync(from)) return;
    ensureDir(c.logDir);
    copyFileSync(from, join(c.logDir, file));
  } catch (e) {
    emit(note("warn", `container ${c.name}: podman's ${file} could not be copied to ${c.logDir}: ${toNvwaError(e).message}`));
  }
}

/**
 * fsync podman's checkpoint and the bundle's own files (network.status, config.json): podman
 * writes them without, and the restore after the jump reads them. Returns the bytes.
 */
export function syncContainer(c: ContainerTarget): number {
  const where = "/var/lib/containers";
  return syncImages(join(c.staticDir, CHECKPOINT_DIR), where) + syncImages(c.staticDir, where);
}

/**
 * Checkpoints one container; `record` applies a change to its manifest record and writes it.
 * podman stops the container; when its checkpoint fails, criu has let the container run on.
 */
export async function checkpointContainer(c: ContainerTarget, flags: CheckpointFlags, client: PodmanClient, record: (change: (c: ContainerTarget) => ContainerTarget) => void, emit: OnEvent = ignoreEvents): Promise<void> {
  // Read while it still runs, the last moment nvwa can: podman's checkpoint ends with it stopped.
  const tcpTuples = flags.tcpEstablished && sameProcess(c.rootPid, undefined) ? tcpConnectionsOf(currentTree(c.rootPid).processes) : [];
  // A running container's old checkpoint (a failed or interrupted one) is stale by definition;
  // criu would write over it and leave its other files beside the new images.
  rmSync(join(c.staticDir, CHECKPOINT_DIR), { recursive: true, force: true });
  record((x) => stampContainer({ ...x, phase: "checkpointing", ...(tcpTuples.length === 0 ? {} : { tcpTuples }) }, "checkpoint", "start"));
  emit(note("info", `container ${c.name}: checkpointing (podman, ${c.pids.length} pid(s)${tcpTuples.length === 0 ? "" : `, ${tcpTuples.length} TCP connection(s)`})`));
  const t0 = performance.now();
  try {
    await client.checkpoint(c.id, flags);
  } catch (e) {
    keepEngineLog(c, "dump.log", emit);
    const cause = toNvwaError(e, "container.engine-error");
    const err = new NvwaError("container.checkpoint-failed", `cannot checkpoint container ${c.name}: ${engineReason(c, "dump.log", cause)}`, {
      hint: `podman's log of it: ${join(c.logDir, "dump.log")}`,
      cause,
      details: { target: c.name, id: c.id },
    });
    record((x) => stampContainer({ ...x, phase: "checkpoint-failed", error: errorRecord(err) }, "checkpoint", "end"));
    throw err;
  }
  keepEngineLog(c, "dump.log", emit);
  const bytes = imageBytes(join(c.staticDir, CHECKPOINT_DIR));
  record((x) => stampContainer({ ...x, phase: "checkpointed", imageBytes: bytes }, "checkpoint", "end"));
  emit(note("info", `container ${c.name}: checkpointed in ${Math.round(performance.now() - t0)} ms, ${(bytes / 1048576).toFixed(1)} MiB`));
}

/**
 * podman.socket starts with sockets.target, after nvwa's daemon said it was ready: right after a
 * jump the socket may not be there yet. Waiting for it is waiting for the boot, not a retry of a
 * failure (a socket that exists but does not answer fails at once).
 */
export async function waitForEngine(client: PodmanClient, timeoutMs = 120_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  while (!existsSync(client.socket) && Date.now() < until) await Bun.sleep(200);
  return client.ping(Math.max(1_000, until - Date.now()));
}

/**
 * Restores one checkpointed container in place. Throws container.restore-failed (recorded) when
 * podman cannot; the checkpoint is then kept for a retry or a diagnosis.
 */
export async function restoreContainer(c: ContainerTarget, flags: CheckpointFlags, client: PodmanClient, record: (change: (c: ContainerTarget) => ContainerTarget) => void, opts: { debug: boolean; emit?: OnEvent }): Promise<void> {
  const emit = opts.emit ?? ignoreEvents;
  record((x) => stampContainer({ ...x, phase: "restoring" }, "restore", "start"));
  const t0 = performance.now();
  try {
    await client.restore(c.id, flags);
  } catch (e) {
    keepEngineLog(c, "restore.log", emit);
    const cause = toNvwaError(e, "container.engine-error");
    const err = new NvwaError("container.restore-failed", `cannot restore container ${c.name}: ${engineReason(c, "restore.log", cause)}`, {
      hint: `podman's log of it: ${join(c.logDir, "restore.log")}; the checkpoint is kept in ${join(c.staticDir, CHECKPOINT_DIR)}: once the cause is fixed, podman container restore --keep ${c.name}${c.unit === undefined ? "" : ` (it then runs outside ${c.unit} until restarted through it)`}`,
      cause,
      details: { target: c.name, id: c.id },
    });
    record((x) => stampContainer({ ...x, phase: "restore-failed", error: errorRecord(err) }, "restore", "end"));
    throw err;
  }
  finishRestored(c, record, opts);
  emit(note("info", `container ${c.name}: restored in ${Math.round(performance.now() - t0)} ms`));
}

/**
 * A container runs again from its checkpoint: podman's restore.log kept, the checkpoint removed
 * (a later one must start clean; kept in debug mode), the record restored.
 */
export function finishRestored(c: ContainerTarget, record: (change: (c: ContainerTarget) => ContainerTarget) => void, opts: { debug: boolean; emit?: OnEvent }): void {
  keepEngineLog(c, "restore.log", opts.emit ?? ignoreEvents);
  if (!opts.debug) rmSync(join(c.staticDir, CHECKPOINT_DIR), { recursive: true, force: true });
  record((x) => {
    const { error: _drop, ...rest } = x;
    return stampContainer({ ...rest, phase: "restored" }, "restore", "end");
  });
}

/**
 * Rollback of one container before the jump: a checkpoint that stopped it is restored here; one
 * that failed (criu let it run) or never began needs nothing. Decided on what podman says now,
 * so it also serves a daemon that died in the middle of a checkpoint.
 */
export async function giveContainerBack(
  c: ContainerTarget,
  flags: CheckpointFlags,
  client: PodmanClient,
  record: (change: (c: ContainerTarget) => ContainerTarget) => void,
  opts: { debug: boolean; emit?: OnEvent; viaUnit?: (c: ContainerTarget) => Promise<void> },
): Promise<"none" | "restore"> {
  if (c.phase === "planned" || c.phase === "restored" || c.phase === "resumed") return "none";
  // A checkpoint still under way in podman (the daemon that asked for it died) holds the lock.
  const raw = await client.inspect(c.id, client.timeoutMs);
  if (raw === null) throw new NvwaError("container.gone", `container ${c.name} no longer exists in podman`, { hint: "it was removed during the update; recreate it" });
  const info = parseInspect(raw);
  if (info.running) {
    record((x) => ({ ...x, phase: x.phase === "checkpoint-failed" ? "checkpoint-failed" : "resumed" }));
    return "none";
  }
  if (c.unit !== undefined) {
    // Back under its unit, or it would run unsupervised while the unit says it stopped.
    if (opts.viaUnit === undefined) {
      throw new NvwaError("container.no-unit-way-back", `container ${c.name} runs under ${c.unit}, and systemd cannot be reached to start it`, {
        hint: `restore it with podman container restore --keep ${c.name}; ${c.unit} then shows it inactive until the container is next restarted through it`,
      });
    }
    await opts.viaUnit(c);
  } else {
    await restoreContainer(c, flags, client, record, opts);
  }
  record((x) => ({ ...x, phase: "resumed" }));
  return "restore";
}
