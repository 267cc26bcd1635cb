/**
 * The saved network on disk: `<criu_dir>/net.json`, next to the manifest. Written atomically,
 * validated in full on reading (a bad file is refused before anything is applied), and
 * consumed by renaming it to `net.json.consumed`, so it is applied on at most one boot.
 */
import { existsSync, readFileSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import * as v from "valibot";
import { ExitCode, NvwaError } from "../errors.ts";
import { fsyncDir, writeFileAtomic } from "../state/atomic.ts";
import { NET_SNAPSHOT_FORMAT, NET_SNAPSHOT_VERSION, NetSnapshotSchema, type NetSnapshot } from "./model.ts";

export const NET_SNAPSHOT_FILE = "net.json";
export const CONSUMED_SUFFIX = ".consumed";

export function netSnapshotPath(criuDir: string): string {
  return join(criuDir, NET_SNAPSHOT_FILE);
}

function issuesText(issues: readonly v.BaseIssue<unknown>[], max = 3): string {
  const shown = issues.slice(0, max).map((i) => {
    const path = v.getDotPath(i);
    return path === null ? i.message : `${path}: ${i.message}`;
  });
  const more = issues.length > max ? ` (and ${issues.length - max} more)` : "";
  return `${shown.join("; ")}${more}`;
}

/** Writes the snapshot atomically (mode 0600). Refuses one that would not read back. */
export function writeNetSnapshot(path: string, snap: NetSnapshot): void {
  const checked = v.safeParse(NetSnapshotSchema, snap);
  if (!checked.success) {
    throw new NvwaError("net.snapshot-invalid", `the network snapshot for ${path} does not validate: ${issuesText(checked.issues)}`, {
      exitCode: ExitCode.internal,
      hint: "this is a bug in nvwa; please report it with `ip -d -j addr` and `ip -j route show table all`",
      details: { path },
    });
  }
  writeFileAtomic(path, `${JSON.stringify(snap, null, 2)}\n`, 0o600);
}

function corrupt(path: string, why: string, cause?: unknown): NvwaError {
  return new NvwaError("net.snapshot-corrupt", `saved network ${path} is corrupt: ${why}`, {
    hint: `nothing was applied; configure the network by hand (the old settings may still be readable in ${path}), then remove the file`,
    details: { path },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Reads and validates a snapshot. Throws NvwaError `net.snapshot-missing` (no file),
 * `net.snapshot-unreadable` (I/O), `net.snapshot-corrupt` (not JSON, wrong shape, bad
 * addresses, dangling link names) or `net.snapshot-version` (written by another nvwa).
 */
export function readNetSnapshot(path: string): NetSnapshot {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new NvwaError("net.snapshot-missing", `no saved network at ${path}`, {
        hint: "the network is saved at commit only when restore_net is true; nothing to restore",
        details: { path },
      });
    }
    throw new NvwaError("net.snapshot-unreadable", `cannot read saved network ${path}: ${code ?? String(e)}`, {
      hint: `check that ${dirname(path)} is mounted and readable by root`,
      details: { path },
      cause: e,
    });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw corrupt(path, `not valid JSON (${e instanceof Error ? e.message : String(e)})`, e);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw corrupt(path, "not a JSON object");
  const head = data as { format?: unknown; version?: unknown };
  if (head.format !== NET_SNAPSHOT_FORMAT) throw corrupt(path, `format is ${JSON.stringify(head.format)}, not "${NET_SNAPSHOT_FORMAT}"`);
  if (head.version !== NET_SNAPSHOT_VERSION) {
    throw new NvwaError(
      "net.snapshot-version",
      `saved network ${path} has format version ${JSON.stringify(head.version)}; this nvwa reads version ${NET_SNAPSHOT_VERSION}`,
      {
        hint: "the file was written by a different nvwa release; nothing was applied, configure the network by hand",
        details: { path, version: head.version },
      },
    );
  }
  const parsed = v.safeParse(NetSnapshotSchema, data);
  if (!parsed.success) throw corrupt(path, issuesText(parsed.issues));
  return parsed.output;
}

/**
 * Retires a snapshot so no later boot applies it again: renames it to `<path>.consumed`
 * (replacing an older one) and syncs the directory. Returns the new path, or null when there
 * was nothing to consume.
 *
 * Call it after the snapshot has been read and validated and BEFORE applying it. Applying is
 * not atomic: if the machine crashes or nvwa is killed half way, a snapshot still in place
 * would be re-applied on every following boot, stacking stale addresses and routes on
 * whatever the administrator configured since. Consumed first, a crash mid-apply leaves the
 * network partly restored (reported as such by the restore phase) and the file kept under
 * its new name for inspection. A crash before this rename loses nothing: the file is still
 * there and the next boot applies it.
 */
export function consumeNetSnapshot(path: string): string | null {
  if (!existsSync(path)) return null;
  const dest = `${path}${CONSUMED_SUFFIX}`;
  try {
    renameSync(path, dest);
    fsyncDir(dirname(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NvwaError("net.snapshot-consume", `cannot retire saved network ${path}: ${code ?? String(e)}`, {
      hint: `nothing was applied; make ${dirname(path)} writable (is the filesystem read-only?) and restart nvwa`,
      details: { path },
      cause: e,
    });
  }
  return dest;
}
