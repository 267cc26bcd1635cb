/**
 * The update's steps, in order, each with its undo (transaction.ts runs them, and when one fails
 * undoes the ones before it, newest first):
 *
 *   load-kernel        kexec_file_load (or kexec_load) of the new kernel    undo: unload it
 *   manifest           <criu_dir>/manifest.json in phase planned             undo: phase rolled-back
 *   no-restart         Restart=no drop-ins, daemon-reload                   undo: drop-ins removed
 *   pin-memory-clear   openEuler pin memory only
 *   checkpoint         criu dump --leave-stopped of each target (checkpoint.ts)   undo: rollback.ts
 *   pin-memory-finish  openEuler pin memory only: after the last dump, before the jump
 *   save-network       restore_net only                                     undo: snapshot deleted
 *   restore-dropins    each service's ExecStart becomes nvwa's restore helper
 *   commit             images fsynced, trees killed (commit.ts)             undo: restored here
 *   jump               fast or orderly (jump.ts)                            no undo
 *
 * Only the jump has no undo: a failure anywhere before it leaves every target running here.
 */
import { rmSync } from "node:fs";
import { clearPinMemory, finishPinMemoryDump } from "../../ffi/pinmem.ts";
import type { NvwaConfig } from "../config/types.ts";
import type { ContainerPlan } from "../container/keep.ts";
import { unitRollback } from "../restore/container-restore.ts";
import type { CheckpointPlan } from "../criu/plan.ts";
import { fromEngine } from "../daemon/events.ts";
import type { ProgressEvent, UpdateParams } from "../daemon/protocol.ts";
import type { UpdateLog } from "../daemon/update-log.ts";
import type { Note } from "../note.ts";
import { assertKexecLoaded, loadKernel, unloadKernel, type LoadedKernel } from "../kexec/index.ts";
import { netSnapshotPath, saveNetwork, writeNetSnapshot } from "../net/index.ts";
import { restoreOnThisBoot } from "../restore/boot-restore.ts";
import { withPhase, type ContainerTarget, type Manifest } from "../state/manifest.ts";
import { manifestPath, readManifest, readManifestIfAny, updateManifest, writeManifest } from "../state/manifest-file.ts";
import { NORESTART_DROPIN, removeDropins, renderNoRestartDropin, renderRestoreDropin, RESTORE_DROPIN, writeDropin } from "../systemd/dropins.ts";
import type { SystemdManager } from "../systemd/manager.ts";
import type { ServiceProperties } from "../systemd/units.ts";
import { checkpoint } from "./checkpoint.ts";
import { commitCheckpoint } from "./commit.ts";
import { fastJump, orderlyJump } from "./jump.ts";
import { rollbackCheckpoint } from "./rollback.ts";
import type { Step } from "./transaction.ts";

export interface UpdateContext {
  config: NvwaConfig;
  params: UpdateParams;
  plan: CheckpointPlan;
  containers: ContainerPlan[];
  /** What systemd said of each configured service, gathered before anything changed. */
  services: Map<string, ServiceProperties>;
  mgr: SystemdManager | null;
  emit: (e: ProgressEvent) => void;
  ulog: UpdateLog;
}

/** What the steps change as they run: the manifest as last written, and the loaded kernel. */
export interface UpdateState {
  manifest: Manifest;
  loaded: LoadedKernel | null;
}

export function updateSteps(ctx: UpdateContext, s: UpdateState): Step[] {
  const { config, params, plan, containers, services, mgr, emit, ulog } = ctx;
  const { criuDir, criuExe, kexecExe, systemdEtc } = config.server;
  const units = config.restore.services;
  const onNote = (n: Note): void => emit(fromEngine(n));
  const reload = async (): Promise<void> => {
    if (mgr !== null) await mgr.reload();
  };
  // Units running a container (`podman generate systemd`) get drop-ins like services.
  const ctrUnits = containers.flatMap((c) => (c.unit === undefined ? [] : [{ unit: c.unit, name: c.name, pidFile: c.unitPidFile }]));
  const dropinUnits = [...units, ...ctrUnits.map((c) => c.unit)];
  const viaUnit = (): ((c: ContainerTarget) => Promise<void>) | undefined => (mgr === null ? undefined : unitRollback(config, mgr, (e) => emit(fromEngine(e)), s.manifest.updateId));
  return [
    {
      name: "load-kernel",
      run: async () => {
        s.loaded = loadKernel({
          version: params.version,
          kexecExe,
          kexecLoader: config.server.kexecLoader,
          quick: config.restore.enableQuickKexec,
          ...(params.cmdlineAppend ? { append: params.cmdlineAppend } : {}),
          ...(params.cmdlineRemove ? { remove: params.cmdlineRemove } : {}),
          onNote,
        });
        emit({ kind: "log", message: `kernel ${s.loaded.kernelPath} loaded with ${s.loaded.loader} (${s.loaded.format})` });
        s.manifest = { ...s.manifest, kernel: { ...s.manifest.kernel, loader: s.loaded.loader } };
      },
      undo: async () => {
        if (s.loaded !== null) unloadKernel(s.loaded.loader, kexecExe, onNote);
      },
    },
    {
      name: "manifest",
      run: async () => writeManifest(s.manifest),
      undo: async () => {
        // The checkpoint's own rollback marks it rolled-back; this covers failures before it.
        const m = readManifestIfAny(criuDir);
        if (m !== null && (m.phase === "planned")) writeManifest(withPhase(m, "rolled-back"));
      },
    },
    {
      name: "no-restart",
      run: async () => {
        for (const u of units) writeDropin(systemdEtc, u, NORESTART_DROPIN, renderNoRestartDropin(u, s.manifest.updateId));
        for (const c of ctrUnits) writeDropin(systemdEtc, c.unit, NORESTART_DROPIN, renderNoRestartDropin(c.unit, s.manifest.updateId, { container: c.name }));
        if (dropinUnits.length > 0) await reload();
      },
      undo: async () => {
        for (const u of dropinUnits) removeDropins(systemdEtc, u);
        if (dropinUnits.length > 0) await reload();
      },
    },
    ...(config.restore.enablePinMemory ? [{ name: "pin-memory-clear", run: async () => clearPinMemory() }] : []),
    {
      name: "checkpoint",
      run: async () => {
        // checkpoint() rolls back every frozen tree itself when a dump fails.
        const via = viaUnit();
        const r = await checkpoint(plan, { manifest: s.manifest, containers, onEvent: (e) => emit(fromEngine(e)), ...(via === undefined ? {} : { containerViaUnit: via }) });
        s.manifest = r.manifest;
      },
      undo: async () => {
        const m = readManifest(criuDir);
        const via = viaUnit();
        if (m.phase === "checkpointing" || m.phase === "dumped") await rollbackCheckpoint(m, { criuExe, onEvent: (e) => emit(fromEngine(e)), ...(via === undefined ? {} : { containerViaUnit: via }) });
      },
    },
    ...(config.restore.enablePinMemory ? [{ name: "pin-memory-finish", run: async () => finishPinMemoryDump() }] : []),
    ...(config.restore.restoreNet
      ? [
          {
            name: "save-network",
            run: async () => writeNetSnapshot(netSnapshotPath(criuDir), saveNetwork(onNote)),
            undo: async () => rmSync(netSnapshotPath(criuDir), { force: true }),
          },
        ]
      : []),
    {
      name: "restore-dropins",
      run: async () => {
        for (const u of units) {
          const p = services.get(u);
          if (p !== undefined) writeDropin(systemdEtc, u, RESTORE_DROPIN, renderRestoreDropin(p, { updateId: s.manifest.updateId }));
        }
        // A container's unit follows conmon through its pid file; the helper hands it the restored conmon.
        for (const c of ctrUnits) {
          if (c.pidFile !== undefined) writeDropin(systemdEtc, c.unit, RESTORE_DROPIN, renderRestoreDropin({ unit: c.unit, type: "forking", pidFile: c.pidFile }, { updateId: s.manifest.updateId }));
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
        s.manifest = (await commitCheckpoint(readManifest(criuDir), { onEvent: (e) => emit(fromEngine(e)) })).manifest;
      },
      // Past the commit the trees are gone; giving them back means restoring them here.
      undo: async () => {
        // The restore drop-ins were written without a reload (restore-dropins step).
        if (dropinUnits.length > 0) await reload();
        await restoreOnThisBoot(config, { emit, mgr, lockHeld: true });
      },
    },
    {
      name: "jump",
      run: async () => {
        s.manifest = updateManifest(criuDir, (m) => withPhase(m, "jumping"));
        ulog.info(`jumping to ${params.version}`, { mode: params.fast ? "fast" : "orderly" });
        ulog.sync();
        if (params.fast === true) fastJump(s.manifest.updateId, manifestPath(criuDir));
        else if (mgr !== null) await orderlyJump(mgr);
      },
    },
  ];
}
