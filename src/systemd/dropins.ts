/**
 * Drop-ins that hand a service over to nvwa across the jump.
 *
 * Two files under <systemd_etc>/<unit>.d/, both matched by nvwa-*.conf:
 * - nvwa-norestart.conf: Restart=no, written and made effective (daemon-reload) before the dump,
 *   so systemd does not restart what criu freezes and the commit kills;
 * - nvwa-restore.conf: after the jump the unit's ExecStart is `nvwa restore <unit>`, a helper
 *   that asks the daemon to restore the checkpointed tree and hands the restored main process
 *   to systemd. It is ordered after nvwa.service.
 * Once the service runs again both are removed and systemd reloaded.
 *
 * How a restored process becomes the unit's MainPID depends on the restore type (restoreModeFor):
 * - notify, notify-reload → Type=notify, NotifyAccess=all: the helper sends MAINPID=<pid> and
 *   READY=1, then waits until systemd shows that MainPID before exiting. The program keeps
 *   notify semantics (it can go on sending WATCHDOG=1/STATUS= as NotifyAccess=all allows it).
 * - simple, exec, idle, forking → Type=forking with a PIDFile written by the helper (root-owned,
 *   so systemd accepts it): systemd reads it when the helper exits and adopts the pid. This is
 *   the arrangement the guest proves across the jump (test/guest/services.test.ts). A forking
 *   unit keeps its own PIDFile path, recreated because /run did not survive the jump.
 * - oneshot → Type=oneshot with RemainAfterExit=yes: a oneshot has no MainPID; without
 *   RemainAfterExit the unit would end when the helper exits and systemd would kill the
 *   restored processes in its cgroup.
 * In every mode the helper also moves the restored pids into its own cgroup (the unit's), since
 * criu runs from the daemon and its children start in nvwa.service's cgroup.
 * The helper runs as root through the "!" prefix on its ExecStart: it must reach the daemon's
 * root-only socket and write cgroup files, whatever user the service itself runs as. Not through
 * User=root: systemd creates and chowns RuntimeDirectory=, StateDirectory=, CacheDirectory= and
 * LogsDirectory= (recursively) to the User= of the command it starts (execute.c
 * setup_exec_directory), so the unit's directories would become root's and the restored process,
 * still running as the unit's user, could no longer write them. "!" skips only the credential
 * change; User= keeps deciding who owns those directories (src/systemd/notes/sandboxed-units.md §3.7).
 * DynamicUser=no is kept as a guard: units with DynamicUser=yes are refused earlier (their
 * implied sandbox gives them namespaces of their own, service.own-namespace).
 */
import { existsSync, readdirSync, rmdirSync, statSync, unlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { NvwaError } from "../errors.ts";
import { ensureDir, fsyncDir, writeFileAtomic } from "../state/atomic.ts";
import type { ServiceProperties } from "./units.ts";

export const NORESTART_DROPIN = "nvwa-norestart.conf";
export const RESTORE_DROPIN = "nvwa-restore.conf";
const NVWA_DROPIN = /^nvwa-[A-Za-z0-9_.-]*\.conf$/;
/** Where the helper writes PID files for units that had none. */
export const NVWA_PID_DIR = "/run/nvwa/pid";
export const DEFAULT_RESTORE_TIMEOUT_SEC = 300;

/** Environment of the restore helper, set by the drop-in. */
export const RESTORE_MODE_ENV = "NVWA_RESTORE_MODE";
export const PIDFILE_ENV = "NVWA_PIDFILE";

export type RestoreType = "notify" | "forking" | "oneshot";

export interface RestoreMode {
  type: RestoreType;
  /** forking: the file the helper writes the restored main pid into. */
  pidFile?: string;
}

/** A systemd service unit name nvwa will put into file paths and command lines. */
export function isValidServiceName(unit: string): boolean {
  return /^[A-Za-z0-9:_.\\@-]+\.service$/.test(unit) && unit.length <= 255 && !unit.startsWith(".");
}

function checkUnit(unit: string): void {
  if (!isValidServiceName(unit)) {
    throw new NvwaError("service.bad-name", `"${unit}" is not a valid systemd service name`, {
      hint: 'use the full unit name, e.g. "redis.service"',
      exitCode: 2,
    });
  }
}

/** The restore type for a service's original Type (see the module comment for the why). */
export function restoreModeFor(p: Pick<ServiceProperties, "unit" | "type" | "pidFile">): RestoreMode {
  switch (p.type) {
    case "notify":
    case "notify-reload":
      return { type: "notify" };
    case "oneshot":
      return { type: "oneshot" };
    case "forking":
      return { type: "forking", pidFile: p.pidFile !== "" ? p.pidFile : join(NVWA_PID_DIR, `${p.unit}.pid`) };
    case "simple":
    case "exec":
    case "idle":
      return { type: "forking", pidFile: join(NVWA_PID_DIR, `${p.unit}.pid`) };
    default:
      throw new NvwaError("service.unsupported-type", `${p.unit} has Type=${p.type}, which nvwa cannot restore`, {
        hint: "leave this service out of nvwa-restore.yaml; preflight should have said so",
      });
  }
}

/**
 * One ExecStart= word, quoted for systemd's command line syntax (systemd.service(5),
 * "Command lines"): % and $ are doubled so no specifier or variable is expanded, and a word with
 * spaces, quotes or backslashes goes in double quotes with C-style escapes.
 */
export function quoteExecArg(arg: string): string {
  const safe = arg.replace(/%/g, "%%").replace(/\$/g, "$$$$");
  if (safe !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(safe)) return safe;
  return `"${safe.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** One Environment= assignment, quoted: C escapes and specifiers are expanded there. */
export function quoteEnvAssignment(key: string, value: string): string {
  const v = value.replace(/%/g, "%%").replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  return `"${key}=${v}"`;
}

/**
 * The nvwa executable the drop-in runs: this binary when it is a compiled nvwa (bun build
 * --compile), /usr/bin/nvwa when running from sources under bun.
 */
export function defaultNvwaBin(execPath = process.execPath): string {
  return /^bun(-debug)?$/.test(basename(execPath)) ? "/usr/bin/nvwa" : execPath;
}

export interface RestoreDropinOptions {
  /** Path of the nvwa executable; see defaultNvwaBin. */
  nvwaBin?: string;
  /** Update id, written as a comment so a leftover file says where it came from. */
  updateId?: string;
  timeoutStartSec?: number;
}

export function renderNoRestartDropin(unit: string, updateId?: string, opts: { container?: string } = {}): string {
  checkUnit(unit);
  return [
    `# Written by nvwa${updateId ? ` (update ${updateId})` : ""}: ${unit} must not be restarted while it is`,
    "# checkpointed and across the kernel jump. Removed by nvwa once the service runs again.",
    "[Service]",
    "Restart=no",
    // A unit running a podman container: podman's checkpoint stops the container, and the unit's
    // stop commands (podman stop/rm) would then act on a container whose checkpoint must survive.
    ...(opts.container === undefined ? [] : [`# Its container ${opts.container} is checkpointed: its stop commands must not touch it.`, "ExecStop=", "ExecStopPost="]),
    "",
  ].join("\n");
}

export function renderRestoreDropin(p: Pick<ServiceProperties, "unit" | "type" | "pidFile">, opts: RestoreDropinOptions = {}): string {
  checkUnit(p.unit);
  const mode = restoreModeFor(p);
  const bin = opts.nvwaBin ?? defaultNvwaBin();
  if (!bin.startsWith("/")) {
    throw new NvwaError("service.bad-nvwa-path", `the nvwa binary path "${bin}" is not absolute`, {
      hint: "systemd needs an absolute ExecStart= path; install nvwa as /usr/bin/nvwa",
    });
  }
  const lines = [
    `# Written by nvwa${opts.updateId ? ` (update ${opts.updateId})` : ""}: after the kernel jump ${p.unit} is`,
    `# restored from its checkpoint instead of started (original Type=${p.type}, restored as Type=${mode.type}).`,
    "# Removed by nvwa once the service runs again.",
    "[Unit]",
    "After=nvwa.service",
    "Wants=nvwa.service",
    "",
    "[Service]",
    `Type=${mode.type}`,
    "ExecStart=",
    // "!": as root (the daemon's root-only socket, cgroup.procs) without taking the unit's
    // directories from its User=.
    `ExecStart=!${[bin, "restore", p.unit].map(quoteExecArg).join(" ")}`,
    "DynamicUser=no",
    `TimeoutStartSec=${opts.timeoutStartSec ?? DEFAULT_RESTORE_TIMEOUT_SEC}`,
    // The helper learns how to hand the restored process to systemd from these.
    `Environment=${quoteEnvAssignment(RESTORE_MODE_ENV, mode.type)}`,
  ];
  if (mode.pidFile !== undefined) lines.push(`Environment=${quoteEnvAssignment(PIDFILE_ENV, mode.pidFile)}`);
  if (mode.type === "notify") lines.push("NotifyAccess=all");
  if (mode.type === "forking") lines.push(`PIDFile=${mode.pidFile ?? ""}`, "GuessMainPID=no");
  if (mode.type === "oneshot") lines.push("RemainAfterExit=yes");
  lines.push("");
  return lines.join("\n");
}

function dropinDir(systemdEtc: string, unit: string): string {
  checkUnit(unit);
  return join(systemdEtc, `${unit}.d`);
}

/** Writes one drop-in atomically (0644: systemd and `systemctl cat` read it). Returns its path. */
export function writeDropin(systemdEtc: string, unit: string, name: string, text: string): string {
  if (!NVWA_DROPIN.test(name)) throw new NvwaError("internal", `drop-in name ${name} does not match nvwa-*.conf`);
  const dir = dropinDir(systemdEtc, unit);
  ensureDir(dir, 0o755);
  const path = join(dir, name);
  writeFileAtomic(path, text, 0o644);
  return path;
}

/** Removes this unit's nvwa-*.conf drop-ins (and its .d directory if that leaves it empty). */
export function removeDropins(systemdEtc: string, unit: string): string[] {
  return removeIn(dropinDir(systemdEtc, unit));
}

function removeIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!NVWA_DROPIN.test(name)) continue;
    const path = join(dir, name);
    try {
      unlinkSync(path);
      removed.push(path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === "ENOENT") continue;
      throw new NvwaError("service.dropin-remove", `cannot remove ${path}: ${err.code ?? err.message}`, {
        hint: `remove it by hand and run \`systemctl daemon-reload\``,
        cause: e,
        details: { path },
      });
    }
  }
  if (removed.length > 0) fsyncDir(dir);
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    // someone added a file meanwhile, or the dir is already gone: either way not ours to remove
  }
  return removed;
}

/** Every nvwa-*.conf under <systemd_etc>/*.d/ (for `nvwa init` and recovery). Returns what it removed. */
export function removeAllNvwaDropins(systemdEtc: string): string[] {
  if (!existsSync(systemdEtc)) return [];
  const removed: string[] = [];
  for (const entry of readdirSync(systemdEtc)) {
    if (!entry.endsWith(".d")) continue;
    const dir = join(systemdEtc, entry);
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch {
      continue;
    }
    removed.push(...removeIn(dir));
  }
  return removed;
}

/** The nvwa-*.conf files present under <systemd_etc>/*.d/ (for status and tests). */
export function listNvwaDropins(systemdEtc: string): string[] {
  if (!existsSync(systemdEtc)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(systemdEtc)) {
    if (!entry.endsWith(".d")) continue;
    const dir = join(systemdEtc, entry);
    try {
      if (!statSync(dir).isDirectory()) continue;
      for (const name of readdirSync(dir)) if (NVWA_DROPIN.test(name)) out.push(join(dir, name));
    } catch {
      continue;
    }
  }
  return out.sort();
}
