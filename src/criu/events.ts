/**
 * Progress of the checkpoint engine, streamed through an `onEvent` callback so the daemon can
 * forward it to the client as it happens (and tests can see the order of things).
 */
import type { Note } from "../note.ts";
import type { DumpStats, ErrorRecord, RestoreStats } from "../state/manifest.ts";

export type EngineEvent =
  | { type: "target-dumping"; name: string; pid: number }
  | { type: "target-dumped"; name: string; pid: number; ms: number; bytes: number; pids: number; stats?: DumpStats }
  | { type: "target-dump-failed"; name: string; error: ErrorRecord }
  | { type: "rollback-start"; names: string[] }
  | { type: "target-resumed"; name: string; how: ResumeHow; ms: number }
  | { type: "target-resume-failed"; name: string; error: ErrorRecord }
  | { type: "images-synced"; ms: number; bytes: number }
  | { type: "target-killed"; name: string; pids: number; ms: number }
  | { type: "target-restoring"; name: string; pid: number }
  | { type: "target-restored"; name: string; pid: number; ms: number; stats?: RestoreStats }
  | { type: "target-restore-failed"; name: string; error: ErrorRecord }
  | { type: "target-skipped"; name: string; error: ErrorRecord }
  /** Lazy restore: the last page of the target's memory is in, `ms` after it ran again. */
  | { type: "target-lazy-done"; name: string; ms: number }
  /** Lazy restore: the daemon ended early; the tree was killed (src/restore/lazy.ts). */
  | { type: "target-lazy-lost"; name: string; error: ErrorRecord }
  | { type: "ns-last-pid"; before: number; after: number }
  | Note;

/**
 * How a frozen tree was given back on rollback: "sigcont" (it just continues) or "restore"
 * (killed and restored from the images just written, because criu left its TCP sockets in
 * repair mode behind a network lock that only a criu restore undoes).
 */
export type ResumeHow = "sigcont" | "restore";

export type OnEvent = (e: EngineEvent) => void;

export const ignoreEvents: OnEvent = () => {};
