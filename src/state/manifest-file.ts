/**
 * Reading and writing `<criu_dir>/manifest.json`. Writes replace the file atomically (temp file,
 * fsync, rename, fsync of the directory: src/state/atomic.ts) with mode 0600; reads check the
 * file is still private and validate it (src/state/manifest.ts).
 *
 * Every change is a read-modify-write done synchronously (no await in between), so the async
 * tasks of one daemon cannot interleave inside it; the update lock keeps other processes out.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NvwaError } from "../errors.ts";
import { writeFileAtomic } from "./atomic.ts";
import { MANIFEST_FILE, parseManifest, serializeManifest, type Manifest } from "./manifest.ts";
import { checkPrivateFile, ensurePrivateDir } from "./private-dir.ts";

export function manifestPath(criuDir: string): string {
  return join(criuDir, MANIFEST_FILE);
}

/** The manifest in `criuDir`, or null when there is none. Throws when it exists but is damaged. */
export function readManifestIfAny(criuDir: string): Manifest | null {
  const path = manifestPath(criuDir);
  let text: string;
  try {
    checkPrivateFile(path);
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    if (e instanceof NvwaError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new NvwaError("state.manifest-read", `cannot read ${path}: ${err.code ?? err.message}`, {
      hint: "check the disk holding criu_dir (dmesg for I/O errors)",
      cause: e,
      details: { path, errno: err.code },
    });
  }
  return parseManifest(text, path);
}

export function readManifest(criuDir: string): Manifest {
  const m = readManifestIfAny(criuDir);
  if (m === null) {
    throw new NvwaError("state.no-manifest", `there is no update record in ${criuDir} (no ${MANIFEST_FILE})`, {
      hint: "nothing was checkpointed there; check criu_dir in nvwa-server.yaml",
      details: { path: manifestPath(criuDir) },
    });
  }
  return m;
}

/** Writes the manifest into its own criu_dir (created 0700 when missing), file mode 0600. */
export function writeManifest(m: Manifest): void {
  ensurePrivateDir(m.criuDir);
  writeFileAtomic(manifestPath(m.criuDir), serializeManifest(m), 0o600);
}

/** Read, change, write back, in one synchronous step. Returns what was written. */
export function updateManifest(criuDir: string, change: (m: Manifest) => Manifest): Manifest {
  const next = change(readManifest(criuDir));
  writeManifest(next);
  return next;
}
