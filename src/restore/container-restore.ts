/**
 * Restoring podman containers: the "containers" phase of boot-restore.ts after the jump, and the
 * way back of a container run by a unit when an update rolls back.
 *
 * A bare container is restored through podman's API. A container run by a unit (`podman generate
 * systemd`, Type=forking following conmon's pid file) comes back through its unit, like a service:
 * nvwa's restore drop-in makes the unit's ExecStart nvwa's restore helper, which asks the daemon
 * (handleRestoreRequest) for the container; the daemon restores it through the API and answers with
 * conmon's pid, which the helper moves into the unit's cgroup and writes to the unit's PIDFile. The
 * daemon's own restore and the helper's request share one restore per container (restoreOnce).
 *
 * The phase runs after the daemon told systemd it was ready: podman's socket is a unit of
 * sockets.target, which waits for nvwa.service.
 */
import type { NvwaConfig } from "../config/types.ts";
import { finishRestored, flagsOf, restoreContainer, waitForEngine, withContainer } from "../container/keep.ts";
import { parseInspect } from "../container/inspect.ts";
import { PodmanClient } from "../container/podman-api.ts";
import type { OnEvent } from "../criu/events.ts";
import { NvwaError, toNvwaError } from "../errors.ts";
import { note } from "../note.ts";
import { errorRecord, type ContainerTarget } from "../state/manifest.ts";
import { readManifest, updateManifest } from "../state/manifest-file.ts";
import { renderRestoreDropin, RESTORE_DROPIN, writeDropin } from "../systemd/dropins.ts";
import type { SystemdManager } from "../systemd/manager.ts";
import { restoreWindow } from "./service-restore.ts";

export function pendingContainers(containers: readonly ContainerTarget[]): ContainerTarget[] {
  return containers.filter((c) => c.phase === "checkpointed" || c.phase === "restoring");
}

/**
 * In-flight restores by container name: the phase and the unit's helper join the same one. An
 * entry goes once its restore settles; a later ask finds the container running and adopts it.
 */
const restores = new Map<string, Promise<number>>();

/**
 * A container's record changed on disk. Best effort: a full disk must not keep a container from
 * running again (the rollback writes its own record last; the boot side's phase reports the rest).
 */
const record =
  (criuDir: string, name: string, emit: OnEvent = () => {}) =>
  (change: (c: ContainerTarget) => ContainerTarget): void => {
    try {
      updateManifest(criuDir, (x) => withContainer(x, name, change));
    } catch (e) {
      emit(note("warn", `container ${name}: its record in the manifest could not be updated: ${toNvwaError(e).message}`));
    }
  };

/**
 * Restores one container (once, whoever asks first) and resolves with conmon's pid. A container
 * caught "restoring" by a later daemon may run already (the previous one died after podman's
 * restore): then it is taken as restored, not restored twice.
 */
export function restoreOnce(criuDir: string, name: string, emit: OnEvent, podman: PodmanClient = new PodmanClient()): Promise<number> {
  const known = restores.get(name);
  if (known !== undefined) return known;
  const p = (async () => {
    await waitForEngine(podman);
    const m = readManifest(criuDir);
    const c = m.containers.find((x) => x.name === name);
    if (c === undefined) throw new NvwaError("restore.no-such-target", `the update did not checkpoint container ${name}`, { hint: "its nvwa drop-in is stale: run `nvwa init`" });
    // A restore still under way in podman (a daemon died asking for it) holds the container's lock.
    const now = await podman.inspect(c.id, podman.timeoutMs);
    const running = now !== null && parseInspect(now).running;
    if (running && (c.phase === "restoring" || c.phase === "restored")) {
      if (c.phase === "restoring") finishRestored(c, record(criuDir, name, emit), { debug: m.options.debug, emit });
    } else {
      await restoreContainer(c, flagsOf(m, c), podman, record(criuDir, name, emit), { debug: m.options.debug, emit });
    }
    const after = await podman.inspect(c.id, podman.timeoutMs);
    const conmon = after === null ? 0 : parseInspect(after).conmonPid;
    if (conmon <= 0) throw new NvwaError("restore.container-no-conmon", `container ${name} was restored but podman names no conmon for it`, { hint: "see podman's journal: journalctl -u podman.service" });
    return conmon;
  })();
  restores.set(name, p);
  const forget = (): void => {
    if (restores.get(name) === p) restores.delete(name);
  };
  p.then(forget, forget);
  return p;
}

/** The daemon's answer to the restore helper of a unit that runs a container. */
export async function restoreContainerOfUnit(config: NvwaConfig, unit: string, emit: OnEvent): Promise<{ unit: string; mainPid: number; pids: number[] } | null> {
  const m = readManifest(config.server.criuDir);
  const c = m.containers.find((x) => x.unit === unit);
  if (c === undefined) return null;
  const conmon = await restoreOnce(config.server.criuDir, c.name, emit);
  return { unit, mainPid: conmon, pids: [conmon] };
}

/**
 * Starts a container's unit so that it comes back through it (its restore drop-in in place), and
 * waits for the restore behind it. Throws when either failed; a container restored but not taken
 * over by systemd is said to run outside its unit.
 */
async function throughUnit(criuDir: string, c: ContainerTarget, mgr: SystemdManager, emit: OnEvent, timeoutMs: number): Promise<void> {
  const unit = c.unit ?? "";
  const restoring = restoreOnce(criuDir, c.name, emit).then(
    (pid) => ({ pid }),
    (e: unknown) => ({ error: toNvwaError(e) }),
  );
  let failure: string | undefined;
  try {
    const outcome = await mgr.startUnitAndWait(unit, "replace", timeoutMs);
    if (outcome.result !== "done") failure = `its start job ended "${outcome.result}" (see \`journalctl -u ${unit}\`)`;
  } catch (e) {
    failure = toNvwaError(e).message;
  }
  const r = await restoring;
  if ("error" in r) throw r.error;
  if (failure !== undefined) {
    const err = new NvwaError("restore.container-unit", `container ${c.name} was restored (conmon pid ${r.pid}) but ${unit} did not take it over: ${failure}; it runs outside its unit`, {
      hint: `stop it with podman stop ${c.name} before starting ${unit} again`,
    });
    record(criuDir, c.name, emit)((x) => ({ ...x, error: errorRecord(err) }));
    throw err;
  }
}

export interface ContainerRestoreDeps {
  mgr: SystemdManager | null;
  podman?: PodmanClient;
  /** One unit's start (default 5 min). */
  unitTimeoutMs?: number;
}

/** The boot-side phase: every pending container back, a failing one not stopping the others. */
export async function restorePendingContainers(criuDir: string, emit: OnEvent, deps: ContainerRestoreDeps = { mgr: null }): Promise<void> {
  const pending = pendingContainers(readManifest(criuDir).containers);
  if (pending.length === 0) return;
  const podman = deps.podman ?? new PodmanClient();
  const failed: string[] = [];
  await Promise.all(
    pending.map(async (c) => {
      try {
        if (c.unit === undefined) await restoreOnce(criuDir, c.name, emit, podman);
        else if (deps.mgr === null) {
          throw new NvwaError("restore.container-unit", `container ${c.name} runs under ${c.unit}, but systemd cannot be reached to start it`, {
            hint: `restore it with podman container restore --keep ${c.name} (it then runs outside ${c.unit} until restarted through it)`,
          });
        } else await throughUnit(criuDir, c, deps.mgr, emit, deps.unitTimeoutMs ?? 300_000);
      } catch (e) {
        const err = toNvwaError(e);
        const now = readManifest(criuDir).containers.find((x) => x.name === c.name);
        if (now !== undefined && now.phase !== "restored" && now.phase !== "restore-failed") record(criuDir, c.name, emit)((x) => ({ ...x, phase: "restore-failed", error: errorRecord(err) }));
        failed.push(`${c.name}: ${err.message}`);
      }
    }),
  );
  if (failed.length > 0) {
    throw new NvwaError("restore.containers-failed", `${failed.length} container(s) not restored: ${failed.join("; ")}`, {
      hint: "each container's restore.log is under criu_dir/containers/; `nvwa status` names them",
    });
  }
}

/**
 * The way back, before the jump, of a container run by a unit: its restore drop-in, a reload, the
 * unit started (its helper asks this daemon, through the restore window, for the container). The
 * update's no-restart undo then removes nvwa's drop-ins.
 */
export function unitRollback(config: NvwaConfig, mgr: SystemdManager, emit: OnEvent, updateId?: string): (c: ContainerTarget) => Promise<void> {
  return async (c) => {
    if (c.unit === undefined || c.unitPidFile === undefined) throw new NvwaError("internal", `container ${c.name} has no unit to come back through`);
    writeDropin(config.server.systemdEtc, c.unit, RESTORE_DROPIN, renderRestoreDropin({ unit: c.unit, type: "forking", pidFile: c.unitPidFile }, updateId === undefined ? {} : { updateId }));
    await mgr.reload();
    const was = restoreWindow.open;
    restoreWindow.open = true;
    try {
      await throughUnit(config.server.criuDir, c, mgr, emit, 300_000);
      emit(note("info", `container ${c.name}: running again under ${c.unit}`));
    } finally {
      restoreWindow.open = was;
    }
  };
}
