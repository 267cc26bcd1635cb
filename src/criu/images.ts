/**
 * The files of one target's images directory: preparing it, measuring it, making it durable
 * before the jump, and removing the images (process memory) once they are no longer needed.
 * The logs (dump.log, restore.log) are kept: they are small and `nvwa status` points at them.
 */
import { closeSync, fsyncSync, lstatSync, openSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { NvwaError } from "../errors.ts";
import type { OnNote } from "../note.ts";
import { fsyncDir } from "../state/atomic.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";

const LOG = /\.log$/;

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

/** Creates the directory 0700 (or checks it) and empties it: stale images must not mix in. */
export function prepareImagesDir(dir: string, onNote?: OnNote): void {
  ensurePrivateDir(dir, onNote);
  for (const name of entries(dir)) rmSync(join(dir, name), { recursive: true, force: true });
}

/** Bytes of image files (logs excluded). */
export function imageBytes(dir: string): number {
  let total = 0;
  for (const name of entries(dir)) {
    if (LOG.test(name)) continue;
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) total += st.size;
    } catch {
      // vanished meanwhile: not counted
    }
  }
  return total;
}

/** Pure: do these file names include a dumped established TCP connection? */
export function namesHaveTcpStreams(names: readonly string[]): boolean {
  return names.some((n) => /^tcp-stream-[0-9a-f]+\.img$/.test(n));
}

export function hasTcpStreams(dir: string): boolean {
  return namesHaveTcpStreams(entries(dir));
}

/** A pre-dump round's directory (src/update/pre-dump.ts): part of the images the restore reads. */
const PRE_DUMP_DIR = /^pre-\d+$/;

/**
 * fsync every image file and the directory, and the pre-dump rounds' directories the final
 * dump's `parent` link chains to: after this the images survive a reboot.
 */
export function syncImages(dir: string, where = "criu_dir"): number {
  let bytes = 0;
  for (const name of entries(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory() && PRE_DUMP_DIR.test(name)) {
      bytes += syncImages(path, where);
      continue;
    }
    if (!st.isFile()) continue;
    const fd = openSync(path, "r");
    try {
      fsyncSync(fd);
    } catch (e) {
      throw new NvwaError("criu.images-sync", `cannot flush ${path} to disk: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
        hint: `the disk holding ${where} reported an I/O error; check dmesg before jumping`,
        cause: e,
        details: { path },
      });
    } finally {
      closeSync(fd);
    }
    bytes += st.size;
  }
  fsyncDir(dir);
  return bytes;
}

/** Removes the images (everything but the logs). */
export function removeImages(dir: string): void {
  for (const name of entries(dir)) {
    if (LOG.test(name)) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
  }
}
