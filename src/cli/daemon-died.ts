/**
 * What `nvwa update` says when the daemon's connection drops before its answer: the daemon died
 * (crashed, OOM-killed, killed by hand) in the middle of the update. The user learns in one line
 * in which phase, what happens next to the targets and where the log is. The decision is pure
 * (daemonDiedError); reading the manifest and asking systemd is explainDaemonDeath's.
 */
import { join } from "node:path";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import type { Manifest } from "../state/manifest.ts";

export interface DaemonDeathFacts {
  /** The update as the manifest records it (null: none was written, nothing was touched). */
  manifest: Pick<Manifest, "updateId" | "phase"> | null;
  /** nvwa.service's Restart= setting, or null when systemd could not be asked. */
  restart: string | null;
  logDir: string;
}

const NEXT: Partial<Record<Manifest["phase"], string>> = {
  planned: "resumes the targets and unloads the kernel (rollback)",
  checkpointing: "resumes the frozen targets and unloads the kernel (rollback)",
  dumped: "resumes the frozen targets and unloads the kernel (rollback)",
  committed: "restores the checkpointed targets on this kernel",
  jumping: "restores the checkpointed targets on this kernel",
  restoring: "restores the targets not yet restored",
};

export function daemonDiedError(f: DaemonDeathFacts): NvwaError {
  const m = f.manifest;
  const log = m === null ? "journalctl -u nvwa" : `journalctl -u nvwa and ${join(f.logDir, `update-${m.updateId}.log`)}`;
  const next = m === null ? undefined : NEXT[m.phase];
  if (m === null || next === undefined) {
    return new NvwaError("daemon.died", `the nvwa daemon stopped before answering update${m === null ? "; no update had started" : ` (update ${m.updateId} is ${m.phase})`}`, {
      hint: `see ${log}; \`nvwa status\` shows the state`,
      exitCode: ExitCode.daemon,
    });
  }
  const restarts = f.restart !== null && f.restart !== "no";
  const what = restarts ? `systemd restarts it, and its start ${next}` : `nothing restarts it: run \`systemctl start nvwa\`, whose start ${next}`;
  return new NvwaError("daemon.died", `the nvwa daemon died during ${m.phase} of update ${m.updateId}; ${what}`, {
    hint: `follow it with \`nvwa status\`; the log: ${log}`,
    exitCode: ExitCode.daemon,
    details: { updateId: m.updateId, phase: m.phase, restart: f.restart },
  });
}

/** Reads the manifest and nvwa.service's Restart= (over D-Bus) to explain a dropped connection. */
export async function explainDaemonDeath(configDir: string | undefined): Promise<NvwaError> {
  const { loadConfig } = await import("../config/load.ts");
  const { readManifestIfAny } = await import("../state/manifest-file.ts");
  const config = loadConfig(configDir);
  let manifest: Manifest | null = null;
  try {
    manifest = readManifestIfAny(config.server.criuDir);
  } catch (e) {
    return new NvwaError("daemon.died", `the nvwa daemon stopped before answering update, and its manifest cannot be read: ${toNvwaError(e).message}`, {
      hint: "see journalctl -u nvwa",
      exitCode: ExitCode.daemon,
    });
  }
  return daemonDiedError({ manifest, restart: await restartSetting(), logDir: config.server.logDir });
}

async function restartSetting(): Promise<string | null> {
  const { SystemdManager } = await import("../systemd/manager.ts");
  const { SERVICE_IFACE } = await import("../systemd/units.ts");
  let mgr: InstanceType<typeof SystemdManager> | undefined;
  try {
    mgr = await SystemdManager.connect({ callTimeoutMs: 5_000 });
    return String(await mgr.getProperty(await mgr.loadUnit("nvwa.service"), SERVICE_IFACE, "Restart"));
  } catch {
    return null;
  } finally {
    mgr?.close();
  }
}
