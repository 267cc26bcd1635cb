/**
 * How fast the engine saves and restores memory, against `dd` writing the same number of bytes
 * into the same directory: for a process with 64 MiB, 256 MiB and 1 GiB of dirty anonymous
 * memory, through nvwa's own checkpoint → commit (fsync) → restore, median of N runs.
 *
 *   bun test/host/measure-criu.ts [--runs 3] [--sizes 64,256,1024] [--dir /var/tmp] [--json]
 *
 * Root; criu from NVWA_TEST_CRIU or test/host/setup-criu.sh. dd runs twice per size: into the
 * page cache (as criu dump writes) and with conv=fsync (as dump + commit make it durable).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { checkpoint, commitCheckpoint } from "../../src/criu/checkpoint.ts";
import { gatherCheckpointFacts } from "../../src/criu/facts.ts";
import { planCheckpoint } from "../../src/criu/plan.ts";
import { probeCriu } from "../../src/criu/probe.ts";
import { restoreAll } from "../../src/restore/restore.ts";
import { config, testCriu, waitFor, Workloads } from "./helpers/criu-env.ts";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
}

const runs = Number(arg("runs", "3"));
const sizes = arg("sizes", "64,256,1024").split(",").map(Number);
const base = mkdtempSync(join(arg("dir", "/var/tmp"), "nvwa-measure-"));
const asJson = process.argv.includes("--json");

interface Sample {
  dumpMs: number;
  frozenMs: number;
  syncMs: number;
  restoreMs: number;
  imageBytes: number;
  ddMs: number;
  ddSyncMs: number;
  verified: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function dd(path: string, mib: number, fsync: boolean): number {
  const t0 = performance.now();
  const r = Bun.spawnSync(["dd", "if=/dev/zero", `of=${path}`, "bs=1M", `count=${mib}`, ...(fsync ? ["conv=fsync"] : [])], { stdout: "ignore", stderr: "pipe" });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`dd failed: ${r.stderr.toString()}`);
  rmSync(path, { force: true });
  return ms;
}

async function one(criu: string, mib: number, run: number): Promise<Sample> {
  const work = new Workloads();
  try {
    const w = await work.start("memory", String(mib));
    await waitFor(`${mib} MiB dirtied`, () => w.num("ready"), 600_000);
    const dir = join(base, `m${mib}-${run}`, "running");
    const caps = await probeCriu(criu);
    const plan = planCheckpoint(config(dir, criu, { pids: [w.pid] }), gatherCheckpointFacts(caps));
    const r = await checkpoint(plan);
    const d = r.dumped[0];
    if (d === undefined) throw new Error("nothing dumped");
    let syncMs = 0;
    await commitCheckpoint(r.manifest, { onEvent: (e) => (e.type === "images-synced" ? (syncMs = e.ms) : undefined) });
    const rep = await restoreAll(dir, { criuExe: criu, bumpNsLastPid: false });
    const res = rep.results[0];
    if (res?.status !== "restored") throw new Error(`restore failed: ${res?.error?.message}`);
    process.kill(w.pid, "SIGUSR1");
    const verified = (await waitFor("memory verification", () => w.text("verify"), 600_000)) === "ok";
    process.kill(w.pid, "SIGKILL");
    const ddDir = join(base, `m${mib}-${run}`);
    return {
      dumpMs: d.ms,
      frozenMs: (d.stats?.frozenUs ?? 0) / 1000,
      syncMs,
      restoreMs: res.ms,
      imageBytes: d.bytes,
      ddMs: dd(join(ddDir, "dd.img"), mib, false),
      ddSyncMs: dd(join(ddDir, "dd.img"), mib, true),
      verified,
    };
  } finally {
    work.killAll();
    rmSync(join(base, `m${mib}-${run}`), { recursive: true, force: true });
  }
}

const criu = testCriu();
const rows: Record<string, unknown>[] = [];
try {
  for (const mib of sizes) {
    const samples: Sample[] = [];
    for (let i = 0; i < runs; i++) samples.push(await one(criu, mib, i));
    const m = (k: keyof Omit<Sample, "verified">): number => median(samples.map((s) => s[k]));
    const mb = (mib * 1024 * 1024) / 1e6;
    const row = {
      MiB: mib,
      runs,
      dumpMs: Math.round(m("dumpMs")),
      dumpMBps: Math.round(mb / (m("dumpMs") / 1000)),
      frozenMs: Math.round(m("frozenMs")),
      ddMs: Math.round(m("ddMs")),
      ddMBps: Math.round(mb / (m("ddMs") / 1000)),
      dumpVsDd: Number((m("dumpMs") / m("ddMs")).toFixed(2)),
      dumpPlusSyncMs: Math.round(m("dumpMs") + m("syncMs")),
      ddFsyncMs: Math.round(m("ddSyncMs")),
      durableVsDd: Number(((m("dumpMs") + m("syncMs")) / m("ddSyncMs")).toFixed(2)),
      restoreMs: Math.round(m("restoreMs")),
      restoreMBps: Math.round(mb / (m("restoreMs") / 1000)),
      imageMiB: Number((m("imageBytes") / 1048576).toFixed(1)),
      memoryIntact: samples.every((s) => s.verified),
    };
    rows.push(row);
    if (!asJson) console.error(JSON.stringify(row));
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
if (asJson) console.log(JSON.stringify(rows, null, 2));
else console.table(rows);
