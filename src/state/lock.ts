/**
 * One update (or rehearsal, or boot-time restore) at a time: `<criu_dir>/nvwa.lock`.
 *
 * The exclusion itself is flock(2) on the file, which the kernel drops when the holder dies, so
 * a crashed nvwa never leaves a lock that blocks the next run. The file's content says who holds
 * it ({"pid", "purpose", "since", "bootId", "startTime"}) for the error message and for
 * `nvwa status`. Content found in a file whose flock is free is a stale lock: its holder died
 * (or the machine jumped into a new kernel); it is taken over with a warning naming it.
 *
 * A holder removes the file on release. Because another process may have opened the old file
 * just before that, acquire checks that the file it locked is still the one at the path.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from "node:fs";
import { constants } from "node:fs";
import { dirname, join } from "node:path";
import { errno, libc } from "../../ffi/libc.ts";
import { ERRNO, errnoName } from "../../ffi/errno.ts";
import { NvwaError } from "../errors.ts";
import { ignoreNotes, note, type OnNote } from "../note.ts";
import { ensurePrivateDir } from "./private-dir.ts";

export const LOCK_FILE = "nvwa.lock";
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
/** Same value on x86_64 and arm64 (asm-generic/fcntl.h); node:fs does not export it, and Bun
 * opens without it by default: a criu child must not inherit (and keep) the lock. */
const O_CLOEXEC = 0o2000000;

export interface LockInfo {
  pid: number;
  purpose: string;
  /** ms since the epoch. */
  since: number;
  bootId?: string;
  /** The holder's start time (clock ticks since boot) to tell a reused pid. */
  startTime?: number;
  updateId?: string;
}

export interface HeldLock {
  path: string;
  info: LockInfo;
  /** What a dead holder had left behind, when this acquire took a stale lock over. */
  tookOver: LockInfo | null;
  release(): void;
}

export function lockPath(criuDir: string): string {
  return join(criuDir, LOCK_FILE);
}

/** Pure: the holder described by a lock file's text, or null when it says nothing usable. */
export function parseLockInfo(text: string): LockInfo | null {
  const t = text.trim();
  if (t === "") return null;
  try {
    const j: unknown = JSON.parse(t);
    if (typeof j === "number" && Number.isInteger(j) && j > 0) return { pid: j, purpose: "unknown", since: 0 };
    if (typeof j !== "object" || j === null) return null;
    const o = j as Record<string, unknown>;
    if (typeof o.pid !== "number" || !Number.isInteger(o.pid) || o.pid <= 0) return null;
    return {
      pid: o.pid,
      purpose: typeof o.purpose === "string" ? o.purpose : "unknown",
      since: typeof o.since === "number" ? o.since : 0,
      ...(typeof o.bootId === "string" ? { bootId: o.bootId } : {}),
      ...(typeof o.startTime === "number" ? { startTime: o.startTime } : {}),
      ...(typeof o.updateId === "string" ? { updateId: o.updateId } : {}),
    };
  } catch {
    const m = /^(\d+)\s*$/.exec(t);
    return m ? { pid: Number(m[1]), purpose: "unknown", since: 0 } : null;
  }
}

/** Pure: one line about a holder, for messages. */
export function describeHolder(h: LockInfo, currentBootId?: string): string {
  const when = h.since > 0 ? ` since ${new Date(h.since).toISOString()}` : "";
  const boot = h.bootId && currentBootId && h.bootId !== currentBootId ? " (before the last reboot or kernel jump)" : "";
  return `pid ${h.pid} (${h.purpose}${h.updateId ? ` ${h.updateId}` : ""})${when}${boot}`;
}

function readAll(fd: number): string {
  const size = fstatSync(fd).size;
  if (size === 0) return "";
  const buf = Buffer.alloc(Math.min(size, 64 * 1024));
  const n = readSync(fd, buf, 0, buf.length, 0);
  return buf.subarray(0, n).toString("utf8");
}

function selfStartTime(): number | undefined {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function currentBootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return undefined;
  }
}

function sameFile(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(path);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

export interface AcquireOptions {
  updateId?: string;
  /** Told: a lock taken over from a holder that is gone, criu_dir's mode tightened. */
  onNote?: OnNote;
}

/**
 * Takes the lock at `path` for `purpose` ("update", "rehearsal", "restore"), or throws
 * `state.locked` naming the holder. The directory is created 0700 when missing.
 */
export function acquireLock(path: string, purpose: string, opts: AcquireOptions = {}): HeldLock {
  const onNote = opts.onNote ?? ignoreNotes;
  ensurePrivateDir(dirname(path), onNote);
  const bootId = currentBootId();
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT | O_CLOEXEC, 0o600);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new NvwaError("state.lock-open", `cannot open the lock ${path}: ${err.code ?? err.message}`, {
        hint: `check that ${dirname(path)} is a writable directory on a local disk`,
        cause: e,
        details: { path, errno: err.code },
      });
    }
    if (libc().flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      const e = errno();
      const holder = parseLockInfo(readAll(fd));
      closeSync(fd);
      if (e === ERRNO.EAGAIN) {
        throw new NvwaError(
          "state.locked",
          `another nvwa run holds ${path}: ${holder ? describeHolder(holder, bootId) : "holder unknown"}`,
          {
            hint: "only one update, rehearsal or restore runs at a time; wait for it (see `nvwa status`) and try again",
            details: { path, holder },
          },
        );
      }
      throw new NvwaError("state.lock-open", `cannot lock ${path}: flock failed with ${errnoName(e)}`, {
        hint: "the filesystem holding criu_dir must support flock (a local disk, not NFS without lockd)",
        details: { path, errno: errnoName(e) },
      });
    }
    if (!sameFile(fd, path)) {
      // The holder released (and removed) the file between our open and our flock.
      closeSync(fd);
      continue;
    }
    const stale = parseLockInfo(readAll(fd));
    if (stale) onNote(note("warn", `taking over the lock ${path} left by ${describeHolder(stale, bootId)}, which is no longer running`));
    const info: LockInfo = {
      pid: process.pid,
      purpose,
      since: Date.now(),
      ...(bootId === undefined ? {} : { bootId }),
      ...(selfStartTime() === undefined ? {} : { startTime: selfStartTime() }),
      ...(opts.updateId === undefined ? {} : { updateId: opts.updateId }),
    };
    ftruncateSync(fd, 0);
    const data = Buffer.from(`${JSON.stringify(info)}\n`);
    writeSync(fd, data, 0, data.length, 0);
    fsyncSync(fd);
    let released = false;
    return {
      path,
      info,
      tookOver: stale,
      release(): void {
        if (released) return;
        released = true;
        // Remove first (only if it is still ours), then drop the flock by closing.
        if (sameFile(fd, path)) {
          try {
            unlinkSync(path);
          } catch {
            // already gone: nothing to remove
          }
        }
        libc().flock(fd, LOCK_UN);
        closeSync(fd);
      },
    };
  }
  throw new NvwaError("state.locked", `could not take ${path}: it kept being replaced by other nvwa runs`, {
    hint: "another nvwa is starting and stopping repeatedly; wait until it is done",
    details: { path },
  });
}

/** Who holds the lock right now (null: nobody; a stale file is not a holder). Reads only. */
export function lockHolder(path: string): LockInfo | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | O_CLOEXEC);
  } catch {
    return null;
  }
  try {
    if (libc().flock(fd, LOCK_SH | LOCK_NB) === 0) {
      libc().flock(fd, LOCK_UN);
      return null;
    }
    return parseLockInfo(readAll(fd)) ?? { pid: 0, purpose: "unknown", since: 0 };
  } finally {
    closeSync(fd);
  }
}
