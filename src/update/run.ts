/**
 * `nvwa update` inside the daemon: the update lock, preflight (nothing changed yet), the plan
 * from what preflight and systemd said, the manifest and update log, then the steps of steps.ts
 * as one transaction (transaction.ts): a failure before the jump undoes every earlier step,
 * newest first, and the error names the step.
 */
import { release } from "node:os";
import { loadConfig } from "../config/load.ts";
import type { NvwaConfig } from "../config/types.ts";
import { unitOf } from "../container/facts.ts";
import type { ContainerPlan } from "../container/keep.ts";
import { gatherCheckpointFacts } from "../criu/facts.ts";
import { assertPlanOk, planCheckpoint, type CheckpointPlan } from "../criu/plan.ts";
import { probeCriu } from "../criu/probe.ts";
import { fanOut, fromEngine, fromTransaction } from "../daemon/events.ts";
import type { ProgressEvent, UpdateParams } from "../daemon/protocol.ts";
import { journalOnly, UpdateLog } from "../daemon/update-log.ts";
import type { Note } from "../note.ts";
import { ExitCode, NvwaError } from "../errors.ts";
import { acquireLock, currentBootId, lockPath } from "../state/lock.ts";
import { errorRecord, newManifest, type Manifest } from "../state/manifest.ts";
import { readManifestIfAny, writeManifest } from "../state/manifest-file.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";
import { SystemdManager } from "../systemd/manager.ts";
import { serviceRootPid } from "../systemd/service-root.ts";
import type { ServiceProperties } from "../systemd/units.ts";
import { requirePreflight } from "./preflight-run.ts";
import { updateSteps, type UpdateState } from "./steps.ts";
import { interruptBefore, setPreCommit } from "./stop-request.ts";
import { RolledBackError, runTransaction } from "./transaction.ts";

export interface UpdateOutcome {
  updateId: string;
  kernel: { from: string; to: string; loader: string };
  jump: "orderly" | "fast";
  targets: string[];
  timings: { step: string; ms: number }[];
}

/**
 * Everything the update needs from systemd about the services, gathered before anything changes:
 * what preflight read moments ago, asked again only for a unit preflight could not read.
 */
async function serviceFacts(mgr: SystemdManager | null, units: string[], read: readonly ServiceProperties[] = []): Promise<Map<string, ServiceProperties>> {
  const out = new Map<string, ServiceProperties>();
  for (const u of units) {
    const known = read.find((p) => p.unit === u);
    if (known !== undefined) {
      out.set(u, known);
      continue;
    }
    if (mgr === null) throw new NvwaError("systemd.unreachable", "services are configured but systemd cannot be reached over D-Bus", { hint: "nvwa needs systemd as PID 1 for services" });
    out.set(u, await mgr.serviceProperties(u));
  }
  return out;
}

export interface PerformOptions {
  /** Config directory (the daemon's own, or NVWA_CONFIG_DIR). */
  configDir?: string;
}

export async function performUpdate(params: UpdateParams, emitToClient: ((e: ProgressEvent) => void) | null, opts: PerformOptions = {}): Promise<UpdateOutcome> {
  const config: NvwaConfig = loadConfig(opts.configDir);
  const { criuDir, criuExe, logDir } = config.server;
  // Until the update has its log file, its lines go to the client and the journal.
  const emitEarly = fanOut(journalOnly, emitToClient);
  const onNote = (n: Note): void => emitEarly(fromEngine(n));
  ensurePrivateDir(criuDir, onNote);
  const lock = acquireLock(lockPath(criuDir), "update", { onNote });
  let ulog: UpdateLog | null = null;
  let mgr: SystemdManager | null = null;
  try {
    const previous = readManifestIfAny(criuDir);
    if (previous !== null && !["restored", "rolled-back"].includes(previous.phase)) {
      throw new NvwaError("update.unfinished", `update ${previous.updateId} is still in phase "${previous.phase}"`, {
        hint: "see `nvwa status`; if it cannot finish, `nvwa init` clears it",
        exitCode: ExitCode.failed,
      });
    }
    emitEarly({ kind: "phase", phase: "preflight", message: "preflight checks…" });
    const { facts } = await requirePreflight(config, { version: params.version });

    const units = config.restore.services;
    const containerUnits = (facts.containers?.containers ?? []).flatMap((c) => unitOf(c) ?? []);
    mgr = units.length > 0 || containerUnits.length > 0 || params.fast !== true ? await SystemdManager.connect() : null;
    const services = await serviceFacts(mgr, units, facts.services);
    // requirePreflight ran `criu check` and refuses on failure; only the capabilities are new here.
    const caps = await probeCriu(criuExe, { skipCheck: true });
    const servicePids = Object.fromEntries([...services].map(([u, p]) => [u, serviceRootPid(p)]));
    const plan: CheckpointPlan = planCheckpoint(config, gatherCheckpointFacts(caps, servicePids, false, services.values()));
    assertPlanOk(plan);

    // Preflight refused every container it could not keep; these are running, as probed.
    const containers: ContainerPlan[] = (facts.containers?.containers ?? []).flatMap((c) =>
      c.info === null
        ? []
        : [
            {
              name: c.name,
              id: c.info.id,
              staticDir: c.info.staticDir,
              rootPid: c.info.pid,
              pids: c.pids,
              networkMode: c.info.networkMode,
              ...(unitOf(c) === undefined ? {} : { unit: unitOf(c) }),
              ...(c.unitProps?.pidFile ? { unitPidFile: c.unitProps.pidFile } : {}),
            },
          ],
    );
    const from = release();
    const bootId = currentBootId();
    const manifest: Manifest = newManifest({
      kernel: { from, to: params.version },
      criuDir,
      options: plan.options,
      ...(bootId === undefined ? {} : { bootId }),
      criu: { exe: criuExe, version: caps.version.text },
    });
    ulog = UpdateLog.open(logDir, manifest.updateId);
    const emit = fanOut(ulog, emitToClient);
    ulog.info(`update ${manifest.updateId}: ${from} → ${params.version}`, { targets: [...plan.targets.map((t) => t.name), ...containers.map((c) => `container ${c.name}`)].join(",") });

    const state: UpdateState = { manifest, loaded: null };
    const steps = updateSteps({ config, params, plan, containers, services, mgr, emit, ulog }, state);

    try {
      setPreCommit(true);
      const r = await runTransaction(steps, (e) => emit(fromTransaction(e)), interruptBefore).finally(() => setPreCommit(false));
      return {
        updateId: state.manifest.updateId,
        kernel: { from, to: params.version, loader: state.loaded?.loader ?? "unknown" },
        jump: params.fast === true ? "fast" : "orderly",
        targets: [...plan.targets.map((t) => t.name), ...containers.map((c) => c.name)],
        timings: r.timings.map((t) => ({ step: t.step, ms: t.end - t.start })),
      };
    } catch (e) {
      if (e instanceof RolledBackError) {
        const m = readManifestIfAny(criuDir);
        // Only this update's own manifest: a step that failed before it was written (load-kernel)
        // must not put its error on the previous update's record.
        if (m !== null && m.updateId === state.manifest.updateId) {
          try {
            writeManifest({ ...m, error: errorRecord(e) });
          } catch {
            // the error still reaches the client and the log
          }
        }
        ulog?.error(e.message, { code: e.code });
      }
      throw e;
    }
  } finally {
    ulog?.close();
    mgr?.close();
    lock.release();
  }
}
