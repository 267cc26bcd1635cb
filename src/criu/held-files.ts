/**
 * Files on a tmpfs (/run, /dev/shm, a tmpfs /tmp) that a target holds open: a daemon's PID or
 * lock file, typically (lighttpd keeps /run/lighttpd.pid open). criu records an open file by
 * path and reopens it at restore; the jump erases every tmpfs, so the restore fails with "Can't
 * open file … No such file or directory" after the point of no return. nvwa saves each such file
 * beside the images while the tree is frozen (so the copy is what the process saw) and puts it
 * back, same content, mode and owner, before criu restores the tree.
 */
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { NvwaError } from "../errors.ts";
import { fdLinks } from "../proc-fds.ts";
import { readTextOrNull } from "../read-text.ts";

export interface HeldFile {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** The copy's file name in the target's images directory. */
  copy: string;
}

/** Above this a file is not copied; the dump fails naming it (a tmpfs holding data, not a PID file). */
export const HELD_FILE_MAX_BYTES = 16 * 1024 * 1024;
const VOLATILE = new Set(["tmpfs", "ramfs"]);

/** Pure: each mount point with its file system type, from /proc/<pid>/mountinfo. */
export function parseMounts(mountinfo: string): { point: string; fstype: string }[] {
  const out: { point: string; fstype: string }[] = [];
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    const point = left?.split(" ")[4];
    const fstype = right?.split(" ")[0];
    if (point !== undefined && fstype !== undefined) out.push({ point: point.replace(/\\040/g, " "), fstype });
  }
  return out;
}

/** Pure: whether the mount holding `path` (the longest mount point above it) is a tmpfs or ramfs. */
export function onVolatileFs(path: string, mounts: readonly { point: string; fstype: string }[]): boolean {
  let best: { point: string; fstype: string } | undefined;
  for (const m of mounts) {
    const under = m.point === "/" || path === m.point || path.startsWith(`${m.point}/`);
    if (under && (best === undefined || m.point.length >= best.point.length)) best = m;
  }
  return best !== undefined && VOLATILE.has(best.fstype);
}

/** The regular files on a tmpfs the processes hold open, each once. */
export function heldVolatileFiles(processes: readonly number[]): string[] {
  const mounts = parseMounts(readTextOrNull("/proc/self/mountinfo") ?? "");
  const found = new Set<string>();
  for (const link of fdLinks(processes)) {
    // Unlinked files are criu's (ghost files, saved in the images).
    if (!link.startsWith("/") || link.endsWith(" (deleted)")) continue;
    if (onVolatileFs(link, mounts)) found.add(link);
  }
  return [...found].filter((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
}

/** Copies the tree's held tmpfs files into imagesDir (call while the tree is frozen). */
export function saveHeldFiles(processes: readonly number[], imagesDir: string, label: string): HeldFile[] {
  return heldVolatileFiles(processes).map((path, i) => {
    const st = statSync(path);
    if (st.size > HELD_FILE_MAX_BYTES) {
      throw new NvwaError("checkpoint.held-file-too-big", `${label} holds ${path} open (${(st.size / 2 ** 20).toFixed(1)} MiB) on a tmpfs, which the jump erases`, {
        hint: `nvwa carries such files (PID and lock files) up to ${HELD_FILE_MAX_BYTES / 2 ** 20} MiB; keep the data on a disk instead`,
        details: { path, size: st.size },
      });
    }
    const copy = `held-file-${i}`;
    copyFileSync(path, join(imagesDir, copy));
    return { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size, copy };
  });
}

/**
 * Puts the saved files back before the restore: the content the process had open (criu checks
 * the size), with its mode and owner; missing parent directories are made (root, 0755).
 */
export function putBackHeldFiles(files: readonly HeldFile[], imagesDir: string): void {
  for (const f of files) {
    if (!existsSync(dirname(f.path))) mkdirSync(dirname(f.path), { recursive: true, mode: 0o755 });
    copyFileSync(join(imagesDir, f.copy), f.path);
    chownSync(f.path, f.uid, f.gid);
    // chown clears set-id bits: the mode goes last.
    chmodSync(f.path, f.mode);
  }
}
