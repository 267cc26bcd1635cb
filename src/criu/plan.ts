/**
 * What a checkpoint will do, decided from the config and probed facts without touching
 * anything: which trees, which pids, the criu command line for each, and every reason it
 * cannot work. Pure; src/criu/facts.ts gathers the facts, src/update/checkpoint.ts executes.
 */
import { join } from "node:path";
import type { NvwaConfig } from "../config/types.ts";
import { ExitCode, NvwaError } from "../errors.ts";
import { TARGET_NAME, type ManifestOptions } from "../state/manifest.ts";
import { criuEnv, dumpArgv, type NetworkLock } from "./argv.ts";
import type { JournalStream } from "./journal.ts";
import { treeOf, type ProcInfo } from "./proc.ts";

export interface CheckpointFacts {
  /** Every process on the machine (src/criu/proc.ts snapshotProcesses). */
  processes: ReadonlyMap<number, ProcInfo>;
  /** MainPID of each configured service (0 or missing: not running), from systemd. */
  servicePids: Readonly<Record<string, number>>;
  /** nvwa's own pid: a target whose tree holds it would freeze nvwa itself. */
  selfPid: number;
  /** Each service's journal streams (src/criu/journal.ts), by unit: dumped as externals. */
  journalStreams?: Readonly<Record<string, readonly JournalStream[]>>;
  criu: { pinMemory: boolean; networkLock?: NetworkLock; version?: string; memTrack?: boolean };
  /** Default false: see CRIU_FAULT in src/criu/argv.ts. */
  hardwareBreakpoints?: boolean;
}

export interface PlannedTarget {
  kind: "pid" | "service";
  name: string;
  unit?: string;
  rootPid: number;
  rootStartTime: number;
  comm: string;
  cmdline: string[];
  processes: number[];
  pids: number[];
  stoppedBefore: number[];
  imagesDir: string;
  shellJob: boolean;
  /** Its journal streams (services only), named external in argv. */
  journalStreams?: JournalStream[];
  argv: string[];
}

export interface PlanProblem {
  code: string;
  message: string;
  hint: string;
  target?: string;
}

export interface CheckpointPlan {
  /** enable_pre_dump: pre-dump every target first (src/update/pre-dump.ts); memTrack: the kernel has soft-dirty. */
  preDump?: { memTrack: boolean };
  criuDir: string;
  criuExe: string;
  criuVersion?: string;
  env: Record<string, string>;
  options: ManifestOptions;
  targets: PlannedTarget[];
  problems: PlanProblem[];
  warnings: string[];
}

interface Request {
  kind: "pid" | "service";
  name: string;
  unit?: string;
  rootPid: number;
}

/** Pure: does this tree need --shell-job? (its session or group leader lives outside it) */
export function needsShellJob(processes: readonly number[], procs: ReadonlyMap<number, Pick<ProcInfo, "sid" | "pgid" | "ttyNr">>): boolean {
  const inTree = new Set(processes);
  for (const pid of processes) {
    const p = procs.get(pid);
    if (!p) continue;
    if (!inTree.has(p.sid) || !inTree.has(p.pgid) || p.ttyNr !== 0) return true;
  }
  return false;
}

function ancestors(pid: number, procs: ReadonlyMap<number, ProcInfo>): Set<number> {
  const out = new Set<number>();
  let cur = procs.get(pid);
  while (cur && cur.ppid > 0 && !out.has(cur.ppid)) {
    out.add(cur.ppid);
    cur = procs.get(cur.ppid);
  }
  return out;
}

export function planCheckpoint(config: NvwaConfig, facts: CheckpointFacts): CheckpointPlan {
  const criuDir = config.server.criuDir;
  const problems: PlanProblem[] = [];
  const warnings: string[] = [];
  const restore = config.restore;

  const pinMemory = restore.enablePinMemory && facts.criu.pinMemory;
  if (restore.enablePinMemory && !facts.criu.pinMemory) {
    warnings.push(`enable_pin_memory is on but ${config.server.criuExe}${facts.criu.version ? ` (criu ${facts.criu.version})` : ""} has no --pin-memory; dumping without it`);
  }
  const hardwareBreakpoints = facts.hardwareBreakpoints ?? false;
  const options: ManifestOptions = {
    debug: restore.debug,
    pinMemory,
    restoreNet: restore.restoreNet,
    tcpEstablished: true,
    extUnixSk: true,
    fileLocks: true,
    ...(facts.criu.networkLock === undefined ? {} : { networkLock: facts.criu.networkLock }),
    hardwareBreakpoints,
    rehearsal: false,
    // Pinned memory is put back in place by the kernel: there is nothing for lazy-pages to copy.
    lazyRestore: restore.enableLazyRestore && !pinMemory,
  };

  const requests: Request[] = [];
  for (const pid of restore.pids) requests.push({ kind: "pid", name: String(pid), rootPid: pid });
  for (const unit of restore.services) {
    const main = facts.servicePids[unit] ?? 0;
    if (main <= 0) {
      problems.push({
        code: "checkpoint.service-not-running",
        message: `service ${unit} has no main process (MainPID 0)`,
        hint: `start it (systemctl start ${unit}) or remove it from services in nvwa-restore.yaml`,
        target: unit,
      });
      continue;
    }
    requests.push({ kind: "service", name: unit, unit, rootPid: main });
  }

  const self = facts.selfPid;
  const selfAncestors = ancestors(self, facts.processes);
  const targets: PlannedTarget[] = [];
  const seenNames = new Set<string>();
  for (const r of requests) {
    const label = r.kind === "pid" ? `pid ${r.rootPid}` : `${r.name} (pid ${r.rootPid})`;
    const problem = (code: string, message: string, hint: string): void => {
      problems.push({ code, message, hint, target: r.name });
    };
    if (seenNames.has(r.name)) {
      problem("checkpoint.duplicate-target", `${label} is listed twice`, "list each pid and service once in nvwa-restore.yaml");
      continue;
    }
    seenNames.add(r.name);
    if (!TARGET_NAME.test(r.name)) {
      problem("checkpoint.bad-name", `"${r.name}" cannot name an images directory`, "use a pid or a full unit name such as redis.service");
      continue;
    }
    const p = facts.processes.get(r.rootPid);
    if (!p || p.state === "Z") {
      problem("checkpoint.not-running", `${label} is not running`, r.kind === "pid" ? `remove ${r.rootPid} from pids in nvwa-restore.yaml, or start the process again` : `check systemctl status ${r.name}`);
      continue;
    }
    if (p.kernelThread) {
      problem("checkpoint.kernel-thread", `${label} is a kernel thread (${p.comm}); there is no user space to save`, `remove ${r.name} from nvwa-restore.yaml`);
      continue;
    }
    if (r.rootPid === 1) {
      problem("checkpoint.target-is-init", `${label} is init; it cannot be checkpointed`, `remove ${r.name} from nvwa-restore.yaml`);
      continue;
    }
    const tree = treeOf(r.rootPid, facts.processes);
    if (r.rootPid === self || selfAncestors.has(r.rootPid) || tree.processes.includes(self)) {
      problem(
        "checkpoint.target-holds-nvwa",
        `${label} (${p.comm}) is nvwa itself or one of its ancestors; freezing it would freeze nvwa`,
        "run nvwa from its own service (nvwa.service), not from inside a target's tree",
      );
      continue;
    }
    // /proc shows session 0 when the session leader lives in an ancestor pid namespace (a
    // process started inside a container or sandbox without setsid). criu refuses such a tree
    // even with --shell-job ("A session leader of N(N) is outside of its pid namespace").
    const outside = tree.processes.find((pid) => facts.processes.get(pid)?.sid === 0);
    if (outside !== undefined) {
      problem(
        "checkpoint.session-outside-pidns",
        `${label}: the session leader of pid ${outside} is outside nvwa's pid namespace, and criu cannot dump such a tree`,
        `start ${r.kind === "pid" ? "the process" : r.name} in a session of its own (setsid, or as a systemd service), or run nvwa in the pid namespace that holds its session leader`,
      );
      continue;
    }
    const shellJob = needsShellJob(tree.processes, facts.processes);
    const imagesDir = join(criuDir, r.name);
    const journalStreams = r.kind === "service" ? [...(facts.journalStreams?.[r.name] ?? [])] : [];
    targets.push({
      kind: r.kind,
      name: r.name,
      ...(r.unit === undefined ? {} : { unit: r.unit }),
      rootPid: r.rootPid,
      rootStartTime: p.startTime,
      comm: p.comm,
      cmdline: p.cmdline,
      processes: tree.processes,
      pids: tree.pids,
      stoppedBefore: tree.processes.filter((pid) => facts.processes.get(pid)?.state === "T"),
      imagesDir,
      shellJob,
      ...(journalStreams.length === 0 ? {} : { journalStreams }),
      argv: dumpArgv({
        pid: r.rootPid,
        imagesDir,
        leaveStopped: true,
        shellJob,
        tcpEstablished: options.tcpEstablished,
        extUnixSk: options.extUnixSk,
        fileLocks: options.fileLocks,
        ...(options.networkLock === undefined ? {} : { networkLock: options.networkLock }),
        pinMemory,
        ...(restore.debug ? { verbosity: 4 } : {}),
        displayStats: true,
        ...(journalStreams.length === 0 ? {} : { externals: journalStreams.map((s) => `unix[${s.ino}]`) }),
      }),
    });
  }

  // Two targets sharing processes would be dumped twice and restored twice (one would clash).
  for (const [i, x] of targets.entries()) {
    for (const y of targets.slice(i + 1)) {
      const [a, b] = x.processes.includes(y.rootPid) ? [x, y] : y.processes.includes(x.rootPid) ? [y, x] : [null, null];
      if (a === null || b === null) continue;
      problems.push({
        code: "checkpoint.targets-overlap",
        message: `${b.name} (pid ${b.rootPid}) is inside the tree of ${a.name} (pid ${a.rootPid}); criu dumps whole trees`,
        hint: `list only ${a.name}: its dump already includes ${b.name}`,
        target: b.name,
      });
    }
  }

  return {
    ...(restore.enablePreDump ? { preDump: { memTrack: facts.criu.memTrack ?? false } } : {}),
    criuDir,
    criuExe: config.server.criuExe,
    ...(facts.criu.version === undefined ? {} : { criuVersion: facts.criu.version }),
    env: criuEnv({ hardwareBreakpoints }),
    options,
    targets,
    problems,
    warnings,
  };
}

/** Throws the plan's first problem as an NvwaError (all of them in details). */
export function assertPlanOk(plan: CheckpointPlan): void {
  const first = plan.problems[0];
  if (first === undefined) return;
  const more = plan.problems.length > 1 ? ` (and ${plan.problems.length - 1} more problem${plan.problems.length > 2 ? "s" : ""})` : "";
  throw new NvwaError(first.code, `${first.message}${more}`, {
    hint: first.hint,
    exitCode: ExitCode.preflight,
    details: { problems: plan.problems, ...(first.target === undefined ? {} : { target: first.target }) },
  });
}
