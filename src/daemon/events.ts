/**
 * One vocabulary for progress: engine and transaction events become the daemon's progress
 * events (streamed to `nvwa update`) and lines in the update log that survives the jump.
 */
import type { EngineEvent } from "../criu/events.ts";
import type { TransactionEvent } from "../update/transaction.ts";
import type { ProgressEvent } from "./protocol.ts";
import type { LineSink } from "./update-log.ts";

export function fromTransaction(e: TransactionEvent): ProgressEvent {
  switch (e.type) {
    case "step-start":
      return { kind: "phase", phase: e.step, message: `${e.step}…` };
    case "step-done":
      return { kind: "phase", phase: e.step, ms: e.ms, message: `${e.step} done` };
    case "step-failed":
      return { kind: "phase", phase: e.step, ms: e.ms, level: "error", message: `${e.step} failed: ${e.error.message}` };
    case "undo-start":
      return { kind: "phase", phase: `undo ${e.step}`, level: "warn", message: `rolling back ${e.step}…` };
    case "undo-done":
      return { kind: "phase", phase: `undo ${e.step}`, ms: e.ms, level: "warn", message: `rolled back ${e.step}` };
    case "undo-failed":
      return { kind: "phase", phase: `undo ${e.step}`, ms: e.ms, level: "error", message: `could not roll back ${e.step}: ${e.error.message}` };
  }
}

export function fromEngine(e: EngineEvent): ProgressEvent {
  switch (e.type) {
    case "target-dumping":
      return { kind: "target", target: e.name, message: `${e.name}: freezing and dumping (pid ${e.pid})` };
    case "target-dumped":
      return { kind: "target", target: e.name, ms: e.ms, message: `${e.name}: dumped ${e.pids} process(es), ${(e.bytes / 2 ** 20).toFixed(1)} MiB in ${e.ms} ms` };
    case "target-dump-failed":
      return { kind: "target", target: e.name, level: "error", message: `${e.name}: dump failed: ${e.error.message}` };
    case "rollback-start":
      return { kind: "log", level: "warn", message: `resuming ${e.names.join(", ") || "nothing"}` };
    case "target-resumed":
      return { kind: "target", target: e.name, ms: e.ms, level: "warn", message: `${e.name}: running again (${e.how === "sigcont" ? "resumed" : "restored from its images"})` };
    case "target-resume-failed":
      return { kind: "target", target: e.name, level: "error", message: `${e.name}: could not be resumed: ${e.error.message}` };
    case "images-synced":
      return { kind: "log", ms: e.ms, message: `images on disk (${(e.bytes / 2 ** 20).toFixed(1)} MiB synced in ${e.ms} ms)` };
    case "target-killed":
      return { kind: "target", target: e.name, ms: e.ms, message: `${e.name}: stopped for the jump` };
    case "target-restoring":
      return { kind: "target", target: e.name, message: `${e.name}: restoring (pid ${e.pid})` };
    case "target-restored":
      return { kind: "target", target: e.name, ms: e.ms, message: `${e.name}: restored (pid ${e.pid}) in ${e.ms} ms` };
    case "target-restore-failed":
      return { kind: "target", target: e.name, level: "error", message: `${e.name}: restore failed: ${e.error.message}` };
    case "target-skipped":
      return { kind: "target", target: e.name, level: "error", message: `${e.name}: skipped: ${e.error.message}` };
    case "target-lazy-done":
      return { kind: "target", target: e.name, ms: e.ms, message: `${e.name}: all of its memory is back, ${e.ms} ms after it ran again (lazy restore)` };
    case "target-lazy-lost":
      // The message names the target itself ("<name> is damaged: …").
      return { kind: "target", target: e.name, level: "error", message: e.error.message };
    case "ns-last-pid":
      return { kind: "log", level: "debug", message: `ns_last_pid ${e.before} → ${e.after}` };
    case "note":
      return { kind: "log", level: e.level, message: e.message };
  }
}

/** Sends an event to the client (if any) and to the update log (always; before it exists, journalOnly). */
export function fanOut(log: LineSink | null, emit: ((e: ProgressEvent) => void) | null): (e: ProgressEvent) => void {
  return (e) => {
    log?.write(e.level ?? "info", e.message, { ...(e.phase ? { phase: e.phase } : {}), ...(e.target ? { target: e.target } : {}), ...(e.ms === undefined ? {} : { ms: e.ms }) });
    // Phase boundaries are fsynced: the log must tell what happened up to a crash or the jump.
    if (e.kind === "phase") log?.sync();
    try {
      emit?.(e);
    } catch {
      // The client went away; the update goes on and its log is on disk.
    }
  };
}
