/**
 * The checkpoint step of an update: either every target is saved and frozen, or none is harmed.
 * Dumps the targets one after the other with criu --leave-stopped; when a dump fails (or a target
 * has exited), every tree already frozen is given back (rollback.ts) and the error names the
 * target and quotes criu's log. What follows is commit.ts (the point of no return) or rollback.ts.
 *
 * Dumps are serial on purpose: the openEuler pin-memory path requires it, and a failure stops
 * the freeze from spreading to targets not yet touched.
 */
import { release } from "node:os";
import { checkpointContainer, flagsOf, plannedContainer, withContainer, type ContainerPlan } from "../container/keep.ts";
import { PodmanClient } from "../container/podman-api.ts";
import { join } from "node:path";
import { DUMP_LOG } from "../criu/argv.ts";
import { ignoreEvents, type OnEvent } from "../criu/events.ts";
import { hasTcpStreams, imageBytes, prepareImagesDir } from "../criu/images.ts";
import { parseDumpStats, rootCause } from "../criu/log.ts";
import { assertPlanOk, type CheckpointPlan, type PlannedTarget } from "../criu/plan.ts";
import { currentTree, sameProcess } from "../criu/proc.ts";
import { targetLabel } from "../criu/restore-run.ts";
import { criuFailure, failureLines, runCriu, type CriuRunSpec } from "../criu/runner.ts";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import { faultPoint } from "../fault-point.ts";
import { tcpConnectionsOf } from "../net/tcp-conns.ts";
import { currentBootId } from "../state/lock.ts";
import { errorRecord, newManifest, stampTarget, withPhase, withTarget, type ContainerTarget, type Manifest, type Target } from "../state/manifest.ts";
import { writeManifest } from "../state/manifest-file.ts";
import { note } from "../note.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";
import { rollbackCheckpoint } from "./rollback.ts";
import { saveHeldFiles } from "../criu/held-files.ts";
import { finalDumpOptions, preDumpTarget } from "./pre-dump.ts";
import { interruptBefore } from "./stop-request.ts";
import type { PreDump } from "../state/manifest-schema.ts";

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
  /** podman containers, checkpointed after every target (src/container/keep.ts). */
  containers?: ContainerPlan[];
  podman?: PodmanClient;
  /** How a container run by a unit comes back if the checkpoint fails (rollback.ts). */
  containerViaUnit?: (c: ContainerTarget) => Promise<void>;
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
  /** Time of the pre-dump rounds, all targets, less the moments criu froze them (the rest ran). */
  preDumpMs: number;
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
    ...(p.journalStreams === undefined ? {} : { journalStreams: p.journalStreams }),
    tcpConnections: false,
    phase: "planned",
    timings: {},
  };
}

export async function checkpoint(plan: CheckpointPlan, opts: CheckpointOptions = {}): Promise<CheckpointResult> {
  assertPlanOk(plan);
  const emit = opts.onEvent ?? ignoreEvents;
  ensurePrivateDir(plan.criuDir, emit);
  const bootId = currentBootId();
  let m: Manifest =
    opts.manifest ??
    newManifest({
      ...(opts.updateId === undefined ? {} : { updateId: opts.updateId }),
      kernel: opts.kernel ?? { from: release(), to: release() },
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
  m = { ...withPhase(m, "checkpointing"), options: { ...plan.options, rehearsal: opts.rehearsal ?? m.options.rehearsal }, targets: plan.targets.map(toTarget), containers: (opts.containers ?? []).map((c) => plannedContainer(c, plan.criuDir)) };
  writeManifest(m);

  const dumped: DumpedTarget[] = [];
  let current: PlannedTarget | undefined;
  const chains = new Map<string, PreDump>();
  let preDumpMs = 0;
  let frozenInRoundsMs = 0;
  try {
    // Every target's memory first, while all of them run; then the freezes, each short.
    const preStart = performance.now();
    if (plan.preDump !== undefined) {
      for (const p of plan.targets) {
        const stop = interruptBefore("pre-dump");
        if (stop !== null) throw stop;
        const pre = await preDumpTarget(p, plan, plan.preDump.memTrack, emit, opts.dumpTimeoutMs);
        chains.set(p.name, pre);
        frozenInRoundsMs += pre.rounds.reduce((s, r) => s + (r.stats?.frozenUs ?? 0) / 1000, 0);
        m = withTarget(m, p.name, (t) => ({ ...t, preDump: pre }));
        writeManifest(m);
      }
    }
    preDumpMs = performance.now() - preStart - frozenInRoundsMs;
    for (const [i, p] of plan.targets.entries()) {
      current = p;
      if (i === 1) await faultPoint("before-dump-2");
      const d = await dumpOne(p, plan, opts, emit, chains.get(p.name), (change) => {
        m = withTarget(m, p.name, change);
        writeManifest(m);
      });
      dumped.push(d);
    }
    current = undefined;
    // Containers last: podman's checkpoint stops a container, so giving one back costs a restore.
    const podman = opts.podman ?? new PodmanClient();
    for (const [i, c] of m.containers.entries()) {
      if (i === 1) await faultPoint("after-container-1");
      await checkpointContainer(c, flagsOf(m, c), podman, (change) => {
        m = withContainer(m, c.name, change);
        writeManifest(m);
      }, emit);
    }
    m = withPhase(m, "dumped");
    writeManifest(m);
    return { manifest: m, dumped, preDumpMs };
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
    throw await failAndRollback(m, err, plan, emit, opts.podman, opts.containerViaUnit);
  }
}

/** Dumps one planned target; `record` applies a change to its manifest entry and writes it. */
async function dumpOne(
  p: PlannedTarget,
  plan: CheckpointPlan,
  opts: CheckpointOptions,
  emit: OnEvent,
  pre: PreDump | undefined,
  record: (change: (t: Target) => Target) => void,
): Promise<DumpedTarget> {
  const label = targetLabel(p);
  if (!sameProcess(p.rootPid, p.rootStartTime)) throw exited(p);
  // A pre-dump chain stays: the dump's `parent` link points into it. Without one, a fresh directory.
  if (pre?.parent === undefined) prepareImagesDir(p.imagesDir, emit);
  record((t) => stampTarget({ ...t, phase: "dumping" }, "dump", "start"));
  emit({ type: "target-dumping", name: p.name, pid: p.rootPid });
  const spec: CriuRunSpec = {
    exe: plan.criuExe,
    argv: [...p.argv, ...finalDumpOptions(pre)],
    env: plan.env,
    action: "dump",
    target: label,
    logPath: join(p.imagesDir, DUMP_LOG),
    outDir: p.imagesDir,
    timeoutMs: opts.dumpTimeoutMs ?? 10 * 60_000,
    onNote: emit,
  };
  let run = await runCriu(spec);
  if ((run.exitCode !== 0 || run.timedOut) && pre?.parent !== undefined && sameProcess(p.rootPid, p.rootStartTime)) {
    // A pre-dump never fails an update: a final dump that failed against the chain (criu resumes
    // the tree) is done once more in full, the chain thrown away (its dirty bits are spent).
    const why = rootCause(failureLines(spec, run)) ?? `exit code ${run.exitCode}`;
    emit(note("warn", `${label}: the dump against pre-dump ${pre.parent} failed (${why}); dumping in full`));
    const skipped = `the final dump against ${pre.parent} failed (${why}): dumped in full`;
    record((t) => ({ ...t, preDump: { rounds: pre.rounds, skipped } }));
    prepareImagesDir(p.imagesDir, emit);
    spec.argv = p.argv;
    run = await runCriu(spec);
  }
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
  // Also while frozen: what it holds open on a tmpfs, which the jump erases.
  const heldFiles = saveHeldFiles(processes, p.imagesDir, label);
  const stats = parseDumpStats(run.stdout) ?? undefined;
  record((t) =>
    stampTarget(
      {
        ...t,
        phase: "dumped",
        pids,
        processes,
        imageBytes: bytes,
        tcpConnections: tcp,
        tcpTuples,
        ...(heldFiles.length === 0 ? {} : { heldFiles }),
        ...(stats === undefined ? {} : { dumpStats: stats }),
      },
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

/** How to give back by hand what the rollback could not: frozen trees, and checkpointed containers. */
function byHand(m: Manifest, names: readonly string[]): string {
  const ctrs = m.containers.filter((c) => names.includes(c.name));
  const trees = names.filter((n) => !ctrs.some((c) => c.name === n));
  const parts = [
    ...(trees.length === 0 ? [] : [`resume by hand: kill -CONT the pids listed in ${join(m.criuDir, "manifest.json")}`]),
    ...ctrs.map((c) => `podman container restore --keep ${c.name}${c.unit === undefined ? "" : ` (then it runs outside ${c.unit} until restarted through it)`}`),
  ];
  return parts.join("; ");
}

async function failAndRollback(m: Manifest, err: NvwaError, plan: CheckpointPlan, emit: OnEvent, podman?: PodmanClient, viaUnit?: (c: ContainerTarget) => Promise<void>): Promise<NvwaError> {
  // No write here: the disk may be what failed (ENOSPC); the rollback resumes first, writes last.
  const r = await rollbackCheckpoint(
    { ...m, error: errorRecord(err) },
    { criuExe: plan.criuExe, onEvent: emit, ...(podman === undefined ? {} : { podman }), ...(viaUnit === undefined ? {} : { containerViaUnit: viaUnit }) },
  );
  const failed = r.outcomes.filter((o) => !o.ok);
  const resumed = r.outcomes.filter((o) => o.ok && o.how !== "none").map((o) => o.name);
  const suffix =
    failed.length === 0
      ? resumed.length > 0
        ? `; rolled back: ${resumed.join(", ")} resumed`
        : "; rolled back: nothing else had been frozen"
      : `; ROLLBACK INCOMPLETE: ${failed.map((o) => `${o.name}: ${o.error?.message ?? "failed"}`).join("; ")}`;
  return new NvwaError(err.code, `${err.message}${suffix}`, {
    hint: failed.length === 0 ? (err.hint ?? "see the criu log named above") : `${byHand(m, failed.map((o) => o.name))}; ${err.hint ?? ""}`,
    cause: err,
    details: {
      ...err.details,
      rolledBack: r.outcomes.map((o) => ({ name: o.name, how: o.how, ok: o.ok, ...(o.error ? { error: o.error.toJSON() } : {}) })),
    },
  });
}
