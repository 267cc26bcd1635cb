/**
 * What the daemon does, at start, with the update it finds in criu_dir. Pure: the facts (boot id,
 * kernel loaded, which trees still run) are gathered by src/daemon/recover.ts, which carries the
 * decision out. A daemon restarted by systemd in the middle of an update (it died, or was killed)
 * and a machine back from a power cut both come through here; every row is safe to run again, so
 * a daemon killed during its own recovery ends the same way at its next start.
 *
 *   update phase                         same boot as …      decision
 *   none                                 -                   nothing
 *   planned / checkpointing / dumped     created: yes        roll back: resume the frozen trees,
 *                                                            unload the kernel nvwa loaded
 *                                        created: no         lost: the trees died unsaved with the
 *                                                            machine; each target is named
 *   committed / jumping / restoring      committed: yes      restore here: kill what is left of the
 *                                                            frozen trees (the commit's intent), restore
 *                                                            every target not restored, unload the kernel
 *                                        committed: no       restore every target not restored
 *   restored / restore-failed /          -                   clean up: remove nvwa's drop-ins
 *   rolled-back
 *
 * A target restored lazily whose memory was still coming back (enable_lazy_restore), or whose lazy
 * restore was under way and whose tree runs, is lost: its lazy-pages daemon's end was not seen, so
 * its memory cannot be trusted; it is killed where it runs. One whose tree never came up is
 * restored again.
 *
 * In a restore, a target already "restored" is never restored again (after a power cut its
 * processes died like any other's). A target caught "restoring" on the boot its restore began may
 * already run: when its root pid is alive with the command line it was dumped with, it is adopted
 * (marked restored) instead of restored a second time.
 */
import type { Manifest, Target, UpdatePhase } from "../state/manifest.ts";
import { PENDING_TARGET_PHASES } from "../restore/plan.ts";

export interface RecoveryFacts {
  /** /proc/sys/kernel/random/boot_id now. */
  bootId: string | undefined;
  /** /sys/kernel/kexec_loaded is 1. */
  kexecLoaded: boolean;
  /** Targets whose root pid runs now with the command line recorded at dump time. */
  alive: ReadonlySet<string>;
}

export type RecoveryDecision =
  | { action: "none" }
  | { action: "cleanup" }
  | { action: "rollback"; unloadKernel: boolean }
  | { action: "lost"; targets: string[] }
  | {
      action: "restore";
      /** No jump happened since the commit: frozen trees of these targets may still exist. */
      sameBoot: boolean;
      killLeftovers: string[];
      adopt: string[];
      restore: string[];
      /**
       * Lazily restored targets whose memory was still coming back when the previous daemon (their
       * lazy-pages daemons' supervisor) stopped or the machine restarted: how the copy ended cannot
       * be known, so they are lost (killed where they still run), never restored a second time.
       */
      lazyUnfinished: string[];
      unloadKernel: boolean;
    };

const PRE_COMMIT: readonly UpdatePhase[] = ["planned", "checkpointing", "dumped"];
const POST_COMMIT: readonly UpdatePhase[] = ["committed", "jumping", "restoring"];

const same = (a: string | undefined, b: string | undefined): boolean => a !== undefined && a === b;

export function decideRecovery(m: Manifest | null, f: RecoveryFacts): RecoveryDecision {
  if (m === null) return { action: "none" };
  // An unload only for a kernel nvwa recorded loading: one loaded by hand is the operator's.
  const unloadKernel = f.kexecLoaded && m.kernel.loader !== undefined;
  if (PRE_COMMIT.includes(m.phase)) {
    if (same(m.createdBootId, f.bootId)) return { action: "rollback", unloadKernel };
    return { action: "lost", targets: [...m.targets.map((t) => t.name), ...m.containers.filter((c) => c.phase !== "planned").map((c) => `container ${c.name}`)] };
  }
  if (!POST_COMMIT.includes(m.phase)) return { action: "cleanup" };
  const sameBoot = same(m.bootId, f.bootId);
  const restoringHere = same(m.restoreBootId, f.bootId);
  const pending = m.targets.filter((t) => PENDING_TARGET_PHASES.includes(t.phase));
  // A lazily restored tree is never adopted: its memory came from a lazy-pages daemon nobody watched.
  const lazyUnfinished = (t: Target): boolean =>
    (t.lazy?.state === "starting" || t.lazy?.state === "copying") && (t.phase === "restored" || (t.phase === "restoring" && restoringHere && f.alive.has(t.name)));
  const adoptable = (t: Target): boolean => restoringHere && t.phase === "restoring" && f.alive.has(t.name) && t.lazy === undefined;
  return {
    action: "restore",
    sameBoot,
    killLeftovers: sameBoot ? m.targets.filter((t) => t.phase === "dumped" || t.phase === "killing").map((t) => t.name) : [],
    adopt: pending.filter(adoptable).map((t) => t.name),
    restore: pending.filter((t) => !adoptable(t) && !lazyUnfinished(t)).map((t) => t.name),
    lazyUnfinished: m.targets.filter(lazyUnfinished).map((t) => t.name),
    unloadKernel: sameBoot && unloadKernel,
  };
}
