/**
 * Which targets a restore brings back, which it must skip and why, and what the update's phase
 * is afterwards. Pure: the pids' current holders are facts gathered by src/restore/pids.ts.
 *
 * A target is skipped (and named) when any pid of its tree is taken: criu would fail with
 * "Can't fork for N: File exists" after restoring half the tree. The others still proceed.
 */
import { NvwaError } from "../errors.ts";
import type { Manifest, Target, UpdatePhase } from "../state/manifest.ts";

/** Update phases from which a restore may start (or be retried). */
export const RESTORABLE_PHASES: readonly UpdatePhase[] = ["committed", "jumping", "restoring", "restore-failed"];
/**
 * Target phases that still need a restore, in a committed update. "dumped" and "killing" are
 * there because what is durable decides, not the last per-target step written: a committed
 * manifest means every image is complete and fsynced, so a crash between the commit and the
 * write of "killed" still restores every target (the images say which are missing, if any).
 */
export const PENDING_TARGET_PHASES: readonly Target["phase"][] = ["dumped", "killing", "killed", "restoring", "restore-failed", "skipped"];

export interface RestoreSelection {
  /** Only these targets (by name). */
  names?: readonly string[];
  /** Only these kinds (the daemon restores pids itself; services come through their units). */
  kinds?: readonly Target["kind"][];
}

export type RestoreStep = { target: Target; action: "restore" } | { target: Target; action: "skip"; error: NvwaError };

/** "redis.service", or "python3 (pid 1234)" for a target given by pid. */
export function targetTitle(t: Pick<Target, "kind" | "name" | "comm" | "rootPid">): string {
  return t.kind === "service" ? t.name : `${t.comm ?? "process"} (pid ${t.rootPid})`;
}

/** Pure: the clash error for a target, or null when all its pids are free. */
export function pidClash(t: Target, holders: ReadonlyMap<number, string>): NvwaError | null {
  const taken = t.pids.filter((p) => holders.has(p)).map((p) => ({ pid: p, holder: holders.get(p) ?? "?" }));
  const first = taken[0];
  if (first === undefined) return null;
  const more = taken.length > 1 ? ` (and ${taken.length - 1} more of its ${t.pids.length} pids)` : "";
  return new NvwaError("restore.pid-taken", `pid ${first.pid} of ${targetTitle(t)} is taken by ${first.holder}${more}`, {
    // criu itself would fail half way with "Can't fork for N: File exists": refused by name here instead.
    hint: `${first.holder} started before the restore and got a pid the tree needs (criu would fail with "Can't fork for ${first.pid}: File exists"); make it start after nvwa.service (which moves ns_last_pid past every saved pid first), or stop ${first.holder} and restore it by hand from its images, which stay in ${t.imagesDir} until \`nvwa init\` (criu restore -d -D ${t.imagesDir}${t.shellJob ? " --shell-job" : ""})`,
    details: { target: t.name, taken },
  });
}

export function assertRestorable(m: Manifest): void {
  if (m.options.rehearsal) {
    throw new NvwaError("restore.rehearsal", `${m.criuDir} holds a rehearsal (update ${m.updateId}); rehearsals are never restored`, {
      hint: "a rehearsal resumes its targets itself; remove the leftover directory",
    });
  }
  if (!RESTORABLE_PHASES.includes(m.phase)) {
    const hint =
      m.phase === "dumped" || m.phase === "checkpointing"
        ? "the trees are still frozen, not killed: this update has to be rolled back, not restored (`nvwa init` does it)"
        : m.phase === "planned"
          ? "nothing was checkpointed yet"
          : `update ${m.updateId} is already ${m.phase}; nothing to restore`;
    throw new NvwaError("restore.wrong-phase", `cannot restore update ${m.updateId}: it is in phase "${m.phase}"`, {
      hint,
      details: { phase: m.phase, updateId: m.updateId },
    });
  }
}

/** Pure: the targets that still need restoring under `sel`. */
export function pendingTargets(m: Manifest, sel: RestoreSelection = {}): Target[] {
  return m.targets.filter(
    (t) =>
      PENDING_TARGET_PHASES.includes(t.phase) &&
      (sel.names === undefined || sel.names.includes(t.name)) &&
      (sel.kinds === undefined || sel.kinds.includes(t.kind)),
  );
}

export function planRestore(m: Manifest, holders: ReadonlyMap<number, string>, sel: RestoreSelection = {}): RestoreStep[] {
  assertRestorable(m);
  return pendingTargets(m, sel).map((target) => {
    const error = pidClash(target, holders);
    return error === null ? { target, action: "restore" as const } : { target, action: "skip" as const, error };
  });
}

/**
 * Pure: the update phase once targets have moved: "restored" when every target is (and all of its
 * memory is back), "restoring" while any is still pending or under way, "restore-failed" when the
 * rest failed, was skipped or was lost.
 */
export function settledPhase(m: Manifest): UpdatePhase {
  if (m.targets.some(memoryComing)) return "restoring";
  if (m.targets.every((t) => t.phase === "restored") && m.containers.every((c) => c.phase === "restored")) return "restored";
  if (m.targets.some((t) => t.phase === "dumped" || t.phase === "killing" || t.phase === "killed" || t.phase === "restoring")) return "restoring";
  if (m.containers.some((c) => c.phase === "checkpointed" || c.phase === "restoring")) return "restoring";
  return "restore-failed";
}

/** Pure: a lazily restored target runs, but its memory is still coming back (src/restore/lazy.ts). */
export function memoryComing(t: Target): boolean {
  return t.phase === "restored" && t.lazy?.state === "copying";
}
