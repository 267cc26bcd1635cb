/**
 * One `criu restore` of one target's images, with the options its dump used (kept in the
 * manifest). Shared by the boot-time restore (src/restore/) and by the rollback of a tree whose
 * TCP connections criu left locked (src/update/rollback.ts).
 */
import { readFileSync } from "node:fs";
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

export async function runRestore(t: Target, o: RunRestoreOptions): Promise<RestoreRun> {
  const run = await runCriuOk({
    exe: o.criuExe,
    argv: restoreArgvFor(t, o),
    env: criuEnv({ hardwareBreakpoints: o.options.hardwareBreakpoints }),
    action: "restore",
    target: targetLabel(t),
    logPath: join(t.imagesDir, RESTORE_LOG),
    outDir: t.imagesDir,
    timeoutMs: o.timeoutMs ?? 10 * 60_000,
    ...(o.onNote === undefined ? {} : { onNote: o.onNote }),
  });
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
  const stats = parseRestoreStats(run.stdout);
  return { rootPid, ms: run.ms, ...(stats === null ? {} : { stats }) };
}

function readFileSyncOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
