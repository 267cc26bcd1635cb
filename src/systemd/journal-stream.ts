/**
 * journald's stdout stream protocol (systemd src/journal/journald-stream.c, the client side being
 * src/core/execute.c connect_logger_as): a client's first bytes are seven newline-terminated
 * lines, then its output. A restored service gets a fresh stream through criu's --inherit-fd (its
 * old one ended with the old kernel), and that stream must start with the header its unit's
 * first one had. journald drops a stream whose priority or booleans do not parse, and takes a
 * setup line of 256 bytes or more as unterminated (STDOUT_STREAM_SETUP_PROTOCOL_LINE_MAX), so
 * the values are checked here rather than found out when the service's lines vanish. Pure.
 */
import { NvwaError } from "../errors.ts";

/** What systemd wrote at the start of a service's stream (defaults: LOG_DAEMON|LOG_INFO, level prefix on). */
export interface StreamHeader {
  /** SyslogIdentifier=, or the basename of ExecStart's binary. */
  identifier: string;
  /** The unit the stream belongs to; journald takes it from a root client only, as a fallback when the writer's cgroup is unknown. */
  unit: string;
  /** facility|level, 0..999 (default 30). */
  priority: number;
  levelPrefix: boolean;
  forwardToKmsg: boolean;
  forwardToConsole: boolean;
}

export const JOURNAL_STDOUT = "/run/systemd/journal/stdout";
const LINE_MAX = 255;

function line(name: string, value: string): string {
  if (value.includes("\n") || value.includes("\0")) throw new NvwaError("journal.header", `the journal stream's ${name} contains a newline or NUL`, { hint: "journald reads the header line by line; this is a bug in nvwa or a damaged manifest" });
  if (Buffer.byteLength(value) > LINE_MAX) throw new NvwaError("journal.header", `the journal stream's ${name} is ${Buffer.byteLength(value)} bytes; journald takes at most ${LINE_MAX}`, { hint: "shorten SyslogIdentifier= of the unit" });
  return `${value}\n`;
}

/** Pure: the header's bytes, exactly as connect_logger_as() writes them. */
export function streamHeader(h: StreamHeader): Uint8Array {
  if (!Number.isInteger(h.priority) || h.priority < 0 || h.priority > 999) {
    throw new NvwaError("journal.header", `the journal stream's priority ${h.priority} is not 0..999`, { hint: "check SyslogFacility= and SyslogLevel= of the unit" });
  }
  const b = (x: boolean): string => (x ? "1" : "0");
  const text = [
    line("identifier", h.identifier),
    line("unit", h.unit),
    `${h.priority}\n`,
    `${b(h.levelPrefix)}\n`,
    // forward_to_syslog: systemd always sends 0.
    "0\n",
    `${b(h.forwardToKmsg)}\n`,
    `${b(h.forwardToConsole)}\n`,
  ].join("");
  return new TextEncoder().encode(text);
}

/**
 * Pure: journald's own record of a stream, /run/systemd/journal/streams/<dev>:<ino> (an env file
 * it marks private; keys PRIORITY, LEVEL_PREFIX, FORWARD_TO_*, IDENTIFIER, UNIT, values
 * C-escaped), as a header; null when a needed key is missing or malformed (then the unit's
 * properties are the fallback).
 */
export function parseStreamRecord(text: string, unit: string): StreamHeader | null {
  const kv = new Map<string, string>();
  for (const raw of text.split("\n")) {
    if (raw.startsWith("#") || !raw.includes("=")) continue;
    const i = raw.indexOf("=");
    kv.set(raw.slice(0, i), unescapeC(raw.slice(i + 1)));
  }
  const int = (k: string): number | null => (/^\d+$/.test(kv.get(k) ?? "") ? Number(kv.get(k)) : null);
  const bool = (k: string): boolean | null => (kv.get(k) === "1" ? true : kv.get(k) === "0" ? false : null);
  const priority = int("PRIORITY");
  const levelPrefix = bool("LEVEL_PREFIX");
  const forwardToKmsg = bool("FORWARD_TO_KMSG");
  const forwardToConsole = bool("FORWARD_TO_CONSOLE");
  if (priority === null || levelPrefix === null || forwardToKmsg === null || forwardToConsole === null) return null;
  return { identifier: kv.get("IDENTIFIER") ?? "", unit: kv.get("UNIT") ?? unit, priority, levelPrefix, forwardToKmsg, forwardToConsole };
}

/** systemd's cescape() undone: \\n \\t \\\\ \\" \\' and \\xHH. */
function unescapeC(s: string): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|[ntr\\"'abfv])/g, (_m, e: string) => {
    if (e.startsWith("x")) return String.fromCharCode(parseInt(e.slice(1), 16));
    const map: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", '"': '"', "'": "'", a: "\x07", b: "\b", f: "\f", v: "\v" };
    return map[e] ?? e;
  });
}
