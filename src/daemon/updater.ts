/**
 * `nvwa update` inside the daemon: preflight, then the update as a transaction (see
 * src/update/transaction.ts) whose steps are the real effects, in DESIGN.md §1's order:
 *
 *   load-kernel → manifest → no-restart drop-ins → checkpoint → pin memory → network →
 *   restore drop-ins → commit → jump
 *
 * Any failure before the jump undoes what was done, newest first: processes run again (SIGCONT,
 * or restored from their fresh images once committed), drop-ins go, systemd reloads, the
 * kernel is unloaded. Only the jump itself has no undo.
 */
import { readFileSync, rmSync } from "node:fs";
import { loadConfig } from "../config/load.ts";
import type { NvwaConfig } from "../config/types.ts";
import { ExitCode, NvwaError } from "../errors.ts";
import { checkpoint } from "../update/checkpoint.ts";
import { commitCheckpoint } from "../update/commit.ts";
import { rollbackCheckpoint } from "../update/rollback.ts";
import { gatherCheckpointFacts } from "../criu/facts.ts";
import { assertPlanOk, planCheckpoint, type CheckpointPlan } from "../criu/plan.ts";
import { probeCriu } from "../criu/probe.ts";
import { assertKexecLoaded, loadKernel, unloadKernel, type LoadedKernel } from "../kexec/index.ts";
import { netSnapshotPath, saveNetwork, writeNetSnapshot } from "../net/index.ts";
import { fastJump, orderlyJump } from "../update/jump.ts";
import { clearPinMemory, finishPinMemoryDump } from "../../ffi/pinmem.ts";
import { currentBootId } from "../state/lock.ts";
import { errorRecord, newManifest, withPhase, type Manifest } from "../state/manifest.ts";
import { manifestPath, readManifest, readManifestIfAny, updateManifest, writeManifest } from "../state/manifest-file.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";
import { acquireLock, lockPath } from "../state/lock.ts";
import { NORESTART_DROPIN, removeDropins, renderNoRestartDropin, renderRestoreDropin, RESTORE_DROPIN, writeDropin } from "../systemd/dropins.ts";
import { SystemdManager } from "../systemd/manager.ts";
import { serviceRootPid } from "../systemd/service-root.ts";
import type { ServiceProperties } from "../systemd/units.ts";
import { requirePreflight } from "../update/preflight-run.ts";
import { RolledBackError, runTransaction, type Step } from "../update/transaction.ts";
import { fanOut, fromEngine, fromTransaction } from "./events.ts";
import type { ProgressEvent, UpdateParams } from "./protocol.ts";
import { restoreOnThisBoot } from "../restore/boot-restore.ts";
import { UpdateLog } from "./update-log.ts";

export interface UpdateOutcome {
  updateId: string;
  kernel: { from: string; to: string; loader: string };
  jump: "orderly" | "fast";
  targets: string[];
  timings: { step: string; ms: number }[];
}

function runningRelease(): string {
  return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
}

/** Everything the update needs from systemd, gathered once before anything changes. */
async function serviceFacts(mgr: SystemdManager | null, units: string[]): Promise<Map<string, ServiceProperties>> {
  const out = new Map<string, ServiceProperties>();
  if (units.length === 0) return out;
  if (mgr === null) throw new NvwaError("systemd.unreachable", "services are configured but systemd cannot be reached over D-Bus", { hint: "nvwa needs systemd as PID 1 for services" });
  for (const u of units) out.set(u, await mgr.serviceProperties(u));
  return out;
}

export interface PerformOptions {
  /** Config directory (the daemon's own, or NVWA_CONFIG_DIR). */
  configDir?: string;
}

export async function performUpdate(params: UpdateParams, emitToClient: ((e: ProgressEvent) => void) | null, opts: PerformOptions = {}): Promise<UpdateOutcome> {
  const config: NvwaConfig = loadConfig(opts.configDir);
  const { criuDir, criuExe, kexecExe, systemdEtc, logDir } = config.server;
  ensurePrivateDir(criuDir);
  const lock = acquireLock(lockPath(criuDir), "update");
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
    const emitEarly = fanOut(null, emitToClient);
    emitEarly({ kind: "phase", phase: "preflight", message: "preflight checks…" });
    await requirePreflight(config, { version: params.version });

    const units = config.restore.services;
    mgr = units.length > 0 || params.fast !== true ? await SystemdManager.connect() : null;
    const services = await serviceFacts(mgr, units);
    // requirePreflight ran `criu check` and refuses on failure; only the capabilities are new here.
    const caps = await probeCriu(criuExe, { skipCheck: true });
    const servicePids = Object.fromEntries([...services].map(([u, p]) => [u, serviceRootPid(p)]));
    const plan: CheckpointPlan = planCheckpoint(config, gatherCheckpointFacts(caps, servicePids));
    assertPlanOk(plan);

    const from = runningRelease();
    const bootId = currentBootId();
    let manifest: Manifest = newManifest({
      kernel: { from, to: params.version },
      criuDir,
      options: plan.options,
      ...(bootId === undefined ? {} : { bootId }),
      criu: { exe: criuExe, version: caps.version.text },
    });
    ulog = UpdateLog.open(logDir, manifest.updateId);
    const emit = fanOut(ulog, emitToClient);
    ulog.info(`update ${manifest.updateId}: ${from} → ${params.version}`, { targets: plan.targets.map((t) => t.name).join(",") });

    let loaded: LoadedKernel | null = null;
    const reload = async (): Promise<void> => {
      if (mgr !== null) await mgr.reload();
    };
    const steps: Step[] = [
      {
        name: "load-kernel",
        run: async () => {
          loaded = loadKernel({
            version: params.version,
            kexecExe,
            quick: config.restore.enableQuickKexec,
            ...(params.cmdlineAppend ? { append: params.cmdlineAppend } : {}),
            ...(params.cmdlineRemove ? { remove: params.cmdlineRemove } : {}),
          });
          emit({ kind: "log", message: `kernel ${loaded.kernelPath} loaded with ${loaded.loader} (${loaded.format})` });
          manifest = { ...manifest, kernel: { ...manifest.kernel, loader: loaded.loader } };
        },
        undo: async () => {
          if (loaded !== null) unloadKernel(loaded.loader, kexecExe);
        },
      },
      {
        name: "manifest",
        run: async () => writeManifest(manifest),
        undo: async () => {
          // The checkpoint's own rollback marks it rolled-back; this covers failures before it.
          const m = readManifestIfAny(criuDir);
          if (m !== null && (m.phase === "planned")) writeManifest(withPhase(m, "rolled-back"));
        },
      },
      {
        name: "no-restart",
        run: async () => {
          for (const u of units) writeDropin(systemdEtc, u, NORESTART_DROPIN, renderNoRestartDropin(u, manifest.updateId));
          if (units.length > 0) await reload();
        },
        undo: async () => {
          for (const u of units) removeDropins(systemdEtc, u);
          if (units.length > 0) await reload();
        },
      },
      ...(config.restore.enablePinMemory ? [{ name: "pin-memory-clear", run: async () => clearPinMemory() }] : []),
      {
        name: "checkpoint",
        run: async () => {
          // checkpoint() rolls back every frozen tree itself when a dump fails.
          const r = await checkpoint(plan, { manifest, onEvent: (e) => emit(fromEngine(e)) });
          manifest = r.manifest;
        },
        undo: async () => {
          const m = readManifest(criuDir);
          if (m.phase === "checkpointing" || m.phase === "dumped") await rollbackCheckpoint(m, { criuExe, onEvent: (e) => emit(fromEngine(e)) });
        },
      },
      ...(config.restore.enablePinMemory ? [{ name: "pin-memory-finish", run: async () => finishPinMemoryDump() }] : []),
      ...(config.restore.restoreNet
        ? [
            {
              name: "save-network",
              run: async () => writeNetSnapshot(netSnapshotPath(criuDir), saveNetwork()),
              undo: async () => rmSync(netSnapshotPath(criuDir), { force: true }),
            },
          ]
        : []),
      {
        name: "restore-dropins",
        run: async () => {
          for (const u of units) {
            const p = services.get(u);
            if (p !== undefined) writeDropin(systemdEtc, u, RESTORE_DROPIN, renderRestoreDropin(p, { updateId: manifest.updateId }));
          }
          // No daemon-reload: this runs inside the freeze window, and the only systemd that needs
          // these drop-ins is the next boot's, which reads them from disk (a reload costs seconds
          // on a slow machine). A rollback after the commit reloads before it starts the units.
        },
        // The no-restart step's undo removes every nvwa drop-in of these units.
      },
      {
        name: "commit",
        run: async () => {
          assertKexecLoaded();
          manifest = (await commitCheckpoint(readManifest(criuDir), { onEvent: (e) => emit(fromEngine(e)) })).manifest;
        },
        // Past the commit the trees are gone; giving them back means restoring them here.
        undo: async () => {
          // The restore drop-ins were written without a reload (restore-dropins step).
          if (units.length > 0) await reload();
          await restoreOnThisBoot(config, { emit, mgr, lockHeld: true });
        },
      },
      {
        name: "jump",
        run: async () => {
          manifest = updateManifest(criuDir, (m) => withPhase(m, "jumping"));
          ulog?.info(`jumping to ${params.version}`, { mode: params.fast ? "fast" : "orderly" });
          ulog?.sync();
          if (params.fast === true) fastJump(manifest.updateId, manifestPath(criuDir));
          else if (mgr !== null) await orderlyJump(mgr);
        },
      },
    ];

    try {
      const r = await runTransaction(steps, (e) => emit(fromTransaction(e)));
      return {
        updateId: manifest.updateId,
        kernel: { from, to: params.version, loader: (loaded as LoadedKernel | null)?.loader ?? "unknown" },
        jump: params.fast === true ? "fast" : "orderly",
        targets: plan.targets.map((t) => t.name),
        timings: r.timings.map((t) => ({ step: t.step, ms: t.end - t.start })),
      };
    } catch (e) {
      if (e instanceof RolledBackError) {
        const m = readManifestIfAny(criuDir);
        // Only this update's own manifest: a step that failed before it was written (load-kernel)
        // must not put its error on the previous update's record.
        if (m !== null && m.updateId === manifest.updateId) {
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
