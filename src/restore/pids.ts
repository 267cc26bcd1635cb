/**
 * The pids a restore needs: who holds them now, and the boot-time step that keeps new processes
 * off them. Writing /proc/sys/kernel/ns_last_pid = N makes the kernel hand out N+1 next, so
 * every process started after nvwa.service gets a pid above the highest saved one. The
 * original wrote a blind +2011; this moves exactly past what the manifest needs, and never
 * backwards (which would push new processes onto saved pids after a wrap).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { NvwaError } from "../errors.ts";
import { pidHolder } from "../criu/proc.ts";

export const NS_LAST_PID = "/proc/sys/kernel/ns_last_pid";
export const PID_MAX = "/proc/sys/kernel/pid_max";

/** The current holder of each taken pid among `pids` (free pids are absent). */
export function findHolders(pids: Iterable<number>): Map<number, string> {
  const out = new Map<number, string>();
  for (const pid of pids) {
    const h = pidHolder(pid);
    if (h !== null) out.set(pid, h);
  }
  return out;
}

function readInt(path: string): number {
  const v = Number(readFileSync(path, "utf8").trim());
  if (!Number.isInteger(v)) throw new Error(`${path} does not hold an integer`);
  return v;
}

/** Pure: the value to write, or null when ns_last_pid is already past `maxPid`. */
export function nsLastPidTarget(current: number, maxPid: number, pidMax: number): number | null {
  if (maxPid >= pidMax) {
    throw new NvwaError("restore.pid-max", `a saved pid (${maxPid}) is not below this kernel's pid_max (${pidMax})`, {
      hint: `raise kernel.pid_max above ${maxPid} (sysctl -w kernel.pid_max=${Math.max(maxPid + 1, 32768)}) before the restore`,
      details: { maxPid, pidMax },
    });
  }
  return current >= maxPid ? null : maxPid;
}

/** Moves ns_last_pid past `maxPid` (no-op when already past). Returns before/after. */
export function bumpNsLastPid(maxPid: number, paths = { nsLastPid: NS_LAST_PID, pidMax: PID_MAX }): { before: number; after: number } {
  let before: number;
  let pidMax: number;
  try {
    before = readInt(paths.nsLastPid);
    pidMax = readInt(paths.pidMax);
  } catch (e) {
    throw new NvwaError("restore.ns-last-pid", `cannot read ${paths.nsLastPid}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: "the kernel needs CONFIG_CHECKPOINT_RESTORE (criu needs it too)",
      cause: e,
    });
  }
  const next = nsLastPidTarget(before, maxPid, pidMax);
  if (next === null) return { before, after: before };
  try {
    writeFileSync(paths.nsLastPid, String(next));
  } catch (e) {
    throw new NvwaError("restore.ns-last-pid", `cannot write ${next} to ${paths.nsLastPid}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: "nvwa must run as root (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE) in the initial pid namespace",
      cause: e,
    });
  }
  return { before, after: readInt(paths.nsLastPid) };
}
