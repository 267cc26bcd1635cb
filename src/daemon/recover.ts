/**
 * What the daemon does with the manifest it finds: the boot-time restore after a jump, the
 * same restore on this boot when a committed update could not jump, and recovery from an update
 * that died half way (the daemon crashed or the machine lost power). Which of these applies is
 * decided by src/daemon/recovery-plan.ts; this module carries it out.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { NvwaConfig } from "../config/types.ts";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import { rollbackCheckpoint } from "../update/rollback.ts";
import { removeImages } from "../criu/images.ts";
import { currentTree, readProc, sameProcess, snapshotProcesses } from "../criu/proc.ts";
import { signalAll, waitPidsFree } from "../criu/signals.ts";
import { faultPoint } from "../fault-point.ts";
import { pendingTargets } from "../restore/plan.ts";
import { isKexecLoaded, unloadKernel, type Loader } from "../kexec/index.ts";
import { netSnapshotPath, restoreNetwork } from "../net/index.ts";
import { installTcpLock, removeTcpLock } from "../net/tcp-lock.ts";
import { restoreAll, restoreTarget, type TargetRestoreResult } from "../restore/restore.ts";
import { currentBootId, acquireLock, lockPath, type HeldLock } from "../state/lock.ts";
import { errorRecord, stampTarget, withPhase, withTarget, type Manifest, type Recovery, type Target } from "../state/manifest.ts";
import { readManifest, readManifestIfAny, updateManifest, writeManifest } from "../state/manifest-file.ts";
import { removeDropins } from "../systemd/dropins.ts";
import type { SystemdManager } from "../systemd/manager.ts";
import { fromEngine } from "./events.ts";
import type { ProgressEvent, RestoreResult } from "./protocol.ts";
import { decideRecovery } from "./recovery-plan.ts";

/** Open while service restores must get through to the daemon during an update's rollback. */
export const restoreWindow = { open: false };

/**
 * Service restores the daemon started itself, by unit. criu restores a service's tree while
 * systemd starts the unit and the unit's restore helper (a second nvwa) starts up, instead of
 * after: the helper's request joins the restore under way (handleRestoreRequest).
 */
const serviceRestores = new Map<string, Promise<TargetRestoreResult>>();

/** criu restore of one service's tree, left in the daemon's cgroup for its helper to move. Never rejects. */
function restoreService(config: NvwaConfig, t: Target, emit: (e: ProgressEvent) => void): Promise<TargetRestoreResult> {
  const started = Date.now();
  return restoreTarget(config.server.criuDir, t.name, {
    criuExe: config.server.criuExe,
    detached: true,
    // The helper moves the tree into the unit's cgroup; criu must not recreate the old ones.
    manageCgroups: "ignore",
    onEvent: (e) => emit(fromEngine(e)),
  }).catch((e: unknown) => ({ name: t.name, kind: t.kind, status: "failed" as const, rootPid: t.rootPid, pids: [], ms: Date.now() - started, error: toNvwaError(e) }));
}

export interface RecoverDeps {
  emit: (e: ProgressEvent) => void;
  mgr: SystemdManager | null;
  /** Called once the bare processes are back: the daemon then tells systemd it is ready. */
  onProcessesRestored?: () => void;
  /** The caller holds the update lock already (an update rolling back after its commit). */
  lockHeld?: boolean;
  /** How long one service's restore (its start job) may take. */
  serviceTimeoutMs?: number;
  /**
   * Services already restored whose units must still take their trees over: adopted after the
   * previous daemon died between the restore and the unit's start (recoverAtStart).
   */
  startAlso?: readonly Target[];
}

function serviceUnits(m: Manifest): string[] {
  return m.targets.filter((t) => t.kind === "service").map((t) => t.unit ?? t.name);
}

async function cleanupDropins(config: NvwaConfig, units: string[], deps: RecoverDeps): Promise<void> {
  let removed = 0;
  for (const u of units) removed += removeDropins(config.server.systemdEtc, u).length;
  if (removed > 0 && deps.mgr !== null) await deps.mgr.reload();
  if (removed > 0) deps.emit({ kind: "log", message: `removed ${removed} nvwa drop-in(s) and reloaded systemd` });
}

function stamp(criuDir: string, key: string, edge: "start" | "end"): void {
  updateManifest(criuDir, (m) => {
    const cur = m.timings[key];
    const now = Date.now();
    return { ...m, timings: { ...m.timings, [key]: edge === "start" ? { start: now } : { start: cur?.start ?? now, end: now } } };
  });
}

/**
 * Restores every pending target of the committed update in criu_dir: the network first, then
 * bare processes (ns_last_pid moved past every saved pid), then each service by starting its
 * unit, whose drop-in ExecStart asks this daemon to restore it (see handleRestoreRequest).
 */
export async function restoreOnThisBoot(config: NvwaConfig, deps: RecoverDeps): Promise<Manifest> {
  const { criuDir, criuExe } = config.server;
  const lock: HeldLock | null = deps.lockHeld ? null : acquireLock(lockPath(criuDir), "restore");
  restoreWindow.open = true;
  let tcpLocked = false;
  try {
    const first = readManifest(criuDir);
    stamp(criuDir, "boot-restore", "start");
    // Before the addresses come back: from then on a peer's packet for a socket not restored yet
    // would be answered with a reset (net/tcp-lock.ts).
    tcpLocked = lockPendingConnections(first, deps);
    const netFile = netSnapshotPath(criuDir);
    if (first.options.restoreNet && existsSync(netFile)) {
      try {
        const out = restoreNetwork(netFile);
        deps.emit({ kind: "log", message: `network restored: ${JSON.stringify(out).slice(0, 400)}` });
      } catch (e) {
        // Targets are still restored: a process without its address beats no process.
        deps.emit({ kind: "log", level: "error", message: `network not restored: ${toNvwaError(e).message}` });
      }
    }
    await restoreAll(criuDir, { criuExe, select: { kinds: ["pid"] }, onEvent: (e) => deps.emit(fromEngine(e)) });
    deps.onProcessesRestored?.();
    await faultPoint("after-pids-restored");

    // All start jobs at once: each restore waits mostly on criu, and criu's first run after boot
    // probes the kernel for seconds; one after another, services would wait on each other.
    const pending = [...pendingTargets(readManifest(criuDir), { kinds: ["service"] }), ...(deps.startAlso ?? [])];
    await Promise.all(
      pending.map(async (t) => {
        const unit = t.unit ?? t.name;
        let failure: string | undefined;
        if (deps.mgr === null) {
          // Without systemd the tree would run unsupervised: not restored at all is the honest state.
          failure = "systemd cannot be reached to start the unit";
        } else {
          deps.emit({ kind: "target", target: t.name, message: `${unit}: restoring its processes and starting the unit` });
          const restoring = restoreService(config, t, deps.emit);
          serviceRestores.set(unit, restoring);
          try {
            const outcome = await deps.mgr.startUnitAndWait(unit, "replace", deps.serviceTimeoutMs ?? 300_000);
            if (outcome.result !== "done") failure = `its start job ended "${outcome.result}" (see \`journalctl -u ${unit}\` and ${t.imagesDir}/restore.log)`;
          } catch (e) {
            failure = toNvwaError(e).message;
          } finally {
            const r = await restoring;
            serviceRestores.delete(unit);
            if (failure !== undefined && r.status === "restored") {
              deps.emit({
                kind: "target",
                target: t.name,
                level: "error",
                message: `${unit}: its processes were restored (pid ${r.rootPid}) but systemd did not take them over: ${failure}; they run outside the unit, stop them with kill ${r.rootPid} before starting the unit again`,
              });
            }
          }
        }
        const now = readManifest(criuDir).targets.find((x) => x.name === t.name);
        if (failure !== undefined && now !== undefined && now.phase !== "restored" && now.phase !== "restore-failed" && now.phase !== "skipped") {
          const err = new NvwaError("restore.service-failed", `${unit} was not restored: ${failure}`, { hint: `see ${t.imagesDir}/restore.log` });
          updateManifest(criuDir, (m) => withTarget(m, t.name, (x) => ({ ...x, phase: "restore-failed", error: errorRecord(err) })));
          deps.emit({ kind: "target", target: t.name, level: "error", message: err.message });
        }
      }),
    );
    await cleanupDropins(config, serviceUnits(first), deps);
    updateManifest(criuDir, (m) => {
      const phase = m.targets.every((t) => t.phase === "restored") ? "restored" : "restore-failed";
      return m.phase === phase ? m : withPhase(m, phase);
    });
    stamp(criuDir, "boot-restore", "end");
    return readManifest(criuDir);
  } finally {
    if (tcpLocked) unlockConnections(deps);
    restoreWindow.open = false;
    lock?.release();
  }
}

/** Installs the TCP lock for the connections of targets still to be restored; true if it is in place. */
function lockPendingConnections(m: Manifest, deps: RecoverDeps): boolean {
  const pending = pendingTargets(m);
  const tuples = pending.flatMap((t) => t.tcpTuples ?? []);
  if (tuples.length === 0) return false;
  try {
    installTcpLock(tuples);
    deps.emit({ kind: "log", message: `holding back the packets of ${tuples.length} TCP connection(s) until their targets are restored` });
    return true;
  } catch (e) {
    // The restore goes on: a connection at risk of a reset beats a process not restored.
    deps.emit({ kind: "log", level: "error", message: `TCP connections not held back (a peer that sends before its target is restored gets a reset): ${toNvwaError(e).message}` });
    return false;
  }
}

function unlockConnections(deps: RecoverDeps): void {
  try {
    removeTcpLock();
    deps.emit({ kind: "log", message: "TCP lock removed: restored connections flow again" });
  } catch (e) {
    deps.emit({ kind: "log", level: "error", message: `the TCP lock could not be removed (restored connections stay silent): ${toNvwaError(e).message}` });
  }
}

/** The daemon's answer to a service's restore helper. */
export async function handleRestoreRequest(config: NvwaConfig, unit: string, emit: (e: ProgressEvent) => void): Promise<RestoreResult> {
  const m = readManifest(config.server.criuDir);
  const t = m.targets.find((x) => x.kind === "service" && (x.unit ?? x.name) === unit);
  if (t === undefined) {
    throw new NvwaError("restore.no-such-target", `update ${m.updateId} did not checkpoint ${unit}`, {
      hint: "its nvwa drop-in is stale: run `nvwa init` and start the unit normally",
      exitCode: ExitCode.usage,
    });
  }
  const r = await (serviceRestores.get(unit) ?? restoreService(config, t, emit));
  if (r.status !== "restored") {
    throw r.error ?? new NvwaError("restore.failed", `${unit} could not be restored`, { hint: `see ${t.imagesDir}/restore.log` });
  }
  return { unit, mainPid: r.rootPid, pids: r.pids };
}

export type RecoveryAction = "none" | "restored" | "rolled-back" | "lost" | "cleaned" | "corrupt";

/** The criu processes a previous daemon left working in criu_dir (KillMode=process keeps them). */
function strayCriu(criuDir: string): number[] {
  const prefix = `${resolve(criuDir)}/`;
  const out: number[] = [];
  for (const [pid, p] of snapshotProcesses()) {
    if (pid === process.pid) continue;
    if (!p.cmdline.some((a) => a === "dump" || a === "restore" || a === "pre-dump")) continue;
    if (p.cmdline.some((a) => a.startsWith(prefix))) out.push(pid);
  }
  return out;
}

/**
 * A dump or restore the dead daemon started runs on without it; deciding before it ends would
 * resume a tree criu still holds, or restore one criu is restoring. Waits for them to finish.
 */
async function waitForStrayCriu(criuDir: string, deps: RecoverDeps, timeoutMs = 10 * 60_000): Promise<void> {
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
async function killLeftovers(m: Manifest, names: readonly string[], deps: RecoverDeps): Promise<void> {
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
export async function recoverAtStart(config: NvwaConfig, deps: RecoverDeps): Promise<{ action: RecoveryAction; manifest: Manifest | null }> {
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
      const names = m.targets.filter((t) => t.phase !== "planned").map((t) => t.name);
      deps.emit({ kind: "log", level: "warn", message: `update ${m.updateId} stopped in phase ${found} on this boot (the daemon died or was killed); resuming its processes` });
      await rollbackCheckpoint(m, { criuExe, onEvent: (e) => deps.emit(fromEngine(e)) });
      if (d.unloadKernel && m.kernel.loader !== undefined) unloadKernel(m.kernel.loader as Loader, kexecExe);
      await cleanupDropins(config, units, deps);
      recordRecovery(criuDir, found, "rolled-back", `the nvwa daemon stopped during ${found} (it crashed or was killed); its next start rolled the update back: ${names.length > 0 ? `${names.join(", ")} resumed` : "nothing had been frozen"}${d.unloadKernel ? ", the loaded kernel unloaded" : ""}`);
      return { action: "rolled-back", manifest: readManifest(criuDir) };
    }
    case "lost": {
      const err = new NvwaError("recover.lost", `the machine restarted while update ${m.updateId} was in phase ${found}, before anything was committed: ${d.targets.join(", ") || "no target"} died with it unsaved`, {
        hint: "as at any power loss, start them again (an enabled service is started by systemd as usual); the update changed nothing else",
      });
      const lost = m.targets.map((t) => ({ ...t, phase: "lost" as const, error: errorRecord(new NvwaError("recover.lost", `${t.name} was not saved: the machine restarted during the checkpoint`, { hint: "start it again" })) }));
      writeManifest({ ...withPhase(m, "rolled-back"), targets: lost, error: errorRecord(err) });
      deps.emit({ kind: "log", level: "error", message: err.message });
      if (!m.options.debug) for (const t of m.targets) removeImagesQuietly(t.imagesDir, deps);
      await cleanupDropins(config, units, deps);
      recordRecovery(criuDir, found, "lost", err.message);
      return { action: "lost", manifest: readManifest(criuDir) };
    }
    case "restore": {
      if (d.sameBoot) deps.emit({ kind: "log", level: "warn", message: `update ${m.updateId} was committed but the jump did not happen; restoring on this kernel` });
      await killLeftovers(m, d.killLeftovers, deps);
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
      const jumped = runningRelease() === m.kernel.to && !d.sameBoot;
      if (found !== "jumping" || !jumped) {
        const why = d.sameBoot
          ? `the nvwa daemon stopped during ${found} (it crashed or was killed) before the jump; its next start restores the targets on this kernel`
          : found === "restoring"
            ? "the restore after the jump was interrupted (power cut or daemon stopped); the next start restores the targets not yet restored, none twice"
            : `the machine restarted in phase ${found} without the jump (a power cut?); the next start restores the targets on this kernel`;
        recordRecovery(criuDir, found, "restored", why);
      }
      await restoreOnThisBoot(config, { ...deps, startAlso: adoptedServices });
      if (d.unloadKernel && m.kernel.loader !== undefined) unloadKernel(m.kernel.loader as Loader, kexecExe);
      return { action: "restored", manifest: readManifest(criuDir) };
    }
  }
}

function runningRelease(): string {
  try {
    return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    return "unknown";
  }
}

function removeImagesQuietly(dir: string, deps: RecoverDeps): void {
  try {
    removeImages(dir);
  } catch (e) {
    deps.emit({ kind: "log", level: "warn", message: `cannot remove the images in ${dir}: ${toNvwaError(e).message}` });
  }
}
