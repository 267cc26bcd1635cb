/**
 * `nvwa server`: the daemon nvwa.service runs. It listens first (restore helpers of services
 * talk to it), then looks at the manifest: after a jump it restores the bare processes, tells
 * systemd it is ready (services ordered after nvwa.service may start now), restores the
 * services through their units, and removes its drop-ins. Then it serves updates.
 */
import { defineCommand } from "./define.ts";
import { loadConfig, resolveConfigDir } from "../config/load.ts";
import { ExitCode, toNvwaError } from "../errors.ts";
import { log } from "../log.ts";
import { fanOut } from "../daemon/events.ts";
import { recoverAtStart } from "../daemon/recover.ts";
import { handleRestoreRequest, restoreWindow } from "../restore/service-restore.ts";
import { startServer } from "../daemon/server.ts";
import { UpdateLog } from "../daemon/update-log.ts";
import { readManifestIfAny } from "../state/manifest-file.ts";
import { notify } from "../systemd/notify.ts";
import { SystemdManager } from "../systemd/manager.ts";
import { summarise } from "../update/summary.ts";
import { ARGS } from "./arg-defs.ts";
import { socketPath } from "./socket.ts";

export const command = defineCommand({
  meta: { name: "server" },
  args: ARGS.server,
  async run({ args }) {
    const configDir = resolveConfigDir(args["config-dir"]);
    const config = loadConfig(configDir);
    const server = await startServer({
      socketPath: socketPath(),
      admitRestore: () => restoreWindow.open,
      handlers: {
        // Loaded on the first update, not at start: after a jump the daemon's start-up is part of
        // every target's downtime, and the update machinery (preflight, kexec loading, network
        // save) is not needed to restore.
        update: async (params, emit) => (await import("../update/run.ts")).performUpdate(params, emit, { configDir }),
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
      if (pending !== null && pending.targets.some((t) => t.kind === "service")) {
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
    markReady("ready");

    await new Promise<void>((resolve) => {
      process.once("SIGTERM", () => resolve());
      process.once("SIGINT", () => resolve());
    });
    server.stop();
    return ExitCode.ok;
  },
});
