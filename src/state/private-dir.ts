/**
 * criu_dir, every images directory and the manifest hold process memory and command lines
 * (passwords included, for whoever passed one in argv): root only. They are created 0700 /
 * 0600 and checked each time they are used, because an operator's `chmod -R a+r` or a
 * pre-created directory would otherwise leak a snapshot of every workload.
 *
 * The policy: a path owned by us but too open is tightened, with a warning; a symlink, a
 * path of another kind, or one owned by another user is refused.
 */
import { chmodSync, lstatSync, type Stats } from "node:fs";
import { NvwaError } from "../errors.ts";
import { ignoreNotes, note, type OnNote } from "../note.ts";
import { ensureDir } from "./atomic.ts";

function euid(): number {
  return typeof process.geteuid === "function" ? process.geteuid() : 0;
}

function statOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new NvwaError("state.stat", `cannot inspect ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: "nvwa runs as root; check the path and its parents",
      cause: e,
      details: { path },
    });
  }
}

function checkOwnedPrivate(path: string, st: Stats, want: number, what: "directory" | "file", onNote: OnNote): void {
  if (st.isSymbolicLink()) {
    throw new NvwaError("state.insecure-path", `${path} is a symlink; nvwa keeps process images only in a real ${what}`, {
      hint: `remove the link and let nvwa create ${path}, or point criu_dir at the real location`,
      details: { path },
    });
  }
  const isRightKind = what === "directory" ? st.isDirectory() : st.isFile();
  if (!isRightKind) {
    throw new NvwaError("state.insecure-path", `${path} exists but is not a ${what}`, {
      hint: `move it away; nvwa creates ${path} itself`,
      details: { path },
    });
  }
  if (st.uid !== euid()) {
    throw new NvwaError("state.insecure-path", `${path} is owned by uid ${st.uid}, not by root; it would expose process memory`, {
      hint: `chown root:root ${path} && chmod ${want.toString(8)} ${path}, or remove it`,
      details: { path, uid: st.uid },
    });
  }
  const mode = st.mode & 0o7777;
  if ((mode & 0o077) !== 0) {
    onNote(note("warn", `${path} had mode ${mode.toString(8)}; tightened to ${want.toString(8)} (process images and command lines are secrets)`));
    chmodSync(path, want);
  }
}

/**
 * Creates `dir` (and missing parents) 0700, or checks an existing one. A tightened mode is told
 * through `onNote` (a warning): callers that can report pass it; the others (the manifest's
 * writes, an images dir just created under a criu_dir checked already) tighten silently.
 */
export function ensurePrivateDir(dir: string, onNote: OnNote = ignoreNotes): void {
  const st = statOrNull(dir);
  if (st === null) {
    try {
      ensureDir(dir, 0o700);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new NvwaError("state.mkdir", `cannot create ${dir}: ${err.code ?? err.message}`, {
        hint: err.code === "EROFS" ? `${dir} is on a read-only filesystem; set criu_dir to a writable disk path` : `check that the parent of ${dir} exists and is writable by root`,
        cause: e,
        details: { path: dir, errno: err.code },
      });
    }
    // mkdir's mode is filtered by the umask and parents may have existed: set it explicitly.
    chmodSync(dir, 0o700);
    return;
  }
  checkOwnedPrivate(dir, st, 0o700, "directory", onNote);
}

/** Checks an existing state file (manifest) is a root-owned regular file of mode 0600. */
export function checkPrivateFile(path: string, onNote: OnNote = ignoreNotes): void {
  const st = statOrNull(path);
  if (st === null) return;
  checkOwnedPrivate(path, st, 0o600, "file", onNote);
}
