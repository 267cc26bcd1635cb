/**
 * A stop of nvwa.service (SIGTERM: `systemctl stop nvwa`, or a shutdown someone started) in the
 * middle of an update. Before the commit, exiting would leave the targets frozen and the new
 * kernel loaded, so that the next `systemctl reboot` kexecs into it with nothing checkpointed:
 * instead the update stops at its next step and rolls back, and the daemon exits after that.
 * From the commit on, the update is the jump's; a stop then is the jump's own shutdown.
 *
 * One daemon process runs one update at a time, so this is module state.
 */
import { NvwaError } from "../errors.ts";

const state = { preCommit: false, committed: false, stop: null as string | null };

/** The update's transaction began (true) or ended (false). */
export function setPreCommit(on: boolean): void {
  state.preCommit = on;
  state.committed = false;
  if (!on) state.stop = null;
}

/** The running update reached its commit: from here a stop is the jump's, and the daemon need not wait. */
export function isCommitted(): boolean {
  return state.committed;
}

/** Asks a running update to roll back at its next step. True when one will; false when none is before its commit. */
export function requestStop(reason: string): boolean {
  if (!state.preCommit) return false;
  state.stop = reason;
  return true;
}

/**
 * The transaction's check before each step: an error to fail that step with (so the steps done so
 * far are undone), or null. Passing "commit" ends the window in which a stop means a rollback.
 */
export function interruptBefore(next: string): NvwaError | null {
  if (!state.preCommit) return null;
  if (state.stop !== null) {
    return new NvwaError("update.stopped", `nvwa.service was stopped (${state.stop}) before the update's commit`, {
      hint: "the update was rolled back, every target runs as before; run it again when nothing is stopping the daemon",
    });
  }
  if (next === "commit") {
    state.preCommit = false;
    state.committed = true;
  }
  return null;
}
