/**
 * A service's journal streams (StandardOutput=/StandardError= journal, kmsg, …: the default of
 * every unit), kept across the jump. Before the dump: which of the main process's stdout and
 * stderr are journal streams, their socket inodes (the service's own end: criu's
 * `--external unix[INO]` names it, and `--inherit-fd fd[N]:socket:[INO]` matches it at restore)
 * and the header systemd wrote at their start, rebuilt from the unit's properties as
 * src/core/execute.c connect_logger_as() builds it. The old stream ends with the old kernel; the
 * restore gets a fresh one (src/criu/restore-run.ts). Pure.
 */
import { basename } from "node:path";
import type { StreamHeader } from "../systemd/journal-stream.ts";
import { JOURNAL_OUTPUT } from "../systemd/preflight.ts";
import type { ServiceProperties } from "../systemd/units.ts";

export interface JournalStream {
  /** The service's end of the stream, as /proc/<pid>/fd/N shows it (socket:[INO]). */
  ino: number;
  /** Which of the main process's fds (1, 2) hold it. */
  fds: number[];
  header: StreamHeader;
}

/** socket:[123] → 123; anything else (a file, a pipe, unreadable) → null. */
export function socketInode(link: string | null): number | null {
  const m = link === null ? null : /^socket:\[(\d+)\]$/.exec(link);
  return m === null ? null : Number(m[1]);
}

/** The header systemd writes for one output setting of the unit. */
export function headerFor(p: ServiceProperties, output: string): StreamHeader {
  return {
    identifier: p.syslogIdentifier !== "" ? p.syslogIdentifier : p.execStartPath === "" ? "" : basename(p.execStartPath),
    unit: p.unit,
    priority: p.syslogPriority,
    levelPrefix: p.syslogLevelPrefix,
    forwardToKmsg: output.startsWith("kmsg"),
    forwardToConsole: output.endsWith("+console"),
  };
}

/**
 * The journal streams of a service from its output settings and what its main process's fds 1
 * and 2 are. StandardError=inherit (the default) or the same setting as StandardOutput gives one
 * stream on both fds (systemd dup2()s it); different journal settings give two.
 */
export function journalStreamsOf(p: ServiceProperties, links: { stdout: string | null; stderr: string | null }): JournalStream[] {
  const out: JournalStream[] = [];
  const add = (fd: number, setting: string, link: string | null): void => {
    const ino = socketInode(link);
    if (!JOURNAL_OUTPUT.has(setting) || ino === null) return;
    const same = out.find((s) => s.ino === ino);
    if (same !== undefined) same.fds.push(fd);
    else out.push({ ino, fds: [fd], header: headerFor(p, setting) });
  };
  add(1, p.standardOutput, links.stdout);
  add(2, p.standardError === "inherit" ? p.standardOutput : p.standardError, links.stderr);
  return out;
}
