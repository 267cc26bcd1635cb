/**
 * Paths inside an OS image tree, resolved as that system would resolve them with the tree as
 * its `/`: an absolute symlink (`/usr/sbin/criu -> /opt/criu/bin/criu`, systemctl's
 * `multi-user.target.wants/nvwa.service -> /usr/lib/systemd/system/nvwa.service`) leads to
 * <root>/opt/..., never to this machine's file of that name, and `..` stops at the tree's top.
 * Each component is looked at with lstat and every link is read and followed here, so the host's
 * kernel never follows a link of the tree (what openat2's RESOLVE_IN_ROOT does, without a
 * syscall nvwa would need a pointer for). Reads only.
 */
import { lstatSync, readlinkSync, type Stats } from "node:fs";
import { join } from "node:path";

/** Linux's limit on links followed in one lookup (MAXSYMLINKS). */
const MAX_LINKS = 40;

export interface TreeEntry {
  /** The path as the image names it, with every link resolved: "/usr/lib/systemd/system/nvwa.service". */
  imagePath: string;
  /** Where that is on this machine: <root><imagePath>. */
  hostPath: string;
  /** lstat of hostPath: never a symlink. */
  stats: Stats;
}

/** Why a path does not lead anywhere in the tree. */
export interface TreeMiss {
  /** The image path at which the lookup stopped (the missing component, or the looping link). */
  imagePath: string;
  why: "missing" | "not-a-directory" | "too-many-links" | "unreadable";
}

export type TreeLookup = TreeEntry | TreeMiss;

export function found(l: TreeLookup): l is TreeEntry {
  return "stats" in l;
}

const parts = (p: string): string[] => p.split("/").filter((s) => s !== "" && s !== ".");

function lstatOrCode(p: string): Stats | string {
  try {
    return lstatSync(p);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? "EIO";
  }
}

/**
 * Where `path` (absolute, as the image names it) leads inside the tree at `root`. With
 * `followLast: false` the last component is not followed when it is a link (lstat's view:
 * whether an enablement link exists, whatever it points at).
 */
export function lookupInTree(root: string, path: string, followLast = true): TreeLookup {
  const done: string[] = [];
  const todo = parts(path);
  let links = 0;
  while (todo.length > 0) {
    const name = todo.shift() as string;
    if (name === "..") {
      // The tree's top is its own parent, as `/..` is `/`.
      done.pop();
      continue;
    }
    const here = [...done, name];
    const imagePath = `/${here.join("/")}`;
    const st = lstatOrCode(join(root, ...here));
    if (typeof st === "string") return { imagePath, why: st === "ENOENT" ? "missing" : st === "ENOTDIR" ? "not-a-directory" : "unreadable" };
    if (st.isSymbolicLink() && (todo.length > 0 || followLast)) {
      if (++links > MAX_LINKS) return { imagePath, why: "too-many-links" };
      let target: string;
      try {
        target = readlinkSync(join(root, ...here), "utf8");
      } catch {
        return { imagePath, why: "unreadable" };
      }
      // An absolute target starts again at the tree's top; a relative one from the link's directory.
      if (target.startsWith("/")) done.length = 0;
      todo.unshift(...parts(target));
      continue;
    }
    if (todo.length > 0 && !st.isDirectory()) return { imagePath, why: "not-a-directory" };
    done.push(name);
  }
  const imagePath = `/${done.join("/")}`;
  const hostPath = join(root, ...done);
  const st = lstatOrCode(hostPath);
  if (typeof st === "string") return { imagePath, why: "unreadable" };
  return { imagePath, hostPath, stats: st };
}

/** The target of the link at `path` as written in the tree (not resolved), or null when it is not a link. */
export function linkTextInTree(root: string, path: string): string | null {
  const l = lookupInTree(root, path, false);
  if (!found(l) || !l.stats.isSymbolicLink()) return null;
  try {
    return readlinkSync(l.hostPath, "utf8");
  } catch {
    return null;
  }
}

/** A regular file some execute bit is set on (root needs no more). */
export function isExecutableFile(st: Stats): boolean {
  return st.isFile() && (st.mode & 0o111) !== 0;
}

/** Human words for a miss, for a check's detail: "/usr/sbin/criu does not exist in the image". */
export function describeMiss(m: TreeMiss, asked: string): string {
  const at = m.imagePath === asked ? "" : ` (at ${m.imagePath})`;
  switch (m.why) {
    case "missing":
      return `${asked} does not exist in the image${m.imagePath === asked ? "" : ` (${m.imagePath} does not)`}`;
    case "not-a-directory":
      return `${asked} does not exist in the image: ${m.imagePath} is not a directory`;
    case "too-many-links":
      return `${asked} cannot be resolved: too many symbolic links${at}`;
    case "unreadable":
      return `${asked} cannot be read${at}`;
  }
}
