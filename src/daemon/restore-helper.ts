/**
 * `nvwa restore <unit>`: the hidden helper that is a service's ExecStart= after the jump (see
 * src/systemd/dropins.ts). It asks the daemon to restore the service's checkpoint, moves the
 * restored tree into the unit's cgroup, and hands its root process to systemd as the unit's
 * main process, in the way the drop-in's restore mode says:
 *   notify  → sd_notify MAINPID=<pid> + READY=1, then wait until systemd shows that MainPID
 *             (so the helper's own exit is not taken for the service's);
 *   forking → write the PID file systemd reads when the helper exits;
 *   oneshot → nothing more: RemainAfterExit=yes keeps the unit, and its cgroup, alive.
 */
import { ensureDir, writeFileAtomic } from "../state/atomic.ts";
import { dirname } from "node:path";
import * as v from "valibot";
import { ExitCode, NvwaError } from "../errors.ts";
import { log } from "../log.ts";
import { cgroupDirsOf, movePidsTo } from "../systemd/cgroup.ts";
import { PIDFILE_ENV, RESTORE_MODE_ENV, type RestoreType } from "../systemd/dropins.ts";
import { SystemdManager } from "../systemd/manager.ts";
import { notify } from "../systemd/notify.ts";
import { SERVICE_IFACE } from "../systemd/units.ts";
import { request } from "./client.ts";
import { DEFAULT_SOCKET_PATH, RestoreResult, type ProgressEvent } from "./protocol.ts";

export interface HelperOptions {
  unit: string;
  socketPath?: string;
  /** The helper's environment as set by the drop-in (default process.env). */
  env?: Record<string, string | undefined>;
  /** Move the restored pids into this process' cgroups (default true). */
  moveCgroups?: boolean;
  /** Resolves once systemd reports `pid` as the unit's MainPID (default: asks systemd over D-Bus). */
  awaitMainPid?: (unit: string, pid: number) => Promise<void>;
  onEvent?: (e: ProgressEvent) => void;
}

export function restoreModeFromEnv(env: Record<string, string | undefined>): { mode: RestoreType; pidFile?: string } {
  const mode = env[RESTORE_MODE_ENV];
  if (mode === "notify" || mode === "oneshot") return { mode };
  if (mode === "forking") {
    const pidFile = env[PIDFILE_ENV];
    if (!pidFile || !pidFile.startsWith("/")) {
      throw new NvwaError("restore.helper-env", `${PIDFILE_ENV} is ${pidFile ? `"${pidFile}", not an absolute path` : "not set"}`, {
        hint: "the helper runs from nvwa's restore drop-in; run `nvwa init` to clean up a broken one",
        exitCode: ExitCode.usage,
      });
    }
    return { mode, pidFile };
  }
  throw new NvwaError("restore.helper-env", `${RESTORE_MODE_ENV} is ${mode ? `"${mode}"` : "not set"}`, {
    hint: "`nvwa restore <unit>` is started by systemd from nvwa's drop-in, not by hand",
    exitCode: ExitCode.usage,
  });
}

const MAINPID_WAIT_MS = 10_000;

/** Polls the unit's MainPID over D-Bus until it is `pid`. */
async function awaitMainPidOverDbus(unit: string, pid: number): Promise<void> {
  let mgr: SystemdManager | undefined;
  try {
    mgr = await SystemdManager.connect();
    const path = await mgr.loadUnit(unit);
    const deadline = Date.now() + MAINPID_WAIT_MS;
    while (Date.now() < deadline) {
      if ((await mgr.getProperty(path, SERVICE_IFACE, "MainPID")) === pid) return;
      await Bun.sleep(50);
    }
    log.warn(`systemd has not taken pid ${pid} as ${unit}'s main process after ${MAINPID_WAIT_MS} ms`);
  } catch (e) {
    log.warn(`cannot confirm ${unit}'s main process with systemd: ${(e as Error).message}`);
  } finally {
    mgr?.close();
  }
}

/** Runs the helper; resolves with what the daemon restored, throws NvwaError on failure. */
export async function runRestoreHelper(opts: HelperOptions): Promise<RestoreResult> {
  const env = opts.env ?? process.env;
  const { mode, pidFile } = restoreModeFromEnv(env);
  if (mode === "notify" && !env.NOTIFY_SOCKET) {
    throw new NvwaError("restore.no-notify-socket", `${opts.unit}: NOTIFY_SOCKET is not set`, {
      hint: "the restore drop-in sets Type=notify; was the helper started outside systemd?",
      exitCode: ExitCode.usage,
    });
  }
  const raw = await request(opts.socketPath ?? DEFAULT_SOCKET_PATH, "restore", { unit: opts.unit }, (e) => {
    opts.onEvent?.(e);
    if (mode === "notify" && e.kind !== "log") notify({ status: e.message }, env.NOTIFY_SOCKET);
  });
  const parsed = v.safeParse(RestoreResult, raw);
  if (!parsed.success) {
    throw new NvwaError("daemon.bad-response", `the daemon's answer to restore ${opts.unit} has no usable mainPid/pids`, {
      hint: "the daemon and the helper are different nvwa versions? restart nvwa.service",
      exitCode: ExitCode.daemon,
    });
  }
  const result = parsed.output;
  const pids = result.pids.includes(result.mainPid) ? result.pids : [result.mainPid, ...result.pids];

  if (opts.moveCgroups ?? true) {
    const failures = movePidsTo(pids, cgroupDirsOf("self"));
    for (const f of failures) log.warn(`${opts.unit}: cannot move a restored process into the unit's cgroup: ${f}`);
  }
  // Restored stopped so that its first journal lines are filed under this unit: now they are.
  for (const pid of result.resume ?? []) {
    try {
      process.kill(pid, "SIGCONT");
    } catch (e) {
      log.warn(`${opts.unit}: cannot resume restored pid ${pid}: ${(e as Error).message}`);
    }
  }

  switch (mode) {
    case "notify":
      notify({ mainpid: result.mainPid, ready: true, status: `restored by nvwa (pid ${result.mainPid})` }, env.NOTIFY_SOCKET);
      await (opts.awaitMainPid ?? awaitMainPidOverDbus)(opts.unit, result.mainPid);
      break;
    case "forking": {
      const file = pidFile as string;
      ensureDir(dirname(file), 0o755);
      // Root-owned: systemd accepts a PID file's pid from outside the cgroup only then.
      writeFileAtomic(file, `${result.mainPid}\n`, 0o644);
      break;
    }
    case "oneshot":
      break;
  }
  return result;
}
