/**
 * Process facts from /proc: what a target's tree is made of (every process and thread), its
 * session, whether it is a kernel thread, and who holds a given pid. Parsing is pure
 * (parseStat, treeOf); reading is not.
 */
import { readTextOrNull } from "../read-text.ts";
import { readdirSync } from "node:fs";

/** include/linux/sched.h */
const PF_KTHREAD = 0x00200000;

export interface ProcInfo {
  pid: number;
  comm: string;
  /** R, S, D, T, t, Z, ... */
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  /** Controlling terminal (0: none). */
  ttyNr: number;
  /** Clock ticks since boot: (pid, startTime) names a process even after its pid is reused. */
  startTime: number;
  kernelThread: boolean;
  cmdline: string[];
  /** Thread ids, the leader included. */
  tids: number[];
}

export interface StatFields {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  ttyNr: number;
  flags: number;
  startTime: number;
}

/** Pure: /proc/<pid>/stat. The comm may contain spaces and parentheses: split at the last ")". */
export function parseStat(text: string): StatFields | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  const rest = text.slice(close + 2).trim().split(/\s+/);
  const n = (i: number): number => Number(rest[i]);
  const f: StatFields = {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: rest[0] ?? "?",
    ppid: n(1),
    pgid: n(2),
    sid: n(3),
    ttyNr: n(4),
    flags: n(6),
    startTime: n(19),
  };
  return Number.isInteger(f.pid) && Number.isFinite(f.startTime) ? f : null;
}

/** Pure: NUL-separated /proc/<pid>/cmdline → argv. */
export function parseCmdline(raw: string): string[] {
  const parts = raw.split("\0");
  if (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

function numericEntries(dir: string): number[] {
  try {
    return readdirSync(dir)
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/** One process (thread-group leader), or null when it does not exist (any more). */
export function readProc(pid: number): ProcInfo | null {
  const stat = readTextOrNull(`/proc/${pid}/stat`);
  if (stat === null) return null;
  const f = parseStat(stat);
  if (f === null) return null;
  const tids = numericEntries(`/proc/${pid}/task`);
  return {
    pid: f.pid,
    comm: f.comm,
    state: f.state,
    ppid: f.ppid,
    pgid: f.pgid,
    sid: f.sid,
    ttyNr: f.ttyNr,
    startTime: f.startTime,
    kernelThread: (f.flags & PF_KTHREAD) !== 0,
    cmdline: parseCmdline(readTextOrNull(`/proc/${pid}/cmdline`) ?? ""),
    tids: tids.length > 0 ? tids : [f.pid],
  };
}

/** Every process on the machine, by pid. */
export function snapshotProcesses(): Map<number, ProcInfo> {
  const out = new Map<number, ProcInfo>();
  for (const pid of numericEntries("/proc")) {
    const p = readProc(pid);
    if (p !== null) out.set(pid, p);
  }
  return out;
}

export interface Tree {
  /** Thread-group leaders: the root first, then descendants in pid order. */
  processes: number[];
  /** Every pid and tid of the tree, sorted. */
  pids: number[];
}

/** Pure: the tree rooted at `root` (children by ppid, recursively) with every thread. */
export function treeOf(root: number, procs: ReadonlyMap<number, Pick<ProcInfo, "pid" | "ppid" | "tids">>): Tree {
  const children = new Map<number, number[]>();
  for (const p of procs.values()) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const processes: number[] = [];
  if (!procs.has(root)) return { processes, pids: [] };
  const queue = [root];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    processes.push(pid);
    for (const c of (children.get(pid) ?? []).sort((a, b) => a - b)) queue.push(c);
  }
  const pids = new Set<number>();
  for (const pid of processes) for (const t of procs.get(pid)?.tids ?? [pid]) pids.add(t);
  return { processes, pids: [...pids].sort((a, b) => a - b) };
}

/** The tree of `root` as it is right now. */
export function currentTree(root: number): Tree {
  return treeOf(root, snapshotProcesses());
}

/**
 * Who holds `pid` right now: the command name of the process owning it (a thread id counts as
 * taken by its process), "zombie <comm>" for an unreaped one, or null when the pid is free.
 */
export function pidHolder(pid: number): string | null {
  const status = readTextOrNull(`/proc/${pid}/status`);
  if (status === null) return null;
  const tgid = Number(/^Tgid:\s*(\d+)/m.exec(status)?.[1] ?? pid);
  const name = /^Name:\s*(.*)$/m.exec(tgid === pid ? status : (readTextOrNull(`/proc/${tgid}/status`) ?? status))?.[1]?.trim() ?? "?";
  const zombie = /^State:\s*Z/m.test(status);
  return zombie ? `zombie ${name}` : name;
}

/** Is this exact process (pid + start time) still there? */
export function sameProcess(pid: number, startTime: number | undefined): boolean {
  const p = readProc(pid);
  if (p === null || p.state === "Z") return false;
  return startTime === undefined || p.startTime === startTime;
}
