/**
 * Reading what criu wrote: the last meaningful lines of dump.log / restore.log for error
 * messages, and the numbers `--display-stats` prints on stdout (criu/stats.c, display_stats()).
 * Pure.
 */
import type { DumpStats, RestoreStats } from "../state/manifest.ts";

/**
 * Lines criu writes on every run on some machines, which say nothing about why a run failed:
 * they must not push the real cause out of an error message.
 */
const NOISE: readonly RegExp[] = [
  /rlimit: Can't setup RLIMIT_NOFILE for self/,
  /Can't keep kdat cache on non-tempfs/,
  /Hardware breakpoints don't seem to work/,
  /Dirty tracking is OFF/,
  // A process or mapping new since the last pre-dump is dumped in full: criu says so as an Error.
  /No parent image found, though parent directory is set/,
  /^\s*$/,
];

/** criu log lines carry a "(00.012345) " timestamp at -v3 and up, and a "pid: " prefix in tasks. */
function strip(line: string): string {
  return line.replace(/^\(\s*\d+\.\d+\)\s*/, "").replace(/^\s*\d+:\s+(?=(Error|Warn))/, "").trimEnd();
}

/**
 * The last `max` lines that explain a failure: criu's Error lines, in log order, without
 * timestamps and without known noise; when criu wrote no Error, the last non-empty lines.
 */
export function meaningfulLines(log: string, max = 5): string[] {
  const lines = log.split("\n").map(strip).filter((l) => !NOISE.some((re) => re.test(l)));
  const errors = lines.filter((l) => /^Error\b|\bError \(/.test(l));
  return (errors.length > 0 ? errors : lines).slice(-max);
}

/** criu's error lines that only pass a failure up ("... failed with -1", "Dumping FAILED."). */
const PROPAGATION: readonly RegExp[] = [/failed with -?\d+\s*$/, /(Dumping|Restoring|Pre-dumping) FAILED/, /^Error \([^)]*\):\s*$/];

/**
 * Errors of the disk under criu_dir: criu reports them late (when it flushes a buffer), after
 * the generic error of the step that was writing, but they are the reason.
 */
const DECISIVE: readonly RegExp[] = [/No space left on device/, /Disk quota exceeded/, /Read-only file system/, /Input\/output error/];

/**
 * The line that says why, in words for people: the first meaningful line that is not a mere
 * propagation, without criu's "Error (criu/file.c:123): " prefix.
 */
export function rootCause(lines: readonly string[]): string | undefined {
  const cause =
    lines.find((l) => DECISIVE.some((re) => re.test(l))) ?? lines.find((l) => !PROPAGATION.some((re) => re.test(l))) ?? lines[lines.length - 1];
  return cause?.replace(/^(Error|Warn)\s*\([^)]*\):\s*/, "").trim();
}

function num(text: string, label: string): number | undefined {
  const re = new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\s*(\\d+)`, "m");
  const m = re.exec(text);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

function compact<T extends Record<string, number | undefined>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** "Freezing time: 321 us" etc. → DumpStats; null when criu printed no dump stats. */
export function parseDumpStats(stdout: string): DumpStats | null {
  if (!/Displaying dump stats:/.test(stdout)) return null;
  return compact({
    freezingUs: num(stdout, "Freezing time"),
    frozenUs: num(stdout, "Frozen time"),
    memdumpUs: num(stdout, "Memory dump time"),
    memwriteUs: num(stdout, "Memory write time"),
    pagesScanned: num(stdout, "Memory pages scanned"),
    pagesSkippedParent: num(stdout, "Memory pages skipped from parent"),
    pagesWritten: num(stdout, "Memory pages written"),
  });
}

export function parseRestoreStats(stdout: string): RestoreStats | null {
  if (!/Displaying restore stats:/.test(stdout)) return null;
  return compact({
    restoreUs: num(stdout, "Restore time"),
    forkingUs: num(stdout, "Forking time"),
    pagesRestored: num(stdout, "Pages restored"),
  });
}

/** criu's well-known failures, recognised in its log, with what to do about each. */
export function hintForLog(lines: readonly string[]): string | undefined {
  const text = lines.join("\n");
  if (/Can't fork for \d+: File exists/.test(text)) {
    return "a pid of the tree is taken by another process; restore earlier in boot, or free that pid";
  }
  if (/Can't get 1:(16|34) opt: Operation not supported/.test(text)) {
    return "this criu cannot dump INET sockets on Linux 6.16 and later (SO_PASSCRED/SO_PASSSEC, criu issue #2705); use criu 4.2 or newer";
  }
  if (/No space left on device|ENOSPC/.test(text)) return "free space on the filesystem holding criu_dir, or move criu_dir";
  if (/Connected TCP socket|--tcp-established|TCP connection/.test(text)) {
    return "the tree has established TCP connections; nvwa passes --tcp-established, check the network lock method";
  }
  if (/iptables-restore|iptables.*(failed|not found)/.test(text)) {
    return "criu locks TCP connections with iptables-restore, which is missing; install iptables or use a criu with nftables support";
  }
  if (/External socket is used|unix socket.*external|Can't dump half of stream unix connection/.test(text)) {
    return "a unix socket leads outside the tree (e.g. journald's stdout stream); log to a file (StandardOutput=file:...) instead";
  }
  if (/bad build-ID|Build-ID/.test(text)) {
    return "a mapped file changed on disk since the dump (package upgraded?); restore before upgrading userspace";
  }
  if (/Unable to seize|Can't attach|ptrace/.test(text)) return "another tracer (gdb, strace) is attached to the tree; detach it";
  return undefined;
}
