/**
 * Restoring services after the jump (or on this boot when the jump failed): criu restores a
 * service's tree while systemd starts its unit, whose ExecStart is then nvwa's restore helper (a
 * second nvwa, src/daemon/restore-helper.ts) that moves the tree into the unit's cgroup and hands
 * its main pid to systemd. The helper's request joins the restore under way (handleRestoreRequest)
 * instead of starting it only once the helper is up.
 */
import type { NvwaConfig } from "../config/types.ts";
import { fromEngine } from "../daemon/events.ts";
import type { ProgressEvent, RestoreResult } from "../daemon/protocol.ts";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import { errorRecord, withTarget, type Target } from "../state/manifest.ts";
import { readManifest, updateManifest } from "../state/manifest-file.ts";
import type { SystemdManager } from "../systemd/manager.ts";
import { restoreContainerOfUnit } from "./container-restore.ts";
import type { LazyRestores } from "./lazy.ts";
import { restoreTarget, type TargetRestoreResult } from "./restore.ts";

function resume(pid: number): void {
  try {
    process.kill(pid, "SIGCONT");
  } catch {
    // gone meanwhile
  }
}

/** Open while service restores must get through to the daemon during an update's rollback. */
export const restoreWindow = { open: false };

/**
 * Service restores the daemon started itself, by unit. criu restores a service's tree while
 * systemd starts the unit and the unit's restore helper (a second nvwa) starts up, instead of
 * after: the helper's request joins the restore under way (handleRestoreRequest).
 */
const serviceRestores = new Map<string, Promise<TargetRestoreResult>>();

/**
 * A service whose output goes to the journal is restored stopped: journald files each line under
 * the cgroup its writer is in when it reads it, and until the helper has moved the tree that is
 * nvwa.service's. The helper resumes it (RestoreResult.resume).
 */
export function restoredStopped(t: Target): boolean {
  return (t.journalStreams?.length ?? 0) > 0;
}

/** The pids to resume after a stopped restore: the tree, minus those that were stopped before the dump. */
export function pidsToResume(t: Target, pids: readonly number[]): number[] {
  const keep = new Set(t.stoppedBefore);
  return pids.filter((p) => !keep.has(p));
}

/** criu restore of one service's tree, left in the daemon's cgroup for its helper to move. Never rejects. */
function restoreService(config: NvwaConfig, t: Target, emit: (e: ProgressEvent) => void, lazy?: LazyRestores): Promise<TargetRestoreResult> {
  const started = Date.now();
  return restoreTarget(config.server.criuDir, t.name, {
    criuExe: config.server.criuExe,
    detached: true,
    ...(lazy === undefined ? {} : { lazy }),
    ...(restoredStopped(t) ? { extraArgs: ["--leave-stopped"] } : {}),
    // The helper moves the tree into the unit's cgroup; criu must not recreate the old ones.
    manageCgroups: "ignore",
    onEvent: (e) => emit(fromEngine(e)),
  }).catch((e: unknown) => ({ name: t.name, kind: t.kind, status: "failed" as const, rootPid: t.rootPid, pids: [], ms: Date.now() - started, error: toNvwaError(e) }));
}

/** The daemon's answer to a service's restore helper. */
export async function handleRestoreRequest(config: NvwaConfig, unit: string, emit: (e: ProgressEvent) => void): Promise<RestoreResult> {
  const m = readManifest(config.server.criuDir);
  const t = m.targets.find((x) => x.kind === "service" && (x.unit ?? x.name) === unit);
  if (t === undefined) {
    // A unit running a podman container (container-restore.ts): conmon is its main process.
    const ctr = await restoreContainerOfUnit(config, unit, (e) => emit(fromEngine(e)));
    if (ctr !== null) return ctr;
    throw new NvwaError("restore.no-such-target", `update ${m.updateId} did not checkpoint ${unit}`, {
      hint: "its nvwa drop-in is stale: run `nvwa init` and start the unit normally",
      exitCode: ExitCode.usage,
    });
  }
  const r = await (serviceRestores.get(unit) ?? restoreService(config, t, emit));
  if (r.status !== "restored") {
    throw r.error ?? new NvwaError("restore.failed", `${unit} could not be restored`, { hint: `see ${t.imagesDir}/restore.log` });
  }
  return { unit, mainPid: r.rootPid, pids: r.pids, ...(restoredStopped(t) ? { resume: pidsToResume(t, r.pids) } : {}) };
}

/**
 * Every service target at once, each by starting its unit while its tree is restored: each
 * restore waits mostly on criu, and criu's first run after boot probes the kernel for seconds;
 * one after another, services would wait on each other. A unit systemd could not start is
 * recorded restore-failed with the reason (a restored tree left outside its unit is named with
 * the pid to stop).
 */
export async function restoreServicesThroughUnits(
  config: NvwaConfig,
  targets: readonly Target[],
  mgr: SystemdManager | null,
  emit: (e: ProgressEvent) => void,
  timeoutMs = 300_000,
  lazy?: LazyRestores,
): Promise<void> {
  const { criuDir } = config.server;
  await Promise.all(
    targets.map(async (t) => {
      const unit = t.unit ?? t.name;
      let failure: string | undefined;
      if (mgr === null) {
        // Without systemd the tree would run unsupervised: not restored at all is the honest state.
        failure = "systemd cannot be reached to start the unit";
      } else {
        emit({ kind: "target", target: t.name, message: `${unit}: restoring its processes and starting the unit` });
        const restoring = restoreService(config, t, emit, lazy);
        serviceRestores.set(unit, restoring);
        try {
          const outcome = await mgr.startUnitAndWait(unit, "replace", timeoutMs);
          if (outcome.result !== "done") failure = `its start job ended "${outcome.result}" (see \`journalctl -u ${unit}\` and ${t.imagesDir}/restore.log)`;
        } catch (e) {
          failure = toNvwaError(e).message;
        } finally {
          const r = await restoring;
          serviceRestores.delete(unit);
          // A tree lost meanwhile (its lazy-pages daemon ended early, lazy.ts) was killed: nothing runs outside the unit.
          const lostMeanwhile = readManifest(criuDir).targets.find((x) => x.name === t.name)?.phase === "lost";
          if (failure !== undefined && r.status === "restored" && !lostMeanwhile) {
            // Left stopped for a helper that never came: running outside the unit beats stopped for ever.
            if (restoredStopped(t)) for (const pid of pidsToResume(t, r.pids)) resume(pid);
            emit({
              kind: "target",
              target: t.name,
              level: "error",
              message: `${unit}: its processes were restored (pid ${r.rootPid}) but systemd did not take them over: ${failure}; they run outside the unit, stop them with kill ${r.rootPid} before starting the unit again`,
            });
          }
        }
      }
      const now = readManifest(criuDir).targets.find((x) => x.name === t.name);
      if (failure !== undefined && now !== undefined && now.phase !== "restored" && now.phase !== "restore-failed" && now.phase !== "skipped" && now.phase !== "lost") {
        const err = new NvwaError("restore.service-failed", `${unit} was not restored: ${failure}`, { hint: `see ${t.imagesDir}/restore.log` });
        updateManifest(criuDir, (m) => withTarget(m, t.name, (x) => ({ ...x, phase: "restore-failed", error: errorRecord(err) })));
        emit({ kind: "target", target: t.name, level: "error", message: err.message });
      }
    }),
  );
}
