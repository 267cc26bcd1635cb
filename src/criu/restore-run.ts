/**
 * One `criu restore` of one target's images, with the options its dump used (kept in the
 * manifest). Shared by the boot-time restore (src/restore/) and by the rollback of a tree whose
 * TCP connections criu left locked (src/update/rollback.ts).
 *
 * A target with journal streams (src/criu/journal.ts) gets fresh ones: nvwa connects to
 * journald, writes the header systemd wrote for the old stream, and hands the socket to criu as
 * fd 3, 4, … (`--inherit-fd fd[3]:socket:[INO]`). Left to itself criu would reconnect by path
 * without a header (--ext-unix-sk), and journald drops such a stream: so after the restore the
 * process's fd is checked to be the socket nvwa made.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { closeFd, connectStream } from "../../ffi/unix.ts";
import { JOURNAL_STDOUT, streamHeader } from "../systemd/journal-stream.ts";
import { putBackHeldFiles } from "./held-files.ts";
import { socketInode } from "./journal.ts";
import { join } from "node:path";
import { NvwaError } from "../errors.ts";
import type { OnNote } from "../note.ts";
import type { ManifestOptions, RestoreStats, Target } from "../state/manifest.ts";
import { criuEnv, RESTORE_LOG, restoreArgv, type ManageCgroups } from "./argv.ts";
import { parseRestoreStats } from "./log.ts";
import { readProc } from "./proc.ts";
import { runCriuOk } from "./runner.ts";

export interface RunRestoreOptions {
  criuExe: string;
  options: ManifestOptions;
  /** Default true. */
  detached?: boolean;
  pidfile?: string;
  manageCgroups?: ManageCgroups;
  inheritFds?: readonly { fd: number; resource: string }[];
  extraArgs?: readonly string[];
  timeoutMs?: number;
  /** Told criu's command line (a debug note). */
  onNote?: OnNote;
}

export interface RestoreRun {
  rootPid: number;
  ms: number;
  stats?: RestoreStats;
}

export function targetLabel(t: Pick<Target, "kind" | "name" | "rootPid">): string {
  return t.kind === "pid" ? `pid ${t.rootPid}` : `${t.name} (pid ${t.rootPid})`;
}

/** Pure: the restore command line for a target recorded in the manifest. */
export function restoreArgvFor(t: Pick<Target, "imagesDir" | "shellJob">, o: RunRestoreOptions): string[] {
  return restoreArgv({
    imagesDir: t.imagesDir,
    shellJob: t.shellJob,
    tcpEstablished: o.options.tcpEstablished,
    ...(o.options.networkLock === undefined ? {} : { networkLock: o.options.networkLock }),
    extUnixSk: o.options.extUnixSk,
    fileLocks: o.options.fileLocks,
    pinMemory: o.options.pinMemory,
    ...(o.options.debug ? { verbosity: 4 } : {}),
    displayStats: true,
    detached: o.detached ?? true,
    ...(o.pidfile === undefined ? {} : { pidfile: o.pidfile }),
    ...(o.manageCgroups === undefined ? {} : { manageCgroups: o.manageCgroups }),
    ...(o.inheritFds === undefined ? {} : { inheritFds: o.inheritFds }),
    ...(o.extraArgs === undefined ? {} : { extra: o.extraArgs }),
  });
}

/** The first fd criu inherits: 0-2 are its stdio. */
const FIRST_PASSED_FD = 3;

/** Fresh journal streams for the target, opened and headed; closed by the caller. */
function openJournalStreams(t: Target): { fd: number; ino: number; oldIno: number; fds: number[] }[] {
  const opened: { fd: number; ino: number; oldIno: number; fds: number[] }[] = [];
  try {
    for (const s of t.journalStreams ?? []) {
      const fd = connectStream(JOURNAL_STDOUT, streamHeader(s.header));
      opened.push({ fd, ino: socketInode(readlinkSync(`/proc/self/fd/${fd}`)) ?? -1, oldIno: s.ino, fds: s.fds });
    }
    return opened;
  } catch (e) {
    for (const o of opened) closeFd(o.fd);
    throw new NvwaError("restore.journal-connect", `cannot open a journal stream for ${targetLabel(t)}: ${e instanceof Error ? e.message : String(e)}`, {
      hint: `journald must be listening on ${JOURNAL_STDOUT} (systemd-journald.socket) before nvwa restores services`,
      cause: e,
    });
  }
}

export async function runRestore(t: Target, o: RunRestoreOptions): Promise<RestoreRun> {
  try {
    putBackHeldFiles(t.heldFiles ?? [], t.imagesDir);
  } catch (e) {
    throw new NvwaError("restore.held-files", `cannot put back the tmpfs files ${targetLabel(t)} held open: ${e instanceof Error ? e.message : String(e)}`, {
      hint: `their copies are in ${t.imagesDir} (held-file-*); see the manifest's heldFiles for where each belongs`,
      cause: e,
    });
  }
  const streams = openJournalStreams(t);
  const inherit = streams.map((s, i) => ({ fd: FIRST_PASSED_FD + i, resource: `socket:[${s.oldIno}]` }));
  let run: Awaited<ReturnType<typeof runCriuOk>>;
  try {
    run = await runCriuOk({
      exe: o.criuExe,
      argv: restoreArgvFor(t, { ...o, ...(inherit.length === 0 ? {} : { inheritFds: [...(o.inheritFds ?? []), ...inherit] }) }),
      env: criuEnv({ hardwareBreakpoints: o.options.hardwareBreakpoints }),
      action: "restore",
      target: targetLabel(t),
      logPath: join(t.imagesDir, RESTORE_LOG),
      outDir: t.imagesDir,
      timeoutMs: o.timeoutMs ?? 10 * 60_000,
      ...(streams.length === 0 ? {} : { passFds: streams.map((s) => s.fd) }),
      ...(o.onNote === undefined ? {} : { onNote: o.onNote }),
    });
  } finally {
    // criu holds its own copies until it exits; the restored process keeps its own.
    for (const s of streams) closeFd(s.fd);
  }
  let rootPid = t.rootPid;
  if (o.pidfile !== undefined) {
    const fromFile = Number(readFileSyncOrEmpty(o.pidfile).trim());
    if (Number.isInteger(fromFile) && fromFile > 0) rootPid = fromFile;
  }
  const p = readProc(rootPid);
  if ((o.detached ?? true) && (p === null || p.state === "Z")) {
    throw new NvwaError("criu.restore-failed", `criu restored ${targetLabel(t)} but the process is gone right after`, {
      hint: `it exited on its own after the restore; read ${join(t.imagesDir, RESTORE_LOG)} and the program's own log`,
      details: { target: t.name, pid: rootPid },
    });
  }
  for (const s of streams) {
    const fd = s.fds[0] ?? 1;
    const got = socketInode(readLinkOrNull(`/proc/${rootPid}/fd/${fd}`));
    if (got !== s.ino) {
      throw new NvwaError("restore.journal-stream-lost", `${targetLabel(t)} was restored, but its fd ${fd} is not the journal stream nvwa opened (socket:[${s.ino}], found ${got === null ? "none" : `socket:[${got}]`})`, {
        hint: `its output would be lost; read ${join(t.imagesDir, RESTORE_LOG)} (--inherit-fd) and report it`,
        details: { target: t.name, pid: rootPid, fd },
      });
    }
  }
  const stats = parseRestoreStats(run.stdout);
  return { rootPid, ms: run.ms, ...(stats === null ? {} : { stats }) };
}

function readLinkOrNull(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

function readFileSyncOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
