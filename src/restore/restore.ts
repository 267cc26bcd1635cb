/**
 * Bringing checkpointed targets back (after the jump, by the daemon at boot; or on the same boot
 * when a jump failed after the commit).
 *
 *   restoreTarget(criuDir, name, opts)  one target: pid check, criu restore, manifest updated.
 *                                       The service restore helper goes through this, with
 *                                       --pidfile / --manage-cgroups=ignore as its unit needs.
 *   restoreAll(criuDir, opts)           every pending target (optionally only pids or only some
 *                                       names), ns_last_pid moved first; a skipped or failed
 *                                       target does not stop the others.
 *
 * Each step is written to the manifest as it happens, with timings, so `nvwa status` can show
 * a restore that was interrupted. Images are removed after a successful restore unless the
 * update ran in debug mode.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { NvwaError, toNvwaError } from "../errors.ts";
import { LAZY_RESTORE_ARGS, type ManageCgroups } from "../criu/argv.ts";
import { ignoreEvents, type OnEvent } from "../criu/events.ts";
import { removeImages } from "../criu/images.ts";
import { runRestore, type RestoreRun } from "../criu/restore-run.ts";
import { currentTree } from "../criu/proc.ts";
import { currentBootId } from "../state/lock.ts";
import {
  errorRecord,
  findTarget,
  highestSavedPid,
  stampTarget,
  withPhase,
  withTarget,
  type Manifest,
  type RestoreStats,
  type Target,
  type UpdatePhase,
} from "../state/manifest.ts";
import { readManifest, updateManifest } from "../state/manifest-file.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";
import { killTarget, type LazyRestores } from "./lazy.ts";
import { findHolders, bumpNsLastPid } from "./pids.ts";
import { assertRestorable, pendingTargets, pidClash, settledPhase, targetTitle, type RestoreSelection } from "./plan.ts";

export interface RestoreTargetOptions {
  criuExe: string;
  /** Default true: criu exits once the tree runs. */
  detached?: boolean;
  pidfile?: string;
  manageCgroups?: ManageCgroups;
  inheritFds?: readonly { fd: number; resource: string }[];
  extraArgs?: readonly string[];
  timeoutMs?: number;
  /** Keep the images after a good restore (default: the manifest's debug option). */
  keepImages?: boolean;
  onEvent?: OnEvent;
  /**
   * The boot-side restore's supervisor of lazy restores: with it, and an update made with
   * enable_lazy_restore, a target runs before its memory is back (lazy.ts). Without it, in full.
   */
  lazy?: LazyRestores;
}

export interface TargetRestoreResult {
  name: string;
  kind: Target["kind"];
  status: "restored" | "failed" | "skipped";
  /** The restored root (criu restores pids as they were). */
  rootPid: number;
  /** Every process of the restored tree, root first (empty unless restored). */
  pids: number[];
  ms: number;
  stats?: RestoreStats;
  error?: NvwaError;
}

export interface RestoreReport {
  updateId: string;
  phase: UpdatePhase;
  /** The manifest's commit boot id equals this boot's: no kernel jump happened in between. */
  sameBoot: boolean;
  nsLastPid?: { before: number; after: number };
  results: TargetRestoreResult[];
}

/** Marks the update restoring on this boot (recovery-plan.ts reads restoreBootId after a crash). */
function begin(criuDir: string): Manifest {
  const bootId = currentBootId();
  return updateManifest(criuDir, (m) => {
    assertRestorable(m);
    const r = m.phase === "restoring" ? m : withPhase(m, "restoring");
    return bootId === undefined || r.restoreBootId === bootId ? r : { ...r, restoreBootId: bootId };
  });
}

function settle(criuDir: string): Manifest {
  return updateManifest(criuDir, (m) => {
    const phase = settledPhase(m);
    return phase === m.phase ? m : withPhase(m, phase);
  });
}

async function restoreOne(criuDir: string, name: string, opts: RestoreTargetOptions): Promise<TargetRestoreResult> {
  const emit = opts.onEvent ?? ignoreEvents;
  const m = readManifest(criuDir);
  const t = findTarget(m, name);
  if (t === undefined) {
    throw new NvwaError("restore.no-such-target", `update ${m.updateId} has no target "${name}"`, {
      hint: `its targets: ${m.targets.map((x) => x.name).join(", ") || "none"}`,
      details: { name },
    });
  }
  if (t.phase === "restored") {
    return { name, kind: t.kind, status: "restored", rootPid: t.restoredPid ?? t.rootPid, pids: currentTree(t.restoredPid ?? t.rootPid).processes, ms: 0 };
  }
  if (t.phase === "lost") {
    // Lost after a lazy restore: it ran meanwhile, so its checkpoint no longer matches its files.
    const lost = new NvwaError("restore.target-lost", `${targetTitle(t)} is lost and is not restored again: ${t.error?.message ?? "see nvwa status"}`, {
      hint: "start it afresh; its images stay until `nvwa init`",
      details: { target: name },
    });
    return { name, kind: t.kind, status: "failed", rootPid: t.rootPid, pids: [], ms: 0, error: lost };
  }
  if (!existsSync(join(t.imagesDir, "inventory.img"))) {
    const gone = new NvwaError("restore.images-missing", `the images of ${targetTitle(t)} are gone from ${t.imagesDir}`, {
      hint: "they were removed (nvwa init, a cleanup job) or criu_dir is not on a disk that survives the jump; this target cannot be restored",
      details: { target: name, imagesDir: t.imagesDir },
    });
    updateManifest(criuDir, (x) => withTarget(x, name, (y) => ({ ...y, phase: "restore-failed", error: errorRecord(gone) })));
    emit({ type: "target-restore-failed", name, error: errorRecord(gone) });
    return { name, kind: t.kind, status: "failed", rootPid: t.rootPid, pids: [], ms: 0, error: gone };
  }
  // Checked on every use: the images are process memory (tightened if loosened, refused if not ours).
  ensurePrivateDir(t.imagesDir, emit);
  const clash = pidClash(t, findHolders(t.pids));
  if (clash !== null) {
    updateManifest(criuDir, (x) => withTarget(x, name, (y) => ({ ...y, phase: "skipped", error: errorRecord(clash) })));
    emit({ type: "target-skipped", name, error: errorRecord(clash) });
    return { name, kind: t.kind, status: "skipped", rootPid: t.rootPid, pids: [], ms: 0, error: clash };
  }
  updateManifest(criuDir, (x) => withTarget(x, name, (y) => stampTarget({ ...y, phase: "restoring" }, "restore", "start")));
  emit({ type: "target-restoring", name, pid: t.rootPid });
  const started = performance.now();
  // Started (and listening) before criu restore, which connects to it before creating any task.
  const lazy = opts.lazy !== undefined && m.options.lazyRestore ? await opts.lazy.start(t) : null;
  const extraArgs = [...(opts.extraArgs ?? []), ...(lazy === null ? [] : LAZY_RESTORE_ARGS)];
  try {
    let run: RestoreRun;
    try {
      run = await runRestore(t, {
        criuExe: opts.criuExe,
        options: m.options,
        ...(opts.detached === undefined ? {} : { detached: opts.detached }),
        ...(opts.pidfile === undefined ? {} : { pidfile: opts.pidfile }),
        ...(opts.manageCgroups === undefined ? {} : { manageCgroups: opts.manageCgroups }),
        ...(opts.inheritFds === undefined ? {} : { inheritFds: opts.inheritFds }),
        ...(extraArgs.length === 0 ? {} : { extraArgs }),
        ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
        onNote: emit,
      });
    } catch (e) {
      if (lazy !== null) {
        // The restore can fail after criu made the tree (its journal stream lost, its root gone
        // right after): what runs of it would read zeros once the daemon is gone, so it goes first.
        // A daemon criu never connected to would wait in accept() for ever.
        killTarget(t);
        lazy.kill();
      }
      throw e;
    }
    const keep = opts.keepImages ?? m.options.debug;
    // Watched from the moment the tree runs: its memory is coming back until the daemon ends.
    if (lazy !== null && opts.lazy !== undefined) opts.lazy.watch(t, run.rootPid, lazy, keep);
    const pids = currentTree(run.rootPid).processes;
    updateManifest(criuDir, (x) =>
      withTarget(x, name, (y) => {
        // A restored-in-full target carries no lazy record (a stale one from an attempt that never
        // came up would make the next start of the daemon treat it as lazily restored).
        const { error: _old, lazy: lazyRecord, ...rest } = y;
        const keepLazy = lazy !== null && lazyRecord !== undefined ? { lazy: lazyRecord } : {};
        return stampTarget({ ...rest, ...keepLazy, phase: "restored", restoredPid: run.rootPid, ...(run.stats === undefined ? {} : { restoreStats: run.stats }) }, "restore", "end");
      }),
    );
    // A lazily restored tree still reads its memory from the images: lazy.ts removes them once it is all in.
    if (lazy === null && !keep) removeImages(t.imagesDir);
    emit({ type: "target-restored", name, pid: run.rootPid, ms: Math.round(run.ms), ...(run.stats === undefined ? {} : { stats: run.stats }) });
    return { name, kind: t.kind, status: "restored", rootPid: run.rootPid, pids, ms: performance.now() - started, ...(run.stats === undefined ? {} : { stats: run.stats }) };
  } catch (e) {
    const err = toNvwaError(e, "restore.failed");
    updateManifest(criuDir, (x) => withTarget(x, name, (y) => stampTarget({ ...y, phase: "restore-failed", error: errorRecord(err) }, "restore", "end")));
    emit({ type: "target-restore-failed", name, error: errorRecord(err) });
    return { name, kind: t.kind, status: "failed", rootPid: t.rootPid, pids: [], ms: performance.now() - started, error: err };
  }
}

/**
 * Restores one target by name. Never throws for the target's own failure (the result says it);
 * throws when the manifest is missing, damaged, or not in a restorable phase.
 */
export async function restoreTarget(criuDir: string, name: string, opts: RestoreTargetOptions): Promise<TargetRestoreResult> {
  begin(criuDir);
  try {
    return await restoreOne(criuDir, name, opts);
  } finally {
    settle(criuDir);
  }
}

export interface RestoreAllOptions extends Omit<RestoreTargetOptions, "pidfile"> {
  select?: RestoreSelection;
  /** Move ns_last_pid past the highest saved pid first (default true). */
  bumpNsLastPid?: boolean;
}

/**
 * Restores every pending target of the manifest in `criuDir` (in the order they were dumped).
 * Reads the whole manifest first: a damaged one restores nothing.
 */
export async function restoreAll(criuDir: string, opts: RestoreAllOptions): Promise<RestoreReport> {
  const emit = opts.onEvent ?? ignoreEvents;
  const first = readManifest(criuDir);
  assertRestorable(first);
  const bootId = currentBootId();
  const sameBoot = first.bootId !== undefined && bootId !== undefined && first.bootId === bootId;
  let ns: { before: number; after: number } | undefined;
  if (opts.bumpNsLastPid ?? true) {
    ns = bumpNsLastPid(highestSavedPid(first));
    emit({ type: "ns-last-pid", before: ns.before, after: ns.after });
  }
  begin(criuDir);
  const results: TargetRestoreResult[] = [];
  try {
    for (const t of pendingTargets(first, opts.select ?? {})) {
      const { select: _s, bumpNsLastPid: _b, ...one } = opts;
      results.push(await restoreOne(criuDir, t.name, one));
    }
  } finally {
    settle(criuDir);
  }
  const last = readManifest(criuDir);
  return { updateId: last.updateId, phase: last.phase, sameBoot, ...(ns === undefined ? {} : { nsLastPid: ns }), results };
}
