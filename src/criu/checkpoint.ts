/**
 * The transactional checkpoint: either every target is saved and frozen, or none is harmed.
 *
 *   checkpoint()        dumps the targets one after the other with --leave-stopped. When a dump
 *                       fails (or a target has exited), every tree already frozen is given back
 *                       and the error names the target and quotes criu's log.
 *   commitCheckpoint()  fsyncs the images, records phase "committed" and the boot id, and only
 *                       then kills the frozen trees. The one point of no return.
 *   rollbackCheckpoint() gives every frozen tree back (also usable after a crash: it works from
 *                       the manifest alone) and removes the images unless in debug mode.
 *
 * Giving a tree back is a SIGCONT, except when its images hold established TCP connections:
 * after a --leave-stopped dump criu leaves those sockets in repair mode behind its network lock
 * (seen with criu 4.2.1: the resumed process gets EPERM on every send). Only a criu restore
 * undoes that, so such a tree is killed (its repair-mode sockets close silently) and restored
 * from the images just written: same pids, same memory, the connection intact.
 *
 * Dumps are serial on purpose: the openEuler pin-memory path requires it, and a failure stops
 * the freeze from spreading to targets not yet touched.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import { log } from "../log.ts";
import { currentBootId } from "../state/lock.ts";
import {
  errorRecord,
  newManifest,
  stampTarget,
  withPhase,
  withTarget,
  type Manifest,
  type Target,
} from "../state/manifest.ts";
import { writeManifest } from "../state/manifest-file.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";
import { fsyncDir } from "../state/atomic.ts";
import { DUMP_LOG } from "./argv.ts";
import { ignoreEvents, type EngineEvent, type OnEvent, type ResumeHow } from "./events.ts";
import { hasTcpStreams, imageBytes, prepareImagesDir, removeImages, syncImages } from "./images.ts";
import { parseDumpStats } from "./log.ts";
import { assertPlanOk, type CheckpointPlan, type PlannedTarget } from "./plan.ts";
import { currentTree, readProc, sameProcess } from "./proc.ts";
import { runRestore, targetLabel } from "./restore-run.ts";
import { criuFailure, failureLines, runCriu } from "./runner.ts";
import { signalAll, waitPidsFree, waitRunning } from "./signals.ts";
import { tcpConnectionsOf } from "../net/tcp-conns.ts";
import { removeInetTable } from "../net/tcp-lock.ts";
import { criuLockTable, dumpRunId } from "./inventory.ts";
import { faultPoint } from "../fault-point.ts";

export interface CheckpointOptions {
  /** A manifest the caller already wrote in phase "planned" (kernel loaded, ...); else one is made. */
  manifest?: Manifest;
  /** For a manifest made here. */
  kernel?: { from: string; to: string; loader?: string };
  updateId?: string;
  rehearsal?: boolean;
  onEvent?: OnEvent;
  /** Per dump; criu is killed after this (default 10 min). */
  dumpTimeoutMs?: number;
}

export interface DumpedTarget {
  name: string;
  rootPid: number;
  pids: number[];
  ms: number;
  bytes: number;
  tcpConnections: boolean;
  stats?: Target["dumpStats"];
}

export interface CheckpointResult {
  manifest: Manifest;
  dumped: DumpedTarget[];
}

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
}

function toTarget(p: PlannedTarget): Target {
  return {
    kind: p.kind,
    name: p.name,
    ...(p.unit === undefined ? {} : { unit: p.unit }),
    rootPid: p.rootPid,
    rootStartTime: p.rootStartTime,
    pids: p.pids,
    processes: p.processes,
    stoppedBefore: p.stoppedBefore,
    cmdline: p.cmdline,
    comm: p.comm,
    imagesDir: p.imagesDir,
    shellJob: p.shellJob,
    tcpConnections: false,
    phase: "planned",
    timings: {},
  };
}

function kernelRelease(): string {
  try {
    return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    return "unknown";
  }
}

export async function checkpoint(plan: CheckpointPlan, opts: CheckpointOptions = {}): Promise<CheckpointResult> {
  assertPlanOk(plan);
  const emit = opts.onEvent ?? ignoreEvents;
  ensurePrivateDir(plan.criuDir);
  const bootId = currentBootId();
  let m: Manifest =
    opts.manifest ??
    newManifest({
      ...(opts.updateId === undefined ? {} : { updateId: opts.updateId }),
      kernel: opts.kernel ?? { from: kernelRelease(), to: kernelRelease() },
      criuDir: plan.criuDir,
      options: { ...plan.options, rehearsal: opts.rehearsal ?? false },
      ...(bootId === undefined ? {} : { bootId }),
      criu: { exe: plan.criuExe, ...(plan.criuVersion === undefined ? {} : { version: plan.criuVersion }) },
    });
  if (m.criuDir !== plan.criuDir) {
    throw new NvwaError("checkpoint.manifest-mismatch", `the manifest belongs to ${m.criuDir}, the plan to ${plan.criuDir}`, {
      hint: "this is a bug in nvwa; please report it",
      exitCode: ExitCode.internal,
    });
  }
  m = { ...withPhase(m, "checkpointing"), options: { ...plan.options, rehearsal: opts.rehearsal ?? m.options.rehearsal }, targets: plan.targets.map(toTarget) };
  writeManifest(m);

  const dumped: DumpedTarget[] = [];
  let current: PlannedTarget | undefined;
  try {
    for (const [i, p] of plan.targets.entries()) {
      current = p;
      if (i === 1) await faultPoint("before-dump-2");
      const d = await dumpOne(p, plan, opts, emit, (change) => {
        m = withTarget(m, p.name, change);
        writeManifest(m);
      });
      dumped.push(d);
    }
    m = withPhase(m, "dumped");
    writeManifest(m);
    return { manifest: m, dumped };
  } catch (e) {
    // Whatever broke (criu, a vanished target, a full disk while writing the manifest), every
    // tree frozen so far is given back before the error leaves.
    const err = toNvwaError(e, "checkpoint.failed");
    const failed = current;
    const entry = failed === undefined ? undefined : m.targets.find((t) => t.name === failed.name);
    if (failed !== undefined && entry !== undefined && entry.phase !== "dumped") {
      m = withTarget(m, failed.name, (t) => stampTarget({ ...t, phase: "dump-failed", error: errorRecord(err) }, "dump", "end"));
      emit({ type: "target-dump-failed", name: failed.name, error: errorRecord(err) });
    }
    throw await failAndRollback(m, err, plan, emit);
  }
}

/** Dumps one planned target; `record` applies a change to its manifest entry and writes it. */
async function dumpOne(p: PlannedTarget, plan: CheckpointPlan, opts: CheckpointOptions, emit: OnEvent, record: (change: (t: Target) => Target) => void): Promise<DumpedTarget> {
  const label = targetLabel(p);
  if (!sameProcess(p.rootPid, p.rootStartTime)) throw exited(p);
  prepareImagesDir(p.imagesDir);
  record((t) => stampTarget({ ...t, phase: "dumping" }, "dump", "start"));
  emit({ type: "target-dumping", name: p.name, pid: p.rootPid });
  const spec = {
    exe: plan.criuExe,
    argv: p.argv,
    env: plan.env,
    action: "dump",
    target: label,
    logPath: join(p.imagesDir, DUMP_LOG),
    outDir: p.imagesDir,
    timeoutMs: opts.dumpTimeoutMs ?? 10 * 60_000,
  };
  const run = await runCriu(spec);
  if (run.exitCode !== 0 || run.timedOut) {
    const failure = dumpFailed(p, criuFailure({ ...spec, target: undefined }, run, failureLines(spec, run)));
    // criu fails too when the tree exits under it: say what happened rather than how criu saw it.
    if (!sameProcess(p.rootPid, p.rootStartTime)) throw exited(p, failure);
    throw failure;
  }
  // The tree is frozen now: what /proc shows is exactly what was dumped.
  const tree = currentTree(p.rootPid);
  const pids = tree.pids.length > 0 ? tree.pids : p.pids;
  const processes = tree.processes.length > 0 ? tree.processes : p.processes;
  const bytes = imageBytes(p.imagesDir);
  const tcp = hasTcpStreams(p.imagesDir);
  // Read now, while the tree is frozen and its sockets still exist: the boot-side restore holds
  // these connections' packets back until their sockets are back.
  const tcpTuples = tcp ? tcpConnectionsOf(processes) : [];
  const stats = parseDumpStats(run.stdout) ?? undefined;
  record((t) =>
    stampTarget(
      { ...t, phase: "dumped", pids, processes, imageBytes: bytes, tcpConnections: tcp, tcpTuples, ...(stats === undefined ? {} : { dumpStats: stats }) },
      "dump",
      "end",
    ),
  );
  emit({ type: "target-dumped", name: p.name, pid: p.rootPid, ms: Math.round(run.ms), bytes, pids: pids.length, ...(stats === undefined ? {} : { stats }) });
  return { name: p.name, rootPid: p.rootPid, pids, ms: run.ms, bytes, tcpConnections: tcp, ...(stats === undefined ? {} : { stats }) };
}

function exited(p: PlannedTarget, cause?: NvwaError): NvwaError {
  return new NvwaError("checkpoint.target-exited", `${targetLabel(p)} exited before its dump (it was running when the update was planned)`, {
    hint: "find out why it stopped (its own log, the journal), then run the update again",
    ...(cause === undefined ? {} : { cause }),
    details: { target: p.name, pid: p.rootPid, ...(cause === undefined ? {} : { criu: cause.toJSON() }) },
  });
}

function dumpFailed(p: PlannedTarget, cause: NvwaError): NvwaError {
  const lines = Array.isArray(cause.details.logLines) ? (cause.details.logLines as string[]) : [];
  return new NvwaError("checkpoint.dump-failed", `cannot checkpoint ${targetLabel(p)}: ${cause.message}`, {
    ...(cause.hint === undefined ? {} : { hint: cause.hint }),
    cause,
    details: { ...cause.details, target: p.name, pid: p.rootPid, criuCode: cause.code, logLines: lines },
  });
}

async function failAndRollback(m: Manifest, err: NvwaError, plan: CheckpointPlan, emit: OnEvent): Promise<NvwaError> {
  // No write here: the disk may be what failed (ENOSPC); the rollback resumes first, writes last.
  const r = await rollbackCheckpoint({ ...m, error: errorRecord(err) }, { criuExe: plan.criuExe, onEvent: emit });
  const failed = r.outcomes.filter((o) => !o.ok);
  const resumed = r.outcomes.filter((o) => o.ok && o.how !== "none").map((o) => o.name);
  const suffix =
    failed.length === 0
      ? resumed.length > 0
        ? `; rolled back: ${resumed.join(", ")} resumed`
        : "; rolled back: nothing else had been frozen"
      : `; ROLLBACK INCOMPLETE: ${failed.map((o) => `${o.name}: ${o.error?.message ?? "failed"}`).join("; ")}`;
  return new NvwaError(err.code, `${err.message}${suffix}`, {
    hint: failed.length === 0 ? (err.hint ?? "see the criu log named above") : `resume by hand: kill -CONT the pids listed in ${join(m.criuDir, "manifest.json")}; ${err.hint ?? ""}`,
    cause: err,
    details: {
      ...err.details,
      rolledBack: r.outcomes.map((o) => ({ name: o.name, how: o.how, ok: o.ok, ...(o.error ? { error: o.error.toJSON() } : {}) })),
    },
  });
}

/**
 * criu's dump-time nftables table stays after a --leave-stopped dump until a criu restore removes
 * it; a tree resumed with SIGCONT never gets one, so every rehearsal and rolled-back update left a
 * table behind, and each slows every later nftables-locked dump on the machine (measured: a
 * 64 MiB dump frozen 1.4 s instead of 0.06 s with 80 of them). Best effort: the tree runs either way.
 */
function dropCriuLockTable(t: Target): void {
  try {
    const runId = dumpRunId(readFileSync(join(t.imagesDir, "inventory.img")));
    removeInetTable(criuLockTable(runId, t.rootPid));
  } catch (e) {
    log.warn(`${targetLabel(t)}: criu's network-lock table was not removed: ${toNvwaError(e).message}`);
  }
}

/** The processes to continue: the live tree of the root, plus recorded ones still there. */
function liveProcesses(t: Target): number[] {
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
      await runRestore(t, { criuExe: o.criuExe ?? m.criu?.exe ?? "/usr/sbin/criu", options: m.options });
      return { name: t.name, how: "restore", ok: true, ms: performance.now() - started };
    }
    // A failed dump was resumed by criu itself; continue only what it may have left stopped.
    const pids = t.phase === "dumped" ? liveProcesses(t) : liveProcesses(t).filter((pid) => readProc(pid)?.state === "T");
    if (pids.length === 0) return { name: t.name, how: "none", ok: true, ms: performance.now() - started };
    signalAll(pids, "SIGCONT");
    if (t.phase === "dumped" && m.options.networkLock === "nftables") dropCriuLockTable(t);
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
  for (const t of order) {
    const r = await resumeOne(m, t, o);
    outcomes.push(r);
    if (r.how === "none") continue;
    if (r.ok) {
      emit({ type: "target-resumed", name: t.name, how: r.how === "restore" ? "restore" : "sigcont", ms: Math.round(r.ms) });
      m = withTarget(m, t.name, (x) => ({ ...x, phase: x.phase === "dump-failed" ? "dump-failed" : "resumed" }));
    } else if (r.error) {
      log.error(r.error.message);
      emit({ type: "target-resume-failed", name: t.name, error: errorRecord(r.error) });
    }
  }
  // Processes first, files after: a full or failing disk must not keep a tree frozen.
  if (!m.options.debug) {
    for (const t of m.targets) {
      try {
        removeImages(t.imagesDir);
      } catch (e) {
        log.warn(`cannot remove the images in ${t.imagesDir}: ${toNvwaError(e).message}`);
      }
    }
  }
  m = withPhase(m, "rolled-back");
  let manifestError: NvwaError | undefined;
  try {
    writeManifest(m);
  } catch (e) {
    manifestError = toNvwaError(e);
    log.warn(`the trees were resumed, but the manifest could not be updated: ${manifestError.message}`);
  }
  return { manifest: m, outcomes: outcomes.reverse(), ...(manifestError === undefined ? {} : { manifestError }) };
}

export interface CommitResult {
  manifest: Manifest;
  syncedBytes: number;
  /** Pids not yet reaped when commit returned (their parent has not waited for them yet). */
  stillHeld: { pid: number; holder: string }[];
}

/**
 * The point of no return: images and manifest durable on disk (phase "committed", boot id, every
 * target "killing"), then the frozen trees are killed. The intent is written before the effect:
 * a crash at any moment after that write leaves a manifest from which the next start of the
 * daemon restores every target (src/daemon/recovery-plan.ts), whether its kill happened or not.
 * Call it after the last step that could still roll back.
 */
export async function commitCheckpoint(manifest: Manifest, o: EngineOptions = {}): Promise<CommitResult> {
  const emit = o.onEvent ?? ignoreEvents;
  if (manifest.phase !== "dumped") {
    throw new NvwaError("checkpoint.not-dumped", `cannot commit: the update is in phase "${manifest.phase}", not "dumped"`, {
      hint: "commit follows a successful checkpoint; see `nvwa status`",
      details: { phase: manifest.phase },
    });
  }
  const started = performance.now();
  let synced = 0;
  for (const t of manifest.targets) synced += syncImages(t.imagesDir);
  fsyncDir(manifest.criuDir);
  emit({ type: "images-synced", ms: Math.round(performance.now() - started), bytes: synced });
  const bootId = currentBootId();
  let m: Manifest = {
    ...withPhase(manifest, "committed"),
    ...(bootId === undefined ? {} : { bootId }),
    targets: manifest.targets.map((t) => ({ ...t, phase: "killing" as const })),
  };
  writeManifest(m);

  const stillHeld: { pid: number; holder: string }[] = [];
  for (const t of m.targets) {
    const t0 = performance.now();
    const pids = liveProcesses({ ...t, stoppedBefore: [] });
    signalAll(pids, "SIGKILL");
    const held = await waitPidsFree(t.pids, o.reapTimeoutMs ?? 10_000);
    stillHeld.push(...held);
    if (held.length > 0) log.warn(`${targetLabel(t)}: pid ${held[0]?.pid} not reaped yet (${held[0]?.holder}); a restore on this boot would clash`);
    emit({ type: "target-killed", name: t.name, pids: pids.length, ms: Math.round(performance.now() - t0) });
  }
  await faultPoint("after-kill");
  m = { ...m, targets: m.targets.map((t) => ({ ...t, phase: "killed" as const })) };
  writeManifest(m);
  return { manifest: m, syncedBytes: synced, stillHeld };
}

export type { EngineEvent };
