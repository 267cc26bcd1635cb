/**
 * A directory tree as path → "type mode uid:gid", for the package tests that compare a scratch
 * root before and after an install, upgrade or removal.
 */
import { lstatSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";

/** Every path under root with its type, mode and owner, minus `skip` (paths relative to root: the package managers' own state). */
export function snapshot(root: string, skip: ReadonlySet<string>): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const rel = relative(root, p);
      if (skip.has(rel)) continue;
      const st = lstatSync(p);
      out.set(rel, `${st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : "f"} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}
