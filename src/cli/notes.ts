/**
 * The CLI's side of domain notes (src/note.ts): a command that calls domain code in its own
 * process (init, check --rehearse) shows what that code reports, on stderr like all progress.
 */
import type { EngineEvent } from "../criu/events.ts";
import { log } from "../log.ts";
import type { Note } from "../note.ts";

export function renderNote(n: Note): void {
  if (n.level === "error") log.error(n.message);
  else if (n.level === "warn") log.warn(n.message);
  else if (n.level === "debug") log.debug(n.message);
  else log.info(n.message);
}

/** For engine callers: notes are shown, the other events are summed up by the command itself. */
export function renderEngineNotes(e: EngineEvent): void {
  if (e.type === "note") renderNote(e);
}
