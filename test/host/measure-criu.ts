/**
 * How fast memory is saved and restored, and whose time it is. For a process with 64 MiB,
 * 256 MiB and 1 GiB of dirty anonymous memory, each run does three things to the same process,
 * in an order that rotates from run to run:
 *
 *   dd       copies as many bytes as criu's images hold from a file in /dev/shm into the same
 *            directory (page cache), then again with conv=fsync. /dev/shm, not /dev/zero: a
 *            read of /dev/zero touches no memory, while criu has to read every page it saves;
 *            a tmpfs file is memory that is copied, like a dumpee's pages (a disk file could
 *            be evicted and would measure the disk's reads instead). dd of /dev/zero is kept
 *            as a column for comparison with older figures.
 *   by hand  `criu dump` with exactly the argv and environment nvwa's plan builds, the images
 *            fsynced with nvwa's own syncImages, then the process killed and `criu restore`d
 *            by hand with the argv nvwa's restore builds (which also lifts criu's network lock).
 *   nvwa     the engine: checkpoint() → commitCheckpoint() (fsync, kill) → restoreAll().
 *
 * nvwa ÷ by hand is nvwa's own cost; by hand ÷ dd is criu's. criu's --display-stats split
 * its run into frozen time, memory dump (draining pages from the dumpee) and memory write.
 * Every timed step starts after `sync` with warm page-allocator state (see warm()).
 *
 *   bun test/host/measure-criu.ts [--runs 21] [--sizes 64,256,1024] [--dir /var/tmp] [--json]
 *                                 [--host-netns] [--no-diagnostics]
 *
 * Root; criu from NVWA_TEST_CRIU or test/host/setup-criu.sh. The measurement runs in a private
 * network namespace (the script re-executes itself under `unshare -n` with lo up; --host-netns
 * stays in the host's), so that criu's nftables network lock starts from an empty ruleset and no
 * table of its can be left in the host's. Diagnostics (--no-diagnostics skips them), medians of
 * min(runs, 7): the lock's cost there and, in the host's namespace, with the CRIU-* tables that
 * earlier dumps left behind (each --leave-stopped dump that is resumed rather than restored
 * leaves one); and CRIU_FAULT=130 against no CRIU_FAULT (criu 4.1 hangs without it on VMs whose
 * debug registers do not work, so it is given 30 s; criu 4.2, when set up, is timed both ways).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { DUMP_LOG, RESTORE_LOG } from "../../src/criu/argv.ts";
import { checkpoint } from "../../src/update/checkpoint.ts";
import { commitCheckpoint } from "../../src/update/commit.ts";
import { gatherCheckpointFacts } from "../../src/criu/facts.ts";
import { imageBytes, syncImages } from "../../src/criu/images.ts";
import { parseDumpStats } from "../../src/criu/log.ts";
import { planCheckpoint, type CheckpointPlan } from "../../src/criu/plan.ts";
import { probeCriu } from "../../src/criu/probe.ts";
import { restoreArgvFor } from "../../src/criu/restore-run.ts";
import { waitPidsFree } from "../../src/criu/signals.ts";
import { restoreAll } from "../../src/restore/restore.ts";
import { median } from "../bench/stats.ts";
import { config, criuFor, testCriu, textFile, waitFor, Workloads, type Workload } from "./helpers/criu-env.ts";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
}

const runs = Number(arg("runs", "21"));
const sizes = arg("sizes", "64,256,1024").split(",").map(Number);
const dirArg = arg("dir", "/var/tmp");
const asJson = process.argv.includes("--json");
const hostNetns = process.argv.includes("--host-netns");
const diagnostics = !process.argv.includes("--no-diagnostics");
const INSIDE = "NVWA_MEASURE_PRIVATE_NETNS";

function say(s: string): void {
  process.stderr.write(`measure-criu: ${s}\n`);
}

/** Flushes everyone's dirty pages so that each timed step starts from the same writeback state. */
function syncAll(): void {
  Bun.spawnSync(["sync"]);
}

/**
 * Before each timed step: page cache of the size about to be written is taken and given back,
 * then everything is synced. On a VM with free page reporting (virtio-balloon, as here) memory
 * left free for a while is handed back to the host, and touching it again is slow: a dd of
 * 1 GiB took 0.25 s right after this and up to 1.2 s without it. Bare metal has no such penalty;
 * every step (dd, criu by hand, nvwa) starts from the same warm state.
 */
function warm(dir: string, mib: number): void {
  const f = join(dir, ".warm");
  Bun.spawnSync(["dd", "if=/dev/zero", `of=${f}`, "bs=1M", `count=${mib + 64}`], { stdout: "ignore", stderr: "ignore" });
  rmSync(f, { force: true });
  syncAll();
}

function spawnTimed(argv: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): { ms: number; exitCode: number | null; stdout: string; stderr: string; timedOut: boolean } {
  const t0 = performance.now();
  const p = Bun.spawnSync(argv, {
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    env: { ...process.env, ...(opts.env ?? {}) },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    ...(opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs, killSignal: "SIGKILL" }),
  });
  const ms = performance.now() - t0;
  return { ms, exitCode: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString(), timedOut: p.exitCode === null || p.signalCode === "SIGKILL" };
}

function dd(src: string, dst: string, mib: number, fsync: boolean): number {
  const r = spawnTimed(["dd", `if=${src}`, `of=${dst}`, "bs=1M", `count=${mib}`, ...(fsync ? ["conv=fsync"] : [])]);
  if (r.exitCode !== 0) throw new Error(`dd failed: ${r.stderr}`);
  rmSync(dst, { force: true });
  return r.ms;
}

/** The plan nvwa makes for this one process (argv, environment, options). */
async function planFor(criu: string, pid: number, criuDir: string): Promise<{ plan: CheckpointPlan; probeMs: number }> {
  const t0 = performance.now();
  const caps = await probeCriu(criu);
  const probeMs = performance.now() - t0;
  const plan = planCheckpoint(config(criuDir, criu, { pids: [pid] }), gatherCheckpointFacts(caps));
  if (plan.problems.length > 0 || plan.targets.length !== 1) throw new Error(`no plan: ${JSON.stringify(plan.problems)}`);
  return { plan, probeMs };
}

async function verify(w: Workload): Promise<boolean> {
  try {
    unlinkSync(w.file("verify"));
  } catch {
    // not there yet
  }
  process.kill(w.pid, "SIGUSR1");
  return (await waitFor("memory verification", () => w.text("verify"), 600_000)) === "ok";
}

async function killAndWait(pid: number): Promise<void> {
  process.kill(pid, "SIGKILL");
  const held = await waitPidsFree([pid], 30_000);
  if (held.length > 0) throw new Error(`pid ${pid} not reaped (${held[0]?.holder})`);
}

function tail(path: string): string | null {
  return textFile(path)?.slice(-1500) ?? null;
}

interface ByHand {
  dumpMs: number;
  frozenMs: number;
  memdumpMs: number;
  memwriteMs: number;
  syncMs: number;
  restoreMs: number;
  imageBytes: number;
  verified: boolean;
}

/**
 * criu dump of `w` by hand with the plan's argv (its images dir swapped for `dir`) and `env`,
 * then its images fsynced, the process killed and restored by hand with the argv nvwa's restore
 * would use. `argv` edits both command lines (e.g. to drop the network lock from both).
 */
async function byHand(criu: string, w: Workload, plan: CheckpointPlan, dir: string, o: { mib?: number; env?: Record<string, string>; argv?: (a: string[]) => string[]; timeoutMs?: number } = {}): Promise<ByHand | { hung: true; ms: number }> {
  const t = plan.targets[0];
  if (t === undefined) throw new Error("empty plan");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let argv = t.argv.map((a) => (a === t.imagesDir ? dir : a));
  if (o.argv) argv = o.argv(argv);
  const mib = Math.ceil((o.mib ?? 64) * 1.05);
  warm(dir, mib);
  const run = spawnTimed([criu, ...argv], { cwd: dir, env: o.env ?? plan.env, timeoutMs: o.timeoutMs ?? 600_000 });
  if (run.timedOut) return { hung: true, ms: run.ms };
  if (run.exitCode !== 0) throw new Error(`criu dump by hand failed (${run.exitCode}): ${tail(join(dir, DUMP_LOG)) ?? run.stderr}`);
  const stats = parseDumpStats(run.stdout);
  const t1 = performance.now();
  syncImages(dir);
  const syncMs = performance.now() - t1;
  const bytes = imageBytes(dir);
  await killAndWait(w.pid);
  let rargv = restoreArgvFor({ imagesDir: dir, shellJob: t.shellJob }, { criuExe: criu, options: plan.options });
  if (o.argv) rargv = o.argv(rargv);
  warm(dir, mib);
  const rs = spawnTimed([criu, ...rargv], { cwd: dir, env: plan.env });
  if (rs.exitCode !== 0) throw new Error(`criu restore by hand failed (${rs.exitCode}): ${tail(join(dir, RESTORE_LOG)) ?? rs.stderr}`);
  const verified = await verify(w);
  rmSync(dir, { recursive: true, force: true });
  return {
    dumpMs: run.ms,
    frozenMs: (stats?.frozenUs ?? 0) / 1000,
    memdumpMs: (stats?.memdumpUs ?? 0) / 1000,
    memwriteMs: (stats?.memwriteUs ?? 0) / 1000,
    syncMs,
    restoreMs: rs.ms,
    imageBytes: bytes,
    verified,
  };
}

interface ThroughNvwa {
  dumpMs: number;
  criuMs: number;
  frozenMs: number;
  syncMs: number;
  restoreMs: number;
  imageBytes: number;
  verified: boolean;
}

async function throughNvwa(criu: string, w: Workload, criuDir: string, mib: number): Promise<ThroughNvwa> {
  const { plan } = await planFor(criu, w.pid, criuDir);
  mkdirSync(criuDir, { recursive: true, mode: 0o700 });
  const room = Math.ceil(mib * 1.05);
  warm(criuDir, room);
  const t0 = performance.now();
  const r = await checkpoint(plan);
  const dumpMs = performance.now() - t0;
  const d = r.dumped[0];
  if (d === undefined) throw new Error("nothing dumped");
  let syncMs = 0;
  await commitCheckpoint(r.manifest, { onEvent: (e) => (e.type === "images-synced" ? (syncMs = e.ms) : undefined) });
  warm(criuDir, room);
  const rep = await restoreAll(criuDir, { criuExe: criu, bumpNsLastPid: false });
  const res = rep.results[0];
  if (res?.status !== "restored") throw new Error(`restore failed: ${res?.error?.message}`);
  const verified = await verify(w);
  rmSync(criuDir, { recursive: true, force: true });
  return { dumpMs, criuMs: d.ms, frozenMs: (d.stats?.frozenUs ?? 0) / 1000, syncMs, restoreMs: res.ms, imageBytes: d.bytes, verified };
}

interface Sample {
  dd: { ms: number; fsyncMs: number; zeroMs: number };
  hand: ByHand;
  nvwa: ThroughNvwa;
  probeMs: number;
}

/** MiB of the last by-hand images of each size: dd copies as much as criu wrote, pages and metadata. */
const imageMiB = new Map<number, number>();

async function oneRun(criu: string, base: string, shm: string, w: Workload, mib: number, run: number): Promise<Sample> {
  const dir = join(base, `m${mib}-${run}`);
  mkdirSync(dir, { recursive: true });
  const { plan, probeMs } = await planFor(criu, w.pid, join(dir, "running"));
  let ddRes: Sample["dd"] | undefined;
  let hand: ByHand | undefined;
  let nv: ThroughNvwa | undefined;
  const steps: (() => Promise<void>)[] = [
    async () => {
      const n = imageMiB.get(mib) ?? mib;
      warm(dir, n);
      const ms = dd(shm, join(dir, "dd.img"), n, false);
      warm(dir, n);
      const fsyncMs = dd(shm, join(dir, "dd.img"), n, true);
      warm(dir, n);
      const zeroMs = dd("/dev/zero", join(dir, "dd.img"), n, false);
      ddRes = { ms, fsyncMs, zeroMs };
    },
    async () => {
      const h = await byHand(criu, w, plan, join(dir, "byhand"), { mib });
      if ("hung" in h) throw new Error("criu dump by hand hung");
      hand = h;
      imageMiB.set(mib, Math.ceil(h.imageBytes / 2 ** 20));
    },
    async () => {
      nv = await throughNvwa(criu, w, join(dir, "running"), mib);
    },
  ];
  // The order rotates from run to run; run 0 starts by hand, whose images size dd.
  const order = [[1, 2, 0], [2, 0, 1], [0, 1, 2]][run % 3] as number[];
  for (const i of order) await (steps[i] as () => Promise<void>)();
  rmSync(dir, { recursive: true, force: true });
  if (ddRes === undefined || hand === undefined || nv === undefined) throw new Error("a step did not run");
  return { dd: ddRes, hand, nvwa: nv, probeMs };
}

const r0 = (x: number): number => Math.round(x);
const r2 = (x: number): number => Number(x.toFixed(2));

async function measure(criu: string): Promise<Record<string, number | boolean>[]> {
  const base = mkdtempSync(join(dirArg, "nvwa-measure-"));
  const rows: Record<string, number | boolean>[] = [];
  try {
    for (const mib of sizes) {
      const shm = `/dev/shm/nvwa-measure-${process.pid}-${mib}`;
      const mk = spawnTimed(["dd", "if=/dev/zero", `of=${shm}`, "bs=1M", `count=${mib + 64}`]);
      if (mk.exitCode !== 0) throw new Error(`cannot make ${shm}: ${mk.stderr}`);
      const work = new Workloads();
      const samples: Sample[] = [];
      try {
        const w = await work.start("memory", String(mib));
        await waitFor(`${mib} MiB dirtied`, () => w.num("ready"), 600_000);
        for (let i = 0; i < runs; i++) {
          samples.push(await oneRun(criu, base, shm, w, mib, i));
          say(`${mib} MiB run ${i + 1}/${runs}: dd ${r0(samples[i]?.dd.ms ?? 0)} ms, by hand ${r0(samples[i]?.hand.dumpMs ?? 0)} ms, nvwa ${r0(samples[i]?.nvwa.dumpMs ?? 0)} ms`);
        }
      } finally {
        work.killAll();
        rmSync(shm, { force: true });
      }
      const m = (f: (s: Sample) => number): number => median(samples.map(f));
      const mb = (b: number): number => b / 1e6;
      const bytes = m((s) => s.hand.imageBytes);
      const ddMs = m((s) => s.dd.ms);
      const handMs = m((s) => s.hand.dumpMs);
      const nvMs = m((s) => s.nvwa.dumpMs);
      const row = {
        MiB: mib,
        runs,
        imageMiB: r2(bytes / 2 ** 20),
        ddMs: r0(ddMs),
        ddMBps: r0(mb(bytes) / (ddMs / 1000)),
        ddZeroMs: r0(m((s) => s.dd.zeroMs)),
        handDumpMs: r0(handMs),
        handMBps: r0(mb(bytes) / (handMs / 1000)),
        handFrozenMs: r0(m((s) => s.hand.frozenMs)),
        handMemdumpMs: r0(m((s) => s.hand.memdumpMs)),
        handMemwriteMs: r0(m((s) => s.hand.memwriteMs)),
        nvwaDumpMs: r0(nvMs),
        nvwaMBps: r0(mb(bytes) / (nvMs / 1000)),
        nvwaCriuMs: r0(m((s) => s.nvwa.criuMs)),
        nvwaFrozenMs: r0(m((s) => s.nvwa.frozenMs)),
        nvwaVsHand: r2(nvMs / handMs),
        handVsDd: r2(handMs / ddMs),
        nvwaShareOfDd: r2(ddMs / nvMs),
        ddFsyncMs: r0(m((s) => s.dd.fsyncMs)),
        handDurableMs: r0(m((s) => s.hand.dumpMs + s.hand.syncMs)),
        nvwaDurableMs: r0(m((s) => s.nvwa.dumpMs + s.nvwa.syncMs)),
        handRestoreMs: r0(m((s) => s.hand.restoreMs)),
        nvwaRestoreMs: r0(m((s) => s.nvwa.restoreMs)),
        probeMs: r0(m((s) => s.probeMs)),
        memoryIntact: samples.every((s) => s.hand.verified && s.nvwa.verified),
      };
      rows.push(row);
      if (!asJson) say(JSON.stringify(row));
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  return rows;
}

/** CRIU-* tables in this network namespace: left by dumps with --leave-stopped that were never restored. */
function criuNftTables(): number | null {
  const py = `
import socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
s.send(struct.pack("=IHHIIBBH", 20, (10 << 8) | 1, 0x301, 1, 0, 0, 0, 0))
n = 0
while True:
    data = s.recv(1 << 16); off = 0; done = False
    while off < len(data):
        ln, typ = struct.unpack_from("=IH", data, off)
        if typ in (2, 3): done = True; break
        a = off + 20
        while a < off + ln:
            alen, atype = struct.unpack_from("=HH", data, a)
            if atype & 0x7fff == 1 and data[a + 4:a + alen - 1].startswith(b"CRIU-"): n += 1
            a += (alen + 3) & ~3
        off += (ln + 3) & ~3
    if done: break
print(n)`;
  const r = Bun.spawnSync(["/usr/bin/python3", "-c", py], { stdout: "pipe", stderr: "pipe" });
  return r.exitCode === 0 ? Number(r.stdout.toString().trim()) : null;
}

/** A 64 MiB workload for a diagnostic, its plan, and a scratch directory; everything removed after. */
async function withWorkload<T>(criu: string, f: (w: Workload, plan: CheckpointPlan, base: string) => Promise<T>): Promise<T> {
  const base = mkdtempSync(join(dirArg, "nvwa-diag-"));
  const work = new Workloads();
  try {
    const w = await work.start("memory", "64");
    await waitFor("64 MiB dirtied", () => w.num("ready"), 600_000);
    const { plan } = await planFor(criu, w.pid, join(base, "running"));
    return await f(w, plan, base);
  } finally {
    work.killAll();
    rmSync(base, { recursive: true, force: true });
  }
}

const withoutLock = (a: string[]): string[] => a.filter((x, i) => x !== "--network-lock" && a[i - 1] !== "--network-lock");

function criuVersion(criu: string): string {
  return Bun.spawnSync([criu, "--version"]).stdout.toString().match(/Version: (\S+)/)?.[1] ?? "?";
}

export interface LockCost {
  runs: number;
  criuVersion: string;
  /** What nvwa's plan passes: --network-lock nftables when criu supports it. */
  networkLock: string;
  /** CRIU-* tables in this namespace before the runs. */
  leftoverTables: number | null;
  withLockDumpMs: number;
  withLockFrozenMs: number;
  withoutLockDumpMs: number;
  withoutLockFrozenMs: number;
}

/**
 * By-hand dumps (and restores, which lift the lock) of 64 MiB with nvwa's flags and with the
 * network lock dropped, interleaved. With nftables, criu 4.1/4.2 create a table of their own in
 * the dumpee's namespace right after freezing the tree, even when it has no TCP connection;
 * libnftables reads every table there first, so tables left behind make every later dump slower.
 */
async function lockCost(criu: string, n: number): Promise<LockCost> {
  return withWorkload(criu, async (w, plan, base) => {
    const leftoverTables = criuNftTables();
    const lock: ByHand[] = [];
    const noLock: ByHand[] = [];
    for (let i = 0; i < n; i++) {
      for (const which of i % 2 === 0 ? ["lock", "nolock"] : ["nolock", "lock"]) {
        const h = await byHand(criu, w, plan, join(base, `d${i}-${which}`), which === "lock" ? {} : { argv: withoutLock });
        if ("hung" in h) throw new Error("criu dump by hand hung");
        (which === "lock" ? lock : noLock).push(h);
      }
    }
    return {
      runs: n,
      criuVersion: criuVersion(criu),
      networkLock: plan.options.networkLock ?? "criu's default (iptables)",
      leftoverTables,
      withLockDumpMs: r0(median(lock.map((x) => x.dumpMs))),
      withLockFrozenMs: r0(median(lock.map((x) => x.frozenMs))),
      withoutLockDumpMs: r0(median(noLock.map((x) => x.dumpMs))),
      withoutLockFrozenMs: r0(median(noLock.map((x) => x.frozenMs))),
    };
  });
}

interface FaultCheck {
  /** The test criu (4.1) without CRIU_FAULT: "hung …" or its times. */
  withoutFault: string;
  criuVersion: string;
  /** criu 4.2 (sid's), which copes without CRIU_FAULT: 130 against unset; absent when not set up. */
  v42?: { criuVersion: string; runs: number; faultDumpMs: number; faultFrozenMs: number; unsetDumpMs: number; unsetFrozenMs: number };
}

/** CRIU_FAULT=130 (nvwa's default) against no CRIU_FAULT. Dumps without the lock: a hung one leaves no table. */
async function faultCheck(criu: string, n: number): Promise<FaultCheck> {
  const unset = (env: Record<string, string>): Record<string, string> => {
    const { CRIU_FAULT: _f, ...rest } = { ...(process.env as Record<string, string>), ...env };
    return rest;
  };
  const withoutFault = await withWorkload(criu, async (w, plan, base) => {
    const h = await byHand(criu, w, plan, join(base, "nofault"), { env: unset(plan.env), argv: withoutLock, timeoutMs: 30_000 });
    // withWorkload kills the hung workload on the way out.
    if ("hung" in h) return `hung (criu killed after ${Math.round(h.ms / 1000)} s)`;
    return `${r0(h.dumpMs)} ms dump, ${r0(h.frozenMs)} ms frozen`;
  });
  let sid: string | null = null;
  try {
    if (existsSync("/var/cache/nvwa-test/criu-sid/criu") || process.env.NVWA_TEST_CRIU_TCP) sid = criuFor("sid", "NVWA_TEST_CRIU_TCP");
  } catch {
    sid = null;
  }
  let v42: FaultCheck["v42"];
  if (sid !== null) {
    const sidCriu = sid;
    v42 = await withWorkload(sidCriu, async (w, plan, base) => {
      const f: ByHand[] = [];
      const u: ByHand[] = [];
      for (let i = 0; i < n; i++) {
        for (const which of i % 2 === 0 ? ["fault", "unset"] : ["unset", "fault"]) {
          const h = await byHand(sidCriu, w, plan, join(base, `f${i}-${which}`), { argv: withoutLock, timeoutMs: 60_000, ...(which === "unset" ? { env: unset(plan.env) } : {}) });
          if ("hung" in h) throw new Error(`criu ${criuVersion(sidCriu)} hung`);
          (which === "fault" ? f : u).push(h);
        }
      }
      return {
        criuVersion: criuVersion(sidCriu),
        runs: n,
        faultDumpMs: r0(median(f.map((x) => x.dumpMs))),
        faultFrozenMs: r0(median(f.map((x) => x.frozenMs))),
        unsetDumpMs: r0(median(u.map((x) => x.dumpMs))),
        unsetFrozenMs: r0(median(u.map((x) => x.frozenMs))),
      };
    });
  }
  return { withoutFault, criuVersion: criuVersion(criu), ...(v42 === undefined ? {} : { v42 }) };
}

export interface Result {
  netns: "private" | "host";
  rows: Record<string, number | boolean>[];
  /** The lock's cost where the rows were measured (a private namespace starts with no tables). */
  lock?: LockCost;
  /** The same in the host's namespace, with whatever tables earlier dumps left there. */
  hostLock?: LockCost;
  fault?: FaultCheck;
}

/** Runs this script again in a new network namespace with lo up; returns what it measured. */
function inPrivateNetns(): Result {
  const script = `ip link set lo up && exec "$@"`;
  const passOn = process.argv.slice(2).filter((a) => a !== "--json");
  const r = Bun.spawnSync(["unshare", "-n", "--", "sh", "-c", script, "sh", process.execPath, import.meta.path, ...passOn, "--json"], {
    env: { ...process.env, [INSIDE]: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  if (r.exitCode !== 0) throw new Error(`the measurement in a private network namespace failed (exit ${r.exitCode})`);
  return JSON.parse(r.stdout.toString()) as Result;
}

const criu = testCriu();
const diagRuns = Math.min(runs, 7);
let result: Result;
if (hostNetns || process.env[INSIDE] !== undefined) {
  const rows = await measure(criu);
  const lock = diagnostics ? await lockCost(criu, diagRuns) : undefined;
  result = { netns: hostNetns ? "host" : "private", rows, ...(lock === undefined ? {} : { lock }) };
} else {
  result = inPrivateNetns();
}
if (diagnostics && process.env[INSIDE] === undefined) {
  say("diagnostics in the host's network namespace");
  const hostLock = hostNetns ? result.lock : await lockCost(criu, diagRuns);
  const fault = await faultCheck(criu, diagRuns);
  result = { ...result, ...(hostLock === undefined ? {} : { hostLock }), fault };
  say(JSON.stringify({ hostLock, fault }));
}
if (asJson) console.log(JSON.stringify(result, null, 2));
else {
  console.table(result.rows);
  console.log(JSON.stringify({ lock: result.lock, hostLock: result.hostLock, fault: result.fault }, null, 2));
}
