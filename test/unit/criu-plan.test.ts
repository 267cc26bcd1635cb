/**
 * planCheckpoint over hand-made process tables: which trees, which pids, which flags, and every
 * reason a checkpoint is refused before anything is frozen.
 */
import { describe, expect, test } from "bun:test";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS, type NvwaConfig } from "../../src/config/types.ts";
import { isNvwaError } from "../../src/errors.ts";
import { assertPlanOk, needsShellJob, planCheckpoint, type CheckpointFacts } from "../../src/criu/plan.ts";
import { parseCmdline, parseStat, treeOf, type ProcInfo } from "../../src/criu/proc.ts";

function proc(pid: number, ppid: number, o: Partial<ProcInfo> = {}): ProcInfo {
  return {
    pid,
    ppid,
    comm: o.comm ?? `p${pid}`,
    state: o.state ?? "S",
    pgid: o.pgid ?? pid,
    sid: o.sid ?? pid,
    ttyNr: o.ttyNr ?? 0,
    startTime: o.startTime ?? 1000 + pid,
    kernelThread: o.kernelThread ?? false,
    cmdline: o.cmdline ?? [`/usr/bin/p${pid}`],
    tids: o.tids ?? [pid],
  };
}

function table(...ps: ProcInfo[]): Map<number, ProcInfo> {
  return new Map(ps.map((p) => [p.pid, p]));
}

// init(1) ─┬─ kthreadd(2) ─ kworker(3)
//          ├─ daemon 100 (own session) ─ child 101 (threads 101, 102)
//          ├─ shell 200 ─ job 201 (session 200, group 201)
//          └─ nvwa 300
const procs = table(
  proc(1, 0, { comm: "init" }),
  proc(2, 0, { comm: "kthreadd", kernelThread: true, cmdline: [] }),
  proc(3, 2, { comm: "kworker/0:0", kernelThread: true, cmdline: [] }),
  proc(100, 1, { comm: "redis-server" }),
  proc(101, 100, { pgid: 100, sid: 100, tids: [101, 102] }),
  proc(200, 1, { comm: "bash", ttyNr: 34816 }),
  proc(201, 200, { sid: 200, pgid: 201, ttyNr: 34816, comm: "counter" }),
  proc(300, 1, { comm: "nvwa" }),
  proc(400, 1, { comm: "stopped-one", state: "T" }),
);

const facts = (over: Partial<CheckpointFacts> = {}): CheckpointFacts => ({
  processes: procs,
  servicePids: { "redis.service": 100 },
  selfPid: 300,
  criu: { pinMemory: false, networkLock: "nftables", version: "4.1.1" },
  ...over,
});

function config(pids: number[], services: string[] = [], o: Partial<NvwaConfig["restore"]> = {}): NvwaConfig {
  return {
    restore: { ...RESTORE_DEFAULTS, pids, services, ...o },
    server: { ...SERVER_DEFAULTS, criuDir: "/var/nvwa/running" },
    files: { restore: null, server: null },
  };
}

describe("planCheckpoint", () => {
  test("a service's journal streams are named external in its dump and kept in the plan; bare pids get none", () => {
    const header = { identifier: "redis-server", unit: "redis.service", priority: 30, levelPrefix: true, forwardToKmsg: false, forwardToConsole: false };
    const stream = { ino: 900, fds: [1, 2], header };
    const plan = planCheckpoint(config([201], ["redis.service"]), facts({ journalStreams: { "redis.service": [stream] } }));
    const svc = plan.targets.find((t) => t.kind === "service");
    expect(svc?.journalStreams).toEqual([stream]);
    expect(svc?.argv.join(" ")).toContain("--ext-unix-sk");
    expect(svc?.argv.join(" ")).toContain("--external unix[900]");
    const pid = plan.targets.find((t) => t.kind === "pid");
    expect(pid?.journalStreams).toBeUndefined();
    expect(pid?.argv).not.toContain("--external");
  });
  test("a service's tree: every process and thread, its own session → no --shell-job", () => {
    const plan = planCheckpoint(config([], ["redis.service"]), facts());
    expect(plan.problems).toEqual([]);
    const t = plan.targets[0];
    expect(t).toMatchObject({
      kind: "service",
      name: "redis.service",
      unit: "redis.service",
      rootPid: 100,
      rootStartTime: 1100,
      processes: [100, 101],
      pids: [100, 101, 102],
      imagesDir: "/var/nvwa/running/redis.service",
      shellJob: false,
      stoppedBefore: [],
    });
    expect(t?.argv).toContain("--leave-stopped");
    expect(t?.argv).not.toContain("--shell-job");
    expect(t?.argv.join(" ")).toContain("--network-lock nftables");
    expect(plan.env).toEqual({ CRIU_FAULT: "130" });
    expect(plan.options).toMatchObject({ tcpEstablished: true, extUnixSk: true, fileLocks: true, networkLock: "nftables", hardwareBreakpoints: false });
  });

  test("a job started from a shell gets --shell-job (session leader outside the tree, tty)", () => {
    const plan = planCheckpoint(config([201]), facts());
    expect(plan.targets[0]?.shellJob).toBe(true);
    expect(plan.targets[0]?.argv).toContain("--shell-job");
    expect(plan.targets[0]?.imagesDir).toBe("/var/nvwa/running/201");
  });

  test("a process already stopped is recorded so a rollback leaves it stopped", () => {
    expect(planCheckpoint(config([400]), facts()).targets[0]?.stoppedBefore).toEqual([400]);
  });

  test("pin memory only when enabled AND supported; a warning otherwise", () => {
    const unsupported = planCheckpoint(config([100], [], { enablePinMemory: true }), facts());
    expect(unsupported.options.pinMemory).toBe(false);
    expect(unsupported.targets[0]?.argv).not.toContain("--pin-memory");
    expect(unsupported.warnings[0]).toContain("no --pin-memory");
    const supported = planCheckpoint(config([100], [], { enablePinMemory: true }), facts({ criu: { pinMemory: true } }));
    expect(supported.targets[0]?.argv).toContain("--pin-memory");
    expect(supported.warnings).toEqual([]);
  });

  test("debug mode: criu -v4", () => {
    expect(planCheckpoint(config([100], [], { debug: true }), facts()).targets[0]?.argv).toContain("-v4");
  });

  test("no nftables support: criu's default lock method (no --network-lock)", () => {
    const plan = planCheckpoint(config([100]), facts({ criu: { pinMemory: false } }));
    expect(plan.targets[0]?.argv).not.toContain("--network-lock");
    expect(plan.options.networkLock).toBeUndefined();
  });

  const problemCodes = (c: NvwaConfig, f = facts()): string[] => planCheckpoint(c, f).problems.map((p) => p.code);

  test("refusals, each with the target named", () => {
    expect(problemCodes(config([999]))).toEqual(["checkpoint.not-running"]);
    expect(problemCodes(config([3]))).toEqual(["checkpoint.kernel-thread"]);
    expect(problemCodes(config([1]))).toEqual(["checkpoint.target-is-init"]);
    expect(problemCodes(config([300]))).toEqual(["checkpoint.target-holds-nvwa"]);
    expect(problemCodes(config([200]))).toEqual([]);
    // nvwa running inside the shell's tree: dumping the shell would freeze nvwa.
    const inShell = table(...procs.values(), proc(300, 200, { comm: "nvwa" }));
    expect(problemCodes(config([200]), facts({ processes: inShell }))).toEqual(["checkpoint.target-holds-nvwa"]);
    expect(problemCodes(config([], ["stopped.service"]))).toEqual(["checkpoint.service-not-running"]);
    expect(problemCodes(config([100], ["redis.service"]))).toEqual(["checkpoint.targets-overlap"]);
    expect(problemCodes(config([100, 101]))).toEqual(["checkpoint.targets-overlap"]);
    expect(problemCodes(config([100, 100]))).toEqual(["checkpoint.duplicate-target"]);
  });

  test("a tree whose session leader is in an ancestor pid namespace (session 0 in /proc) is refused by name", () => {
    // As seen inside a sandbox started without setsid: criu would fail the dump itself.
    const sandboxed = table(...procs.values(), proc(500, 1, { sid: 0, pgid: 0, comm: "sandboxed" }), proc(501, 500, { sid: 0, pgid: 0 }));
    const plan = planCheckpoint(config([500]), facts({ processes: sandboxed }));
    expect(plan.problems.map((p) => [p.code, p.target])).toEqual([["checkpoint.session-outside-pidns", "500"]]);
    expect(plan.problems[0]?.message).toBe("pid 500: the session leader of pid 500 is outside nvwa's pid namespace, and criu cannot dump such a tree");
    expect(plan.problems[0]?.hint).toContain("setsid");
    expect(plan.targets).toEqual([]);
  });

  test("a zombie is not running", () => {
    const z = table(...procs.values(), proc(500, 1, { state: "Z" }));
    expect(problemCodes(config([500]), facts({ processes: z }))).toEqual(["checkpoint.not-running"]);
  });

  test("assertPlanOk throws the first problem, all of them in details", () => {
    const plan = planCheckpoint(config([999, 3]), facts());
    try {
      assertPlanOk(plan);
      throw new Error("not thrown");
    } catch (e) {
      if (!isNvwaError(e)) throw e;
      expect(e.code).toBe("checkpoint.not-running");
      expect(e.message).toBe("pid 999 is not running (and 1 more problem)");
      expect(e.exitCode).toBe(3);
      expect((e.details.problems as unknown[]).length).toBe(2);
    }
    expect(() => assertPlanOk(planCheckpoint(config([100]), facts()))).not.toThrow();
  });
});

describe("process parsing", () => {
  test("parseStat: a comm with spaces and parentheses", () => {
    const line = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 50 18446744073709551615";
    expect(parseStat(line)).toEqual({ pid: 4242, comm: "my (odd) prog", state: "S", ppid: 1, pgid: 4242, sid: 4242, ttyNr: 0, flags: 4194560, startTime: 987654 });
    expect(parseStat("garbage")).toBeNull();
  });

  test("parseCmdline", () => {
    expect(parseCmdline("/usr/bin/python3\0-u\0x.py\0")).toEqual(["/usr/bin/python3", "-u", "x.py"]);
    expect(parseCmdline("")).toEqual([]);
  });

  test("treeOf: descendants breadth-first with threads; a missing root is empty", () => {
    expect(treeOf(1, procs).processes).toEqual([1, 100, 200, 300, 400, 101, 201]);
    expect(treeOf(100, procs)).toEqual({ processes: [100, 101], pids: [100, 101, 102] });
    expect(treeOf(12345, procs)).toEqual({ processes: [], pids: [] });
  });

  test("needsShellJob", () => {
    expect(needsShellJob([100, 101], procs)).toBe(false);
    expect(needsShellJob([201], procs)).toBe(true);
    expect(needsShellJob([200, 201], procs)).toBe(true); // the tty
  });
});
