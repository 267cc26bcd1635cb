/**
 * The boot-side restore: every pending target of a committed update back, after the jump (or on
 * this boot when the jump did not happen), as phases run in order, each logged with its time, a
 * failing one reported and the next still run (phases.ts):
 *
 *   tcp-lock    hold back the packets of the dumped TCP connections (net/tcp-lock.ts), before the
 *               addresses come back: a peer's packet for a socket not restored yet would get a reset
 *   network     restore_net's saved links, addresses, routes and rules
 *   processes   bare processes (ns_last_pid moved past every saved pid first); then the daemon
 *               tells systemd it is ready
 *   services    each service through its unit (service-restore.ts)
 *   containers  podman containers, through podman's API (container-restore.ts)
 *   drop-ins    nvwa's drop-ins removed, systemd reloaded
 *   tcp-unlock  restored connections flow again
 *   memory      lazily restored targets (enable_lazy_restore) have all of their memory back, or are
 *               reported lost (lazy.ts); nothing to wait for otherwise
 */
import { existsSync } from "node:fs";
import type { NvwaConfig } from "../config/types.ts";
import { fromEngine } from "../daemon/events.ts";
import type { Note } from "../note.ts";
import type { ProgressEvent } from "../daemon/protocol.ts";
import { NvwaError, toNvwaError } from "../errors.ts";
import { faultPoint } from "../fault-point.ts";
import { netSnapshotPath, restoreNetwork } from "../net/index.ts";
import { installTcpLock, removeTcpLock } from "../net/tcp-lock.ts";
import { acquireLock, lockPath, type HeldLock } from "../state/lock.ts";
import { stampTimings, withPhase, type Manifest, type Target } from "../state/manifest.ts";
import { readManifest, updateManifest } from "../state/manifest-file.ts";
import { removeDropins } from "../systemd/dropins.ts";
import type { SystemdManager } from "../systemd/manager.ts";
import { runPhases, type PhaseEvent } from "./phases.ts";
import { memoryComing, pendingTargets } from "./plan.ts";
import { LazyRestores } from "./lazy.ts";
import { pendingContainers, restorePendingContainers } from "./container-restore.ts";
import { restoreAll } from "./restore.ts";
import { restoreServicesThroughUnits, restoreWindow } from "./service-restore.ts";

export interface BootRestoreDeps {
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
  /** When the daemon's own code began (epoch ms): its exec is performance.timeOrigin. */
  daemonStartedAt?: number;
}

/** The units nvwa gave drop-ins: its services, and the units running its containers. */
export function serviceUnits(m: Manifest): string[] {
  return [...m.targets.filter((t) => t.kind === "service").map((t) => t.unit ?? t.name), ...m.containers.flatMap((c) => (c.unit === undefined ? [] : [c.unit]))];
}

export async function cleanupDropins(config: NvwaConfig, units: string[], deps: BootRestoreDeps): Promise<void> {
  let removed = 0;
  for (const u of units) removed += removeDropins(config.server.systemdEtc, u).length;
  if (removed > 0 && deps.mgr !== null) await deps.mgr.reload();
  if (removed > 0) deps.emit({ kind: "log", message: `removed ${removed} nvwa drop-in(s) and reloaded systemd` });
}

function stamp(criuDir: string, key: string, edge: "start" | "end"): void {
  updateManifest(criuDir, (m) => ({ ...m, timings: stampTimings(m.timings, key, edge) }));
}

function phaseEvent(e: PhaseEvent): ProgressEvent {
  const phase = `boot ${e.name}`;
  switch (e.type) {
    case "phase-start":
      return { kind: "phase", phase, message: `${phase}…` };
    case "phase-done":
      return { kind: "phase", phase, ms: e.ms, message: `${phase} done` };
    case "phase-failed":
      return { kind: "phase", phase, ms: e.ms, level: "error", message: `${phase} failed: ${e.error.message}` };
  }
}

export async function restoreOnThisBoot(config: NvwaConfig, deps: BootRestoreDeps): Promise<Manifest> {
  const { criuDir, criuExe } = config.server;
  const onNote = (n: Note): void => deps.emit(fromEngine(n));
  const lock: HeldLock | null = deps.lockHeld ? null : acquireLock(lockPath(criuDir), "restore", { onNote });
  restoreWindow.open = true;
  try {
    const first = readManifest(criuDir);
    stamp(criuDir, "boot-restore", "start");
    if (deps.daemonStartedAt !== undefined) recordDaemonStart(criuDir, deps.daemonStartedAt, deps);
    const lazy = new LazyRestores({ criuDir, criuExe, options: first.options, onEvent: (e) => deps.emit(fromEngine(e)) });
    let tcpLocked = false;
    await runPhases(
      [
        { name: "tcp-lock", run: () => void (tcpLocked = lockPendingConnections(first, deps)) },
        {
          name: "network",
          run: () => {
            const netFile = netSnapshotPath(criuDir);
            if (!first.options.restoreNet || !existsSync(netFile)) return;
            const out = restoreNetwork(netFile, onNote);
            deps.emit({ kind: "log", message: `network restored: ${JSON.stringify(out).slice(0, 400)}` });
          },
        },
        {
          name: "processes",
          run: async () => {
            await restoreAll(criuDir, { criuExe, select: { kinds: ["pid"] }, onEvent: (e) => deps.emit(fromEngine(e)), lazy });
            deps.onProcessesRestored?.();
            await faultPoint("after-pids-restored");
          },
        },
        {
          name: "services",
          run: () => restoreServicesThroughUnits(config, [...pendingTargets(readManifest(criuDir), { kinds: ["service"] }), ...(deps.startAlso ?? [])], deps.mgr, deps.emit, deps.serviceTimeoutMs, lazy),
        },
        { name: "containers", run: () => restorePendingContainers(criuDir, (e) => deps.emit(fromEngine(e)), { mgr: deps.mgr, ...(deps.serviceTimeoutMs === undefined ? {} : { unitTimeoutMs: deps.serviceTimeoutMs }) }) },
        { name: "drop-ins", run: () => cleanupDropins(config, serviceUnits(first), deps) },
        { name: "tcp-unlock", run: () => (tcpLocked ? unlockConnections(deps) : undefined) },
        // Lazily restored targets run already; the update is restored once all of their memory is back.
        { name: "memory", run: () => awaitLazyMemory(lazy, deps) },
      ],
      (e) => deps.emit(phaseEvent(e)),
    );
    updateManifest(criuDir, (m) => {
      // A target whose lazy restore's end could not be recorded stays "restoring": its next start decides.
      if (m.targets.some(memoryComing)) return m;
      const phase = m.targets.every((t) => t.phase === "restored") && m.containers.every((c) => c.phase === "restored") ? "restored" : "restore-failed";
      return m.phase === phase ? m : withPhase(m, phase);
    });
    stamp(criuDir, "boot-restore", "end");
    return readManifest(criuDir);
  } finally {
    restoreWindow.open = false;
    lock?.release();
  }
}

/**
 * The daemon's start, as part of the downtime after a jump: "daemon-exec" from the exec of `nvwa
 * server` to its own first line (Bun's runtime and the modules it loads), "daemon-start" from there
 * to this restore.
 */
function recordDaemonStart(criuDir: string, startedAt: number, deps: BootRestoreDeps): void {
  const exec = Math.round(performance.timeOrigin);
  const now = Date.now();
  updateManifest(criuDir, (m) => ({ ...m, timings: { ...m.timings, "daemon-exec": { start: exec, end: startedAt }, "daemon-start": { start: startedAt, end: now } } }));
  deps.emit({ kind: "log", message: `nvwa daemon: ${startedAt - exec} ms from its exec to nvwa's code (Bun and the modules), ${now - startedAt} ms more to this restore` });
}

/** Installs the TCP lock for the connections of targets still to be restored; true if there were any. */
function lockPendingConnections(m: Manifest, deps: BootRestoreDeps): boolean {
  const tuples = [...pendingTargets(m).flatMap((t) => t.tcpTuples ?? []), ...pendingContainers(m.containers).flatMap((c) => c.tcpTuples ?? [])];
  if (tuples.length === 0) return false;
  try {
    installTcpLock(tuples);
  } catch (e) {
    // Reported by the phase runner; the restore goes on: a connection at risk of a reset beats a
    // process not restored.
    throw new NvwaError("restore.tcp-lock", `TCP connections not held back (a peer that sends before its target is restored gets a reset): ${toNvwaError(e).message}`);
  }
  deps.emit({ kind: "log", message: `holding back the packets of ${tuples.length} TCP connection(s) until their targets are restored` });
  return true;
}

async function awaitLazyMemory(lazy: LazyRestores, deps: BootRestoreDeps): Promise<void> {
  const coming = lazy.pending();
  if (coming.length === 0) return;
  deps.emit({ kind: "log", message: `waiting for the memory of ${coming.join(", ")} to come back (lazy restore; they run meanwhile)` });
  await lazy.settled();
}

function unlockConnections(deps: BootRestoreDeps): void {
  try {
    removeTcpLock();
  } catch (e) {
    throw new NvwaError("restore.tcp-unlock", `the TCP lock could not be removed (restored connections stay silent): ${toNvwaError(e).message}`, { hint: "nvwa init removes it" });
  }
  deps.emit({ kind: "log", message: "TCP lock removed: restored connections flow again" });
}
