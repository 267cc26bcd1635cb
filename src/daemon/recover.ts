/**
 * What the daemon does, at start, with the update it finds in criu_dir: nothing, a rollback of an
 * update that died before its commit, the report of one a power cut ended before its commit, or
 * the restore of a committed one (after the jump, or on this boot when the jump did not happen).
 * The decision is recovery-plan.ts's (pure, table-tested); this module gathers its facts and
 * carries it out. Each start that found an update unfinished is recorded in the manifest.
 */
import { release } from "node:os";
import { resolve } from "node:path";
import type { NvwaConfig } from "../config/types.ts";
import { NvwaError, toNvwaError } from "../errors.ts";
import { rollbackCheckpoint } from "../update/rollback.ts";
import { unitRollback } from "../restore/container-restore.ts";
import { removeImages } from "../criu/images.ts";
import { currentTree, readProc, sameProcess, snapshotProcesses } from "../criu/proc.ts";
import { signalAll, waitPidsFree } from "../criu/signals.ts";
import { isKexecLoaded, unloadKernel, type Loader } from "../kexec/index.ts";
import { killTarget, lazyLostError } from "../restore/lazy.ts";
import { cleanupDropins, restoreOnThisBoot, serviceUnits, type BootRestoreDeps } from "../restore/boot-restore.ts";
import { currentBootId } from "../state/lock.ts";
import { errorRecord, stampTarget, withPhase, withTarget, type Manifest, type Recovery } from "../state/manifest.ts";
import { readManifest, readManifestIfAny, updateManifest, writeManifest } from "../state/manifest-file.ts";
import { fromEngine } from "./events.ts";
import { decideRecovery } from "./recovery-plan.ts";

export type RecoveryAction = "none" | "restored" | "rolled-back" | "lost" | "cleaned" | "corrupt";

/**
 * criu lazy-pages daemons a previous daemon left in criu_dir (KillMode=process keeps them): none of
 * them has a supervisor any more. Killed after the trees they served (loseUnfinishedLazy); one
 * that never got its restore would otherwise wait in accept() for ever.
 */
function killStrayLazyPages(criuDir: string, deps: BootRestoreDeps): void {
  for (const pid of criuWorkingIn(criuDir, ["lazy-pages"])) {
    try {
      process.kill(pid, "SIGKILL");
      deps.emit({ kind: "log", level: "warn", message: `killed criu lazy-pages (pid ${pid}) that the previous nvwa daemon left unsupervised` });
    } catch {
      // gone meanwhile
    }
  }
}

/** criu processes in one of `modes` ("dump", "lazy-pages", …) on a path under criu_dir, other than nvwa itself. */
function criuWorkingIn(criuDir: string, modes: readonly string[]): number[] {
  const prefix = `${resolve(criuDir)}/`;
  const out: number[] = [];
  for (const [pid, p] of snapshotProcesses()) {
    if (pid === process.pid) continue;
    if (!p.cmdline.some((a) => modes.includes(a))) continue;
    if (p.cmdline.some((a) => a.startsWith(prefix))) out.push(pid);
  }
  return out;
}

/** The criu processes a previous daemon left working in criu_dir (KillMode=process keeps them). */
function strayCriu(criuDir: string): number[] {
  return criuWorkingIn(criuDir, ["dump", "restore", "pre-dump"]);
}

/**
 * A dump or restore the dead daemon started runs on without it; deciding before it ends would
 * resume a tree criu still holds, or restore one criu is restoring. Waits for them to finish.
 */
async function waitForStrayCriu(criuDir: string, deps: BootRestoreDeps, timeoutMs = 10 * 60_000): Promise<void> {
  let pids = strayCriu(criuDir);
  if (pids.length === 0) return;
  deps.emit({ kind: "log", level: "warn", message: `waiting for criu (pid ${pids.join(", ")}) that the previous nvwa daemon left running in ${criuDir}` });
  const until = Date.now() + timeoutMs;
  while (pids.length > 0 && Date.now() < until) {
    await Bun.sleep(100);
    pids = strayCriu(criuDir);
  }
  if (pids.length > 0) deps.emit({ kind: "log", level: "error", message: `criu (pid ${pids.join(", ")}) still runs after ${timeoutMs / 1000} s; recovering anyway` });
}

/** Targets whose root pid runs now with the command line it was dumped with. */
function aliveTargets(m: Manifest): Set<string> {
  const out = new Set<string>();
  for (const t of m.targets) {
    const p = readProc(t.rootPid);
    if (p !== null && p.state !== "Z" && p.cmdline.join("\0") === t.cmdline.join("\0")) out.add(t.name);
  }
  return out;
}

function recordRecovery(criuDir: string, found: Manifest["phase"], action: Recovery["action"], message: string): void {
  const bootId = currentBootId();
  updateManifest(criuDir, (m) => ({ ...m, recoveries: [...(m.recoveries ?? []), { at: Date.now(), ...(bootId === undefined ? {} : { bootId }), found, action, message }] }));
}

/** Kills what is left of the frozen trees of a committed update (the commit's own intent). */
async function killLeftovers(m: Manifest, names: readonly string[], deps: BootRestoreDeps): Promise<void> {
  for (const t of m.targets.filter((x) => names.includes(x.name))) {
    // Only this exact tree: its root by pid and start time, and its own processes still stopped.
    const root = t.rootStartTime !== undefined && sameProcess(t.rootPid, t.rootStartTime) ? currentTree(t.rootPid).processes : [];
    const pids = [...new Set([...root, ...t.processes.filter((p) => readProc(p)?.state === "T")])];
    if (pids.length === 0) continue;
    signalAll(pids, "SIGKILL");
    const held = await waitPidsFree(t.pids, 10_000);
    deps.emit({ kind: "target", target: t.name, message: `${t.name}: killed what was left of its frozen tree (${pids.length} process(es)) before restoring it from its images` });
    if (held.length > 0) deps.emit({ kind: "target", target: t.name, level: "error", message: `${t.name}: pid ${held[0]?.pid} is still held by ${held[0]?.holder}; its restore will clash` });
  }
}

/**
 * What the daemon does with the manifest it finds when it starts: the decision is
 * src/daemon/recovery-plan.ts's (pure, table-tested); this carries it out.
 */
export async function recoverAtStart(config: NvwaConfig, deps: BootRestoreDeps): Promise<{ action: RecoveryAction; manifest: Manifest | null }> {
  const { criuDir, criuExe, kexecExe } = config.server;
  let m: Manifest | null;
  try {
    m = readManifestIfAny(criuDir);
  } catch (e) {
    // A damaged manifest restores nothing half way; the operator decides (nvwa status / init).
    deps.emit({ kind: "log", level: "error", message: toNvwaError(e).message });
    return { action: "corrupt", manifest: null };
  }
  if (m === null) return { action: "none", manifest: null };
  if (!["restored", "restore-failed", "rolled-back"].includes(m.phase)) {
    await waitForStrayCriu(criuDir, deps);
    m = readManifest(criuDir);
  }
  const found = m.phase;
  const d = decideRecovery(m, { bootId: currentBootId(), kexecLoaded: isKexecLoaded(), alive: aliveTargets(m) });
  const units = serviceUnits(m);
  switch (d.action) {
    case "none":
      return { action: "none", manifest: null };
    case "cleanup":
      await cleanupDropins(config, units, deps);
      return { action: "cleaned", manifest: m };
    case "rollback": {
      const names = [...m.targets.filter((t) => t.phase !== "planned").map((t) => t.name), ...m.containers.filter((c) => c.phase !== "planned").map((c) => `container ${c.name}`)];
      deps.emit({ kind: "log", level: "warn", message: `update ${m.updateId} stopped in phase ${found} on this boot (the daemon died or was killed); resuming its processes` });
      // A container run by a unit comes back by a start of that unit, ordered after nvwa.service:
      // systemd must hear READY first, or the start would wait for this very rollback.
      if (m.containers.some((c) => c.unit !== undefined && c.phase !== "planned")) deps.onProcessesRestored?.();
      await rollbackCheckpoint(m, {
        criuExe,
        onEvent: (e) => deps.emit(fromEngine(e)),
        ...(deps.mgr === null ? {} : { containerViaUnit: unitRollback(config, deps.mgr, (e) => deps.emit(fromEngine(e)), m.updateId) }),
      });
      if (d.unloadKernel && m.kernel.loader !== undefined) unloadKernel(m.kernel.loader as Loader, kexecExe, (n) => deps.emit(fromEngine(n)));
      await cleanupDropins(config, units, deps);
      recordRecovery(criuDir, found, "rolled-back", `the nvwa daemon stopped during ${found} (it crashed or was killed); its next start rolled the update back: ${names.length > 0 ? `${names.join(", ")} resumed` : "nothing had been frozen"}${d.unloadKernel ? ", the loaded kernel unloaded" : ""}`);
      return { action: "rolled-back", manifest: readManifest(criuDir) };
    }
    case "lost": {
      const err = new NvwaError("recover.lost", `the machine restarted while update ${m.updateId} was in phase ${found}, before anything was committed: ${d.targets.join(", ") || "no target"} died with it unsaved`, {
        hint: "as at any power loss, start them again (an enabled service is started by systemd as usual); the update changed nothing else",
      });
      const lost = m.targets.map((t) => ({ ...t, phase: "lost" as const, error: errorRecord(new NvwaError("recover.lost", `${t.name} was not saved: the machine restarted during the checkpoint`, { hint: "start it again" })) }));
      // A container's checkpoint was not fsynced before the commit: it cannot be trusted either.
      const lostContainers = m.containers.map((c) => (c.phase === "planned" ? c : { ...c, phase: "lost" as const, error: errorRecord(new NvwaError("recover.lost", `container ${c.name} was not saved: the machine restarted during the checkpoint`, { hint: c.unit === undefined ? `start it again: podman start ${c.name}` : `start it again: systemctl start ${c.unit}` })) }));
      writeManifest({ ...withPhase(m, "rolled-back"), targets: lost, containers: lostContainers, error: errorRecord(err) });
      deps.emit({ kind: "log", level: "error", message: err.message });
      if (!m.options.debug) for (const t of m.targets) removeImagesQuietly(t.imagesDir, deps);
      await cleanupDropins(config, units, deps);
      recordRecovery(criuDir, found, "lost", err.message);
      return { action: "lost", manifest: readManifest(criuDir) };
    }
    case "restore": {
      if (d.sameBoot) deps.emit({ kind: "log", level: "warn", message: `update ${m.updateId} was committed but the jump did not happen; restoring on this kernel` });
      await killLeftovers(m, d.killLeftovers, deps);
      loseUnfinishedLazy(m, d.lazyUnfinished, aliveTargets(m), deps);
      killStrayLazyPages(criuDir, deps);
      // On the boot of the commit, the restore drop-ins are on disk but not loaded (the update
      // writes them without a reload, for the next boot's systemd); the units' starts need them.
      if (d.sameBoot && units.length > 0 && deps.mgr !== null) await deps.mgr.reload();
      for (const name of d.adopt) {
        updateManifest(criuDir, (x) => withTarget(x, name, (t) => stampTarget({ ...t, phase: "restored", restoredPid: t.rootPid }, "restore", "end")));
        deps.emit({ kind: "target", target: name, message: `${name}: its restore had finished before the previous daemon stopped; taken as restored (not restored twice)` });
      }
      const adoptedServices = m.targets.filter((t) => t.kind === "service" && d.adopt.includes(t.name));
      // Recorded before the restore, which is long and may itself be interrupted: each start
      // that found the update unfinished is listed, the targets' phases say how each ended.
      const jumped = release() === m.kernel.to && !d.sameBoot;
      if (found !== "jumping" || !jumped) {
        const why = d.sameBoot
          ? `the nvwa daemon stopped during ${found} (it crashed or was killed) before the jump; its next start restores the targets on this kernel`
          : found === "restoring"
            ? "the restore after the jump was interrupted (power cut or daemon stopped); the next start restores the targets not yet restored, none twice"
            : `the machine restarted in phase ${found} without the jump (a power cut?); the next start restores the targets on this kernel`;
        recordRecovery(criuDir, found, "restored", why);
      }
      await restoreOnThisBoot(config, { ...deps, startAlso: adoptedServices });
      if (d.unloadKernel && m.kernel.loader !== undefined) unloadKernel(m.kernel.loader as Loader, kexecExe, (n) => deps.emit(fromEngine(n)));
      return { action: "restored", manifest: readManifest(criuDir) };
    }
  }
}

/**
 * Targets whose lazy restore the previous daemon was supervising (recovery-plan.ts lazyUnfinished):
 * the lazy-pages daemon it left (KillMode=process keeps it) is stopped, and so is the tree, whose
 * memory may hold zeros where pages never came; each is reported lost by name.
 */
function loseUnfinishedLazy(m: Manifest, names: readonly string[], alive: ReadonlySet<string>, deps: BootRestoreDeps): void {
  for (const name of names) {
    const t = m.targets.find((x) => x.name === name);
    if (t === undefined) continue;
    // The tree first: once its daemon is gone, what it has not copied reads as zeros. Only where
    // its root still runs as dumped (after a power cut the saved pids may be someone else's).
    const killed = alive.has(name) ? killTarget(t) : [];
    const err = lazyLostError(t, "not seen: the nvwa daemon supervising it stopped, or the machine restarted", killed);
    updateManifest(m.criuDir, (x) =>
      withTarget(x, name, (y) => ({ ...y, phase: "lost", error: errorRecord(err), lazy: { ...(y.lazy ?? { startedAt: Date.now() }), state: "lost", endedAt: Date.now(), end: "unknown" } })),
    );
    deps.emit(fromEngine({ type: "target-lazy-lost", name, error: errorRecord(err) }));
  }
}

function removeImagesQuietly(dir: string, deps: BootRestoreDeps): void {
  try {
    removeImages(dir);
  } catch (e) {
    deps.emit({ kind: "log", level: "warn", message: `cannot remove the images in ${dir}: ${toNvwaError(e).message}` });
  }
}
