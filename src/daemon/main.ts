/**
 * The daemon (`nvwa server`, what nvwa.service runs). It listens first (the restore helpers of
 * services talk to it), then finishes whatever update the manifest says is unfinished
 * (recover.ts: after a jump, the boot-side restore; after a crash or a power cut, a rollback or a
 * restore), telling systemd it is ready as soon as the bare processes are back (services ordered
 * after nvwa.service may start then). Then it serves updates until SIGTERM.
 */
import { loadConfig } from "../config/load.ts";
import { ExitCode, toNvwaError } from "../errors.ts";
import { log } from "../log.ts";
import { handleRestoreRequest, restoreWindow } from "../restore/service-restore.ts";
import { readManifestIfAny } from "../state/manifest-file.ts";
import { SystemdManager } from "../systemd/manager.ts";
import { notify } from "../systemd/notify.ts";
import { isCommitted, requestStop } from "../update/stop-request.ts";
import { summarise } from "../update/summary.ts";
import { fanOut } from "./events.ts";
import { recoverAtStart } from "./recover.ts";
import { startServer } from "./socket-server.ts";
import { UpdateLog } from "./update-log.ts";

export async function runDaemon(configDir: string, socketPath: string): Promise<ExitCode> {
  // Where Bun's own start (exec, the runtime, the modules up to here) ends and nvwa's begins: after
  // a jump both are downtime, and the boot-side restore records them apart (issue #14's figures).
  const daemonStartedAt = Date.now();
  const config = loadConfig(configDir);
  // Taken from the start: a stop during the start-up recovery waits for it to end (TimeoutStopSec
  // bounds it). Exiting mid-restore would leave lazily restored targets without the supervisor
  // that tells a complete memory from a damaged one (src/restore/lazy.ts), and criu half done.
  // Only the first: a second SIGTERM or SIGINT ends the daemon at once, the operator's way out.
  const stopSignal = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  /** The update being served, settled (never rejected) when it ends: a stop waits for its rollback. */
  let inFlight: Promise<void> = Promise.resolve();
  const server = await startServer({
    socketPath,
    admitRestore: () => restoreWindow.open,
    handlers: {
      // Loaded on the first update, not at start: after a jump the daemon's start-up is part of
      // every target's downtime, and the update machinery (preflight, kexec loading, network
      // save) is not needed to restore.
      update: (params, emit) => {
        const run = (async () => (await import("../update/run.ts")).performUpdate(params, emit, { configDir }))();
        inFlight = run.then(
          () => undefined,
          () => undefined,
        );
        return run;
      },
      restore: (params, emit) => handleRestoreRequest(loadConfig(configDir), params.unit, emit),
      status: () => {
        const m = readManifestIfAny(loadConfig(configDir).server.criuDir);
        return m === null ? { phase: "none" } : summarise(m);
      },
    },
  });
  log.info(`listening on ${server.socketPath}`);

  let ready = false;
  const markReady = (status: string): void => {
    if (ready) return;
    ready = true;
    notify({ ready: true, status });
  };

  let pending = null;
  try {
    pending = readManifestIfAny(config.server.criuDir);
  } catch {
    // recoverAtStart reports a damaged manifest itself
  }
  let ulog: UpdateLog | null = null;
  let mgr: SystemdManager | null = null;
  try {
    if (pending !== null && !["restored", "rolled-back", "restore-failed"].includes(pending.phase)) {
      ulog = UpdateLog.open(config.server.logDir, pending.updateId);
      ulog.info(`nvwa daemon started on ${process.env.NVWA_BUILD_VERSION ?? "dev"}; update ${pending.updateId} is in phase ${pending.phase}`);
    }
    if (pending !== null && (pending.targets.some((t) => t.kind === "service") || pending.containers.some((c) => c.unit !== undefined))) {
      try {
        mgr = await SystemdManager.connect();
      } catch (e) {
        log.error(`systemd is unreachable; services cannot be restored: ${toNvwaError(e).message}`);
      }
    }
    const r = await recoverAtStart(config, {
      emit: fanOut(ulog, null),
      mgr,
      onProcessesRestored: () => markReady("processes restored; restoring services"),
      daemonStartedAt,
    });
    if (r.action !== "none") log.info(`start-up recovery: ${r.action}${r.manifest ? ` (update ${r.manifest.updateId}: ${r.manifest.phase})` : ""}`);
  } catch (e) {
    // The daemon stays up to serve status and init: an operator needs them most now.
    log.error(`start-up recovery failed: ${toNvwaError(e).message}`);
    ulog?.error(`start-up recovery failed: ${toNvwaError(e).message}`);
  } finally {
    ulog?.close();
    mgr?.close();
  }
  // After a restore READY=1 went out with "restoring services" as the status: only the status changes.
  if (ready) notify({ status: "ready" });
  else markReady("ready");

  const signal = await stopSignal;
  if (requestStop(signal)) {
    // Exiting now would leave the targets frozen and the new kernel loaded (stop-request.ts).
    log.warn(`${signal} during an update before its commit: rolling the update back before exiting`);
    // Until the rollback is over, or the update passed its commit after all (then the stop is the jump's).
    let settled = false;
    const committed = (async () => {
      while (!settled && !isCommitted()) await Bun.sleep(100);
    })();
    await Promise.race([inFlight, committed]);
    settled = true;
  }
  server.stop();
  return ExitCode.ok;
}
