/**
 * Fault points: named moments of the update and of the boot-side restore where a test can hold
 * the daemon still, so that it cuts the power or kills the daemon exactly there and proves what
 * nvwa does next (test/guest/scenarios/faults). A crash between two manifest writes is otherwise
 * a matter of luck to hit.
 *
 * Inert unless $NVWA_FAULT_PAUSE (set on nvwa.service by the test, never by the package) names the
 * point in its comma-separated list, as `point` or `point@<kernel release>` (only on that kernel:
 * a test can hold the restore after the jump without holding the one after a later power cut,
 * which boots the old kernel with the same unit file). Each point pauses once per boot: it writes
 * <dir>/<point>.paused and waits for <dir>/<point>.go, where <dir> is $NVWA_FAULT_DIR or
 * /run/nvwa/faults (tmpfs: a new boot starts clean, a restarted daemon does not pause again).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";

export type FaultPoint =
  /** Before the dump of the second target: the first one is frozen, the second not yet. */
  | "before-dump-2"
  /** The commit: the trees are killed, their "killed" phase not yet written. */
  | "after-kill"
  /** After the jump: the bare processes are restored, the services not yet. */
  | "after-pids-restored"
  /** enable_pre_dump: the first target's first round is written, the tree runs, nothing is frozen. */
  | "after-pre-dump-1"
  /** The first container is checkpointed (stopped by podman), the next not yet. */
  | "after-container-1";

export async function faultPoint(point: FaultPoint, env: Record<string, string | undefined> = process.env): Promise<void> {
  const kernel = release();
  const wanted = (env.NVWA_FAULT_PAUSE ?? "").split(",").map((s) => s.trim());
  if (!wanted.some((w) => w === point || w === `${point}@${kernel}`)) return;
  const dir = env.NVWA_FAULT_DIR ?? "/run/nvwa/faults";
  const paused = join(dir, `${point}.paused`);
  if (existsSync(paused)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(paused, `${process.pid}\n`);
  const go = join(dir, `${point}.go`);
  while (!existsSync(go)) await Bun.sleep(100);
}

export type FaultKill =
  /** criu's lazy-pages daemon of a target, right after its tree runs again (mid-copy). */
  "lazy-pages";

/**
 * Test-only: SIGKILL `pid` when $NVWA_FAULT_KILL (comma-separated, set like NVWA_FAULT_PAUSE by a
 * test's drop-in) names `<what>:<target name>`. The kill and everything after it are real; only
 * its moment is chosen, because a copy that takes a second under load cannot be hit by hand.
 */
export function faultKill(what: FaultKill, target: string, pid: number, env: Record<string, string | undefined> = process.env): boolean {
  const wanted = (env.NVWA_FAULT_KILL ?? "").split(",").map((s) => s.trim());
  if (!wanted.includes(`${what}:${target}`)) return false;
  try {
    process.kill(pid, "SIGKILL");
    return true;
  } catch {
    return false;
  }
}
