/**
 * Crash-safe file replacement: write a temp file beside the target, fsync it, rename it over
 * the target, fsync the directory. After a crash at any point the target holds either the old
 * or the new content, never a torn mix. Every state file nvwa writes goes through here.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { NvwaError } from "../errors.ts";

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  try {
    const fd = openSync(tmp, "w", mode);
    try {
      const buf = typeof data === "string" ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    fsyncDir(dir);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // the temp file may never have been created; nothing to clean up then
    }
    const err = e as NodeJS.ErrnoException;
    throw new NvwaError("state.write", `cannot write ${path}: ${err.code ?? err.message}`, {
      hint: err.code === "ENOSPC" ? `free space on the filesystem holding ${dir}` : `check that ${dir} exists and is writable by root`,
      cause: e,
      details: { path, errno: err.code },
    });
  }
}

/** mkdir -p with a mode, for directories that hold secrets (images hold process memory). */
export function ensureDir(dir: string, mode = 0o700): void {
  mkdirSync(dir, { recursive: true, mode });
}
