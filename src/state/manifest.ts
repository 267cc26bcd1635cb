/**
 * The manifest: `<criu_dir>/manifest.json`, the one record of an update that survives the jump.
 * The daemon, the restore side and `nvwa status` all read it; it is written only through
 * src/state/manifest-file.ts (atomic replace, 0600). This module is pure: schema, types,
 * parsing, phase rules.
 *
 * Update phases and the only transitions allowed (assertPhaseTransition):
 *
 *   planned ──▶ checkpointing ──▶ dumped ──▶ committed ──▶ jumping ──▶ restoring ──▶ restored
 *      │              │             │            │                        ▲  │
 *      └──────────────┴─────────────┴──▶ rolled-back                      │  └──▶ restore-failed
 *                                                └─────────────(no jump)──┘          │
 *                                                                 restoring ◀────────┘ (retry)
 *
 * - planned: written before anything is touched (kernel loaded, drop-ins, no process frozen).
 * - checkpointing: dumps under way; targets in phase "dumped" are frozen (criu --leave-stopped).
 * - dumped: every target is saved and frozen; nothing is killed yet. Rollback still possible.
 * - committed: images fsynced and the intent to kill recorded (targets "killing"), then the frozen
 *   trees are killed. From here on the only way forward is a restore (after the jump, on this boot
 *   if the jump fails, or on the next boot after a power cut): every target not yet restored is
 *   restored from its images, whatever per-target step the crash left behind.
 * - jumping: set just before reboot(KEXEC); `bootId` tells the restore side whether it happened.
 * - restoring / restored / restore-failed: the boot-time side; restore-failed means at least
 *   one target could not be restored (each target says why) and may be retried by name.
 * - rolled-back: terminal; every frozen tree was resumed and the images removed.
 *
 * Target phases: planned → dumping → dumped → (resumed | killing → killed → restoring → restored |
 * restore-failed | skipped); dump-failed when its own dump failed; lost when the machine
 * restarted before the commit (its processes died unsaved).
 *
 * `recoveries` lists what each start of the daemon found and did with an unfinished update (a
 * daemon that died, a power cut): `nvwa status` shows it.
 */
import { join, resolve } from "node:path";
import * as v from "valibot";
import { NvwaError } from "../errors.ts";
import { Manifest, MANIFEST_VERSION, type ErrorRecord, type ManifestOptions, type Target, type Timing, type UpdatePhase } from "./manifest-schema.ts";

export * from "./manifest-schema.ts";

const TRANSITIONS: Record<UpdatePhase, readonly UpdatePhase[]> = {
  planned: ["checkpointing", "rolled-back"],
  checkpointing: ["dumped", "rolled-back"],
  dumped: ["committed", "rolled-back"],
  committed: ["jumping", "restoring"],
  jumping: ["restoring"],
  restoring: ["restored", "restore-failed"],
  "restore-failed": ["restoring"],
  restored: [],
  "rolled-back": [],
};

export function canTransition(from: UpdatePhase, to: UpdatePhase): boolean {
  return TRANSITIONS[from].includes(to);
}

export function assertPhaseTransition(from: UpdatePhase, to: UpdatePhase): void {
  if (from === to || canTransition(from, to)) return;
  throw new NvwaError("state.bad-transition", `the update cannot go from phase "${from}" to "${to}"`, {
    hint: "another nvwa run changed the manifest meanwhile, or it was edited by hand; see `nvwa status`",
    details: { from, to },
  });
}

export interface NewManifestInput {
  updateId?: string;
  kernel: { from: string; to: string; loader?: string };
  criuDir: string;
  options: ManifestOptions;
  bootId?: string;
  now?: number;
  criu?: { exe: string; version?: string };
}

/** A fresh manifest in phase "planned" with no targets yet. */
export function newManifest(input: NewManifestInput): Manifest {
  const now = input.now ?? Date.now();
  return {
    version: MANIFEST_VERSION,
    updateId: input.updateId ?? newUpdateId(now),
    createdAt: now,
    phase: "planned",
    kernel: { ...input.kernel },
    ...(input.bootId === undefined ? {} : { createdBootId: input.bootId }),
    criuDir: input.criuDir,
    ...(input.criu === undefined ? {} : { criu: input.criu }),
    options: input.options,
    timings: { planned: { start: now } },
    targets: [],
    containers: [],
  };
}

/** Sortable and unique enough for one machine: "20260112T101530Z-4f2a". */
export function newUpdateId(now = Date.now()): string {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const rand = Math.floor(Math.random() * 0x10000).toString(16).padStart(4, "0");
  return `${stamp}-${rand}`;
}

/** Pure: text → validated manifest, or `state.manifest-corrupt` saying what is wrong where. */
export function parseManifest(text: string, path: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    const why = text.trim() === "" ? "it is empty" : `it is not valid JSON (${e instanceof Error ? e.message : String(e)})`;
    throw corrupt(path, why, e);
  }
  if (typeof raw === "object" && raw !== null && "version" in raw && raw.version !== MANIFEST_VERSION) {
    const found = (raw as { version: unknown }).version;
    throw new NvwaError("state.manifest-version", `${path} has manifest version ${JSON.stringify(found)}; this nvwa reads version ${MANIFEST_VERSION}`, {
      hint: "it was written by a different nvwa release; restore with that release, or run `nvwa init` to discard it",
      details: { path, found, expected: MANIFEST_VERSION },
    });
  }
  const r = v.safeParse(Manifest, raw);
  if (!r.success) {
    const first = r.issues[0];
    const where = first ? v.getDotPath(first) : null;
    const why = first ? `${where ? `${where}: ` : ""}${first.message}` : "it does not match the manifest schema";
    throw corrupt(path, why);
  }
  checkConsistency(r.output, path);
  return r.output;
}

function corrupt(path: string, why: string, cause?: unknown): NvwaError {
  return new NvwaError("state.manifest-corrupt", `${path} is damaged: ${why}`, {
    hint: "nothing was restored from it; look at the per-target dump.log files beside it, then run `nvwa init` to start clean",
    ...(cause === undefined ? {} : { cause }),
    details: { path, why },
  });
}

/** What the schema cannot say: unique names, the root among its pids, dirs inside criu_dir. */
function checkConsistency(m: Manifest, path: string): void {
  const seen = new Set<string>();
  for (const t of m.targets) {
    if (seen.has(t.name)) throw corrupt(path, `target "${t.name}" appears twice`);
    seen.add(t.name);
    if (!t.pids.includes(t.rootPid)) throw corrupt(path, `target "${t.name}": root pid ${t.rootPid} is not among its pids`);
    // Images are deleted by path after a restore: a manifest must never point outside criu_dir.
    if (resolve(t.imagesDir) !== resolve(join(m.criuDir, t.name))) {
      throw corrupt(path, `target "${t.name}": images dir ${t.imagesDir} is not ${join(m.criuDir, t.name)}`);
    }
  }
}

export function serializeManifest(m: Manifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

export function findTarget(m: Manifest, name: string): Target | undefined {
  return m.targets.find((t) => t.name === name);
}

/** The highest pid any target will need at restore (0 when there is none). */
export function highestSavedPid(m: Manifest): number {
  let max = 0;
  for (const t of m.targets) for (const p of t.pids) if (p > max) max = p;
  return max;
}

/** Pure helpers returning a changed copy, so callers never mutate a manifest they did not read. */
export function withPhase(m: Manifest, phase: UpdatePhase, now = Date.now()): Manifest {
  assertPhaseTransition(m.phase, phase);
  const timings = { ...m.timings };
  const prev = timings[m.phase];
  if (prev && prev.end === undefined && m.phase !== phase) timings[m.phase] = { ...prev, end: now };
  if (m.phase !== phase) timings[phase] = { start: now };
  return { ...m, phase, timings };
}

export function withTarget(m: Manifest, name: string, change: (t: Target) => Target): Manifest {
  let found = false;
  const targets = m.targets.map((t) => {
    if (t.name !== name) return t;
    found = true;
    return change(t);
  });
  if (!found) throw new NvwaError("state.no-such-target", `the manifest has no target "${name}"`, {
    hint: `targets recorded: ${m.targets.map((t) => t.name).join(", ") || "none"}`,
    details: { name },
  });
  return { ...m, targets };
}

export function errorRecord(e: NvwaError): ErrorRecord {
  return { code: e.code, message: e.message, ...(e.hint === undefined ? {} : { hint: e.hint }) };
}

/** Marks a timing slot of a target as started or ended (immutable). */
export function stampTarget(t: Target, key: string, edge: "start" | "end", now = Date.now()): Target {
  return { ...t, timings: stampTimings(t.timings, key, edge, now) };
}

/** A timing slot started (a fresh start) or ended (keeping its start), in a changed copy. */
export function stampTimings(timings: Record<string, Timing>, key: string, edge: "start" | "end", now = Date.now()): Record<string, Timing> {
  const cur = timings[key];
  return { ...timings, [key]: edge === "start" ? { start: now } : { start: cur?.start ?? now, end: now } };
}
