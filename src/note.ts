/**
 * A plain message from a domain module (a warning, a decision worth a line, a debug trace),
 * handed to whoever called it. Only the daemon (src/daemon/events.ts → the update log, the
 * journal and the client) and the CLI render notes; a domain module never logs by itself, so
 * each thing is said once. Engine events (src/criu/events.ts) include notes.
 */
export type NoteLevel = "debug" | "info" | "warn" | "error";

export interface Note {
  type: "note";
  level: NoteLevel;
  message: string;
}

export type OnNote = (n: Note) => void;

export const ignoreNotes: OnNote = () => {};

export function note(level: NoteLevel, message: string): Note {
  return { type: "note", level, message };
}
