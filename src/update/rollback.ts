/**
 * Giving frozen trees back: the undo of the checkpoint step, also what the daemon runs at start
 * when an update died before its commit (it works from the manifest alone).
 *
 * Giving a tree back is a SIGCONT, except when its images hold established TCP connections:
 * after a --leave-stopped dump criu leaves those sockets in repair mode behind its network lock
 * (seen with criu 4.2.1: the resumed process gets EPERM on every send). Only a criu restore
 * undoes that, so such a tree is killed (its repair-mode sockets close silently) and restored
 * from the images just written: same pids, same memory, the connection intact.
 */
import { readFileSync } from "node:fs";
import { flagsOf, giveContainerBack, withContainer } from "../container/keep.ts";
import { PodmanClient } from "../container/podman-api.ts";
import { join } from "node:path";
import { ignoreEvents, type OnEvent, type ResumeHow } from "../criu/events.ts";
import { removeImages } from "../criu/images.ts";
import { criuLockTable, dumpRunId } from "../criu/inventory.ts";
import { currentTree, readProc, sameProcess } from "../criu/proc.ts";
import { runRestore, targetLabel } from "../criu/restore-run.ts";
import { signalAll, waitPidsFree, waitRunning } from "../criu/signals.ts";
import { NvwaError, toNvwaError } from "../errors.ts";
import { note } from "../note.ts";
import { removeInetTable } from "../net/tcp-lock.ts";
import { errorRecord, withPhase, withTarget, type ContainerTarget, type Manifest, type Target } from "../state/manifest.ts";
import { readManifestIfAny, writeManifest } from "../state/manifest-file.ts";

export interface RollbackOutcome {
  name: string;
  how: ResumeHow | "none";
  ok: boolean;
  ms: number;
  error?: NvwaError;
}

export interface RollbackResult {
  manifest: Manifest;
  outcomes: RollbackOutcome[];
  /** The rollback itself worked but recording it failed (e.g. the disk is full). */
  manifestError?: NvwaError;
}

export interface EngineOptions {
  criuExe?: string;
  onEvent?: OnEvent;
  /** How long to wait for killed pids to be reaped (default 10 s). */
  reapTimeoutMs?: number;
  podman?: PodmanClient;
  /** Brings back a container run by a unit through that unit (container-restore.ts unitRollback). */
  containerViaUnit?: (c: ContainerTarget) => Promise<void>;
}

/**
 * criu's dump-time nftables table stays after a --leave-stopped dump until a criu restore removes
 * it; a tree resumed with SIGCONT never gets one, so every rehearsal and rolled-back update left a
 * table behind, and each slows every later nftables-locked dump on the machine (BENCHMARKS.md
 * measures it: with 80 leftovers a small dump stays frozen many times longer). Best effort: the
 * tree runs either way.
 */
function dropCriuLockTable(t: Target, emit: OnEvent): void {
  try {
    const runId = dumpRunId(readFileSync(join(t.imagesDir, "inventory.img")));
    removeInetTable(criuLockTable(runId, t.rootPid));
  } catch (e) {
    emit(note("warn", `${targetLabel(t)}: criu's network-lock table was not removed: ${toNvwaError(e).message}`));
  }
}

function containerOnDisk(criuDir: string, name: string): ContainerTarget | undefined {
  try {
    return readManifestIfAny(criuDir)?.containers.find((x) => x.name === name);
  } catch {
    return undefined;
  }
}

/** The processes to continue: the live tree of the root, plus recorded ones still there. */
export function liveProcesses(t: Target): number[] {
  const out = new Set<number>();
  if (sameProcess(t.rootPid, t.rootStartTime)) for (const pid of currentTree(t.rootPid).processes) out.add(pid);
  for (const pid of t.processes) if (readProc(pid) !== null) out.add(pid);
  const keepStopped = new Set(t.stoppedBefore);
  return [...out].filter((pid) => !keepStopped.has(pid));
}

async function resumeOne(m: Manifest, t: Target, o: EngineOptions): Promise<RollbackOutcome> {
  const started = performance.now();
  const frozen = t.phase === "dumped" || t.phase === "dumping" || t.phase === "dump-failed";
  if (!frozen) return { name: t.name, how: "none", ok: true, ms: 0 };
  try {
    if (t.phase === "dumped" && t.tcpConnections) {
      // See the module comment: SIGCONT would leave its TCP sockets dead.
      const pids = liveProcesses(t);
      signalAll(pids, "SIGKILL");
      const held = await waitPidsFree(t.pids, o.reapTimeoutMs ?? 10_000);
      if (held.length > 0) {
        throw new NvwaError("checkpoint.rollback-failed", `cannot give ${targetLabel(t)} back: pid ${held[0]?.pid} is still held by ${held[0]?.holder}`, {
          hint: `restore it by hand: ${o.criuExe ?? m.criu?.exe ?? "criu"} restore -d -D ${t.imagesDir} --tcp-established`,
        });
      }
      await runRestore(t, { criuExe: o.criuExe ?? m.criu?.exe ?? "/usr/sbin/criu", options: m.options, ...(o.onEvent === undefined ? {} : { onNote: o.onEvent }) });
      return { name: t.name, how: "restore", ok: true, ms: performance.now() - started };
    }
    // A failed dump was resumed by criu itself; continue only what it may have left stopped.
    const pids = t.phase === "dumped" ? liveProcesses(t) : liveProcesses(t).filter((pid) => readProc(pid)?.state === "T");
    if (pids.length === 0) return { name: t.name, how: "none", ok: true, ms: performance.now() - started };
    signalAll(pids, "SIGCONT");
    if (t.phase === "dumped" && m.options.networkLock === "nftables") dropCriuLockTable(t, o.onEvent ?? ignoreEvents);
    const still = await waitRunning(pids, 2_000);
    if (still.length > 0) {
      throw new NvwaError("checkpoint.rollback-failed", `${targetLabel(t)} stays stopped after SIGCONT (pids ${still.join(", ")})`, {
        hint: "something else holds it stopped (a debugger?); run kill -CONT on those pids",
        details: { pids: still },
      });
    }
    return { name: t.name, how: "sigcont", ok: true, ms: performance.now() - started };
  } catch (e) {
    return { name: t.name, how: t.tcpConnections ? "restore" : "sigcont", ok: false, ms: performance.now() - started, error: toNvwaError(e, "checkpoint.rollback-failed") };
  }
}

/**
 * Gives every frozen tree back (last dumped first), marks the manifest rolled-back and removes
 * the images unless in debug mode. Tolerant: one target failing does not stop the others; the
 * outcomes say what happened to each.
 */
export async function rollbackCheckpoint(manifest: Manifest, o: EngineOptions = {}): Promise<RollbackResult> {
  const emit = o.onEvent ?? ignoreEvents;
  let m = manifest;
  const order = [...m.targets].reverse();
  emit({ type: "rollback-start", names: order.filter((t) => t.phase !== "planned").map((t) => t.name) });
  const outcomes: RollbackOutcome[] = [];
  // Containers were checkpointed last: they come back first.
  const containers = [...m.containers].reverse().filter((c) => c.phase !== "planned");
  if (containers.length > 0) {
    const podman = o.podman ?? new PodmanClient();
    for (const c of containers) {
      const t0 = performance.now();
      // Through its unit the restore is the daemon's (container-restore.ts), recorded on disk:
      // taken back into this in-memory record, which is written last.
      const onDisk = (): ContainerTarget | undefined => (c.unit === undefined ? undefined : containerOnDisk(m.criuDir, c.name));
      try {
        const how = await giveContainerBack(c, flagsOf(m, c), podman, (change) => void (m = withContainer(m, c.name, change)), { debug: m.options.debug, emit, ...(o.containerViaUnit === undefined ? {} : { viaUnit: o.containerViaUnit }) });
        if (how !== "none") m = withContainer(m, c.name, (x) => ({ ...(onDisk() ?? x), phase: "resumed" }));
        outcomes.push({ name: c.name, how: how === "none" ? "none" : "restore", ok: true, ms: performance.now() - t0 });
        if (how !== "none") emit({ type: "target-resumed", name: c.name, how: "restore", ms: Math.round(performance.now() - t0) });
      } catch (e) {
        const error = toNvwaError(e, "checkpoint.rollback-failed");
        m = withContainer(m, c.name, (x) => ({ ...(onDisk() ?? x), phase: "restore-failed", error: errorRecord(error) }));
        outcomes.push({ name: c.name, how: "restore", ok: false, ms: performance.now() - t0, error });
        emit({ type: "target-resume-failed", name: c.name, error: errorRecord(error) });
      }
    }
  }
  for (const t of order) {
    const r = await resumeOne(m, t, o);
    outcomes.push(r);
    if (r.how === "none") continue;
    if (r.ok) {
      emit({ type: "target-resumed", name: t.name, how: r.how === "restore" ? "restore" : "sigcont", ms: Math.round(r.ms) });
      m = withTarget(m, t.name, (x) => ({ ...x, phase: x.phase === "dump-failed" ? "dump-failed" : "resumed" }));
    } else if (r.error) {
      emit({ type: "target-resume-failed", name: t.name, error: errorRecord(r.error) });
    }
  }
  // Processes first, files after: a full or failing disk must not keep a tree frozen.
  if (!m.options.debug) {
    for (const t of m.targets) {
      try {
        removeImages(t.imagesDir);
      } catch (e) {
        emit(note("warn", `cannot remove the images in ${t.imagesDir}: ${toNvwaError(e).message}`));
      }
    }
  }
  m = withPhase(m, "rolled-back");
  let manifestError: NvwaError | undefined;
  try {
    writeManifest(m);
  } catch (e) {
    manifestError = toNvwaError(e);
    emit(note("warn", `the trees were resumed, but the manifest could not be updated: ${manifestError.message}`));
  }
  return { manifest: m, outcomes: outcomes.reverse(), ...(manifestError === undefined ? {} : { manifestError }) };
}
