/**
 * `bun run bench`: measures and writes BENCHMARKS.md (date, machine, method, raw figures).
 * Speed goals live here, never in tests. Stages:
 *
 *   host    CLI cold start (--help, a usage error, status) against a compiled hello world,
 *           config load, manifest write, and criu dump/restore throughput: dd, criu by hand and
 *           nvwa's engine on the same process (test/host/measure-criu.ts)
 *   guest   nvwa update vs a by-hand criu+kexec sequence vs a cold reboot, in the QEMU guest
 *           (test/bench/guest.ts), when the guest harness is available
 *   predump (only when named) pre-dump's freeze against a full dump's, rehearsals in the guest
 *           (NVWA_BENCH_PREDUMP="MiB:rewrite-MiB/s,…")
 *
 *   bun test/bench/run.ts [host] [guest] [predump] [--runs N] [--criu-runs N] [--compare <nvwa executable>]
 */
import { cpus, totalmem } from "node:os";
import { mkdtempSync, writeFileSync, rmSync, mkdirSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { compileTo, TARGETS } from "../../build/compile.ts";
import { loadConfig } from "../../src/config/load.ts";
import { newManifest, type Manifest, type Target } from "../../src/state/manifest.ts";
import { writeManifest } from "../../src/state/manifest-file.ts";
import type { LockCost, Result as CriuResult } from "../host/measure-criu.ts";
import { median } from "./stats.ts";

const root = join(import.meta.dir, "../..");
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const runs = Number(opt("runs") ?? 31);
const criuRuns = Number(opt("criu-runs") ?? 21);
/** Another nvwa executable (e.g. one built from an older commit) timed in the same interleaved runs. */
const compare = opt("compare");
const stages = argv.filter((a, i) => !a.startsWith("--") && !["--runs", "--criu-runs", "--compare"].includes(argv[i - 1] ?? ""));
const want = (s: string): boolean => stages.length === 0 || stages.includes(s);

interface Timed {
  label: string;
  cmd: string[];
  exitCode: number;
  wall: number[];
  cpu: number[];
}

/**
 * Cold starts, interleaved: every round runs each command once, in an order that rotates from
 * round to round, so a burst of load on this shared machine hits all of them alike. Two warm-up
 * rounds first (page cache, not a first-ever start). Wall time of the whole process, and its CPU
 * time (user + system), which a loaded machine disturbs far less.
 */
function timeInterleaved(cmds: { label: string; cmd: string[]; exitCode?: number }[], env: Record<string, string>, n: number): Timed[] {
  const out: Timed[] = cmds.map((c) => ({ label: c.label, cmd: c.cmd, exitCode: c.exitCode ?? 0, wall: [], cpu: [] }));
  for (let round = 0; round < n + 2; round++) {
    for (let k = 0; k < out.length; k++) {
      const t = out[(round + k) % out.length] as Timed;
      const t0 = performance.now();
      const p = Bun.spawnSync(t.cmd, { env: { ...process.env, ...env }, stdout: "ignore", stderr: "ignore" });
      const ms = performance.now() - t0;
      if (p.exitCode !== t.exitCode) throw new Error(`${t.cmd.join(" ")} exited ${p.exitCode}, not ${t.exitCode}`);
      if (round < 2) continue;
      t.wall.push(ms);
      const ru = p.resourceUsage;
      t.cpu.push(ru === undefined ? Number.NaN : Number(ru.cpuTime.user + ru.cpuTime.system) / 1000);
    }
  }
  return out;
}

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);

/** A manifest as `nvwa status` finds it after a restore: three targets, their timings and criu's stats. */
function restoredManifest(criuDir: string): Manifest {
  const now = Date.now();
  const m = newManifest({
    kernel: { from: "6.1.0-57-cloud-amd64", to: "6.12.95+deb12-cloud-amd64", loader: "kexec_file_load" },
    criuDir,
    options: { debug: false, pinMemory: false, restoreNet: true, tcpEstablished: true, extUnixSk: true, fileLocks: true, networkLock: "nftables", hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
    now: now - 60_000,
  });
  const target = (kind: "pid" | "service", name: string, rootPid: number, i: number): Target => ({
    kind,
    name,
    ...(kind === "service" ? { unit: name } : {}),
    rootPid,
    rootStartTime: 1000 + i,
    pids: [rootPid, rootPid + 1],
    processes: [rootPid],
    stoppedBefore: [],
    cmdline: kind === "service" ? ["/usr/bin/redis-server", "/etc/redis/redis.conf"] : ["/usr/bin/python3", "/usr/local/bin/counter.py"],
    comm: kind === "service" ? "redis-server" : "python3",
    imagesDir: join(criuDir, name),
    shellJob: false,
    tcpConnections: kind === "service",
    phase: "restored",
    timings: { dump: { start: now - 50_000 + i * 900, end: now - 49_500 + i * 900 }, restore: { start: now - 20_000 + i * 700, end: now - 19_600 + i * 700 } },
    imageBytes: (64 << 20) * (i + 1),
    dumpStats: { freezingUs: 400, frozenUs: 80_000 * (i + 1), memdumpUs: 40_000 * (i + 1), memwriteUs: 20_000 * (i + 1), pagesScanned: 16_384 * (i + 1), pagesWritten: 16_300 * (i + 1) },
    restoreStats: { restoreUs: 300_000, forkingUs: 20_000, pagesRestored: 16_300 * (i + 1) },
    restoredPid: rootPid,
  });
  const timings = {
    planned: { start: now - 60_000, end: now - 59_000 },
    checkpointing: { start: now - 59_000, end: now - 47_000 },
    committed: { start: now - 47_000, end: now - 46_000 },
    jumping: { start: now - 46_000, end: now - 30_000 },
    restoring: { start: now - 30_000, end: now - 18_000 },
  };
  return { ...m, phase: "restored", timings, targets: [target("pid", "31000", 31000, 0), target("pid", "31100", 31100, 1), target("service", "redis.service", 31200, 2)] };
}

async function hostBench(): Promise<string[]> {
  const lines: string[] = ["## Host", ""];
  const build = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: root, stdout: "ignore", stderr: "inherit" });
  if (build.exitCode !== 0) throw new Error("build failed");
  const work = mkdtempSync("/tmp/nvwa-bench-");
  const cfg = join(work, "etc");
  mkdirSync(cfg, { recursive: true });
  writeFileSync(join(cfg, "nvwa-server.yaml"), `criu_dir: ${join(work, "running")}\nlog_dir: ${join(work, "log")}\n`);
  writeFileSync(join(cfg, "nvwa-restore.yaml"), "pids: [1234, 5678]\nservices: [redis, nginx]\nrestore_net: true\n");
  for (const f of ["nvwa-server.yaml", "nvwa-restore.yaml"]) chmodSync(join(cfg, f), 0o600);
  const m = restoredManifest(join(work, "running"));
  writeManifest(m);

  // A compiled hello world is Bun's own floor on this machine: what nvwa adds is the difference.
  // It is built with the same flags and for the same (baseline) target as nvwa.
  const x64 = TARGETS.find((t) => t.arch === "x64");
  if (x64 === undefined) throw new Error("no x64 target");
  const hello = join(root, ".cache/bench-hello");
  mkdirSync(join(root, ".cache"), { recursive: true });
  writeFileSync(`${hello}.ts`, 'console.log("hi");\n');
  await compileTo(x64.bunTarget, `${hello}.ts`, hello);
  const env = { NVWA_CONFIG_DIR: cfg };
  const bin = join(root, "dist/nvwa-linux-x64");
  const nvwaCmds = (b: string, tag: string): { label: string; cmd: string[]; exitCode?: number }[] => [
    { label: `\`nvwa --help\`${tag}`, cmd: [b, "--help"] },
    { label: `\`nvwa status --jsn\` (usage error)${tag}`, cmd: [b, "status", "--jsn"], exitCode: 2 },
    { label: `\`nvwa status\` (3-target manifest)${tag}`, cmd: [b, "status"] },
  ];
  const timed = timeInterleaved(
    [{ label: "compiled Bun hello world (floor)", cmd: [hello] }, ...nvwaCmds(bin, ""), ...(compare === undefined ? [] : nvwaCmds(compare, ` — ${compare}`))],
    env,
    runs,
  );

  const loadUs: number[] = [];
  for (let i = 0; i < 500; i++) {
    const t0 = performance.now();
    loadConfig(cfg);
    loadUs.push((performance.now() - t0) * 1000);
  }
  const writeMs: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    writeManifest(m);
    writeMs.push(performance.now() - t0);
  }
  rmSync(work, { recursive: true, force: true });

  const floor = timed[0] as Timed;
  lines.push(
    `Cold start of the compiled x64 executable (\`--splitting --bytecode --format=esm --minify\`, see build/compile.ts), ${runs} interleaved rounds after 2 warm-ups; wall time of the whole process and its CPU time (user + system). The floor is a hello world compiled with the same flags and target.`,
    "",
    "| command | wall median ms | min ms | max ms | CPU median ms | wall − floor ms | CPU − floor ms |",
    "|---|---|---|---|---|---|---|",
    ...timed.map((t) => {
      const dw = median(t.wall) - median(floor.wall);
      const dc = median(t.cpu) - median(floor.cpu);
      const self = t === floor;
      return `| ${t.label} | ${f1(median(t.wall))} | ${f1(Math.min(...t.wall))} | ${f1(Math.max(...t.wall))} | ${f1(median(t.cpu))} | ${self ? "—" : f1(dw)} | ${self ? "—" : f1(dc)} |`;
    }),
    "",
    `In-process: config load (both files) median ${f1(median(loadUs))} µs over 500 runs; manifest write (temp, fsync, rename, fsync dir) median ${f2(median(writeMs))} ms over 100 runs.`,
    "",
  );

  const mc = Bun.spawnSync([process.execPath, "test/host/measure-criu.ts", "--json", "--runs", String(criuRuns)], { cwd: root, stdout: "pipe", stderr: "inherit" });
  if (mc.exitCode === 0) lines.push(...criuTables(JSON.parse(mc.stdout.toString()) as CriuResult));
  else lines.push("criu throughput: measure-criu.ts failed (see its output); no figures.", "");
  return lines;
}



function criuTables(r: CriuResult): string[] {
  const n = r.rows[0]?.runs ?? "?";
  const pct = (x: unknown): string => `${Math.round(Number(x) * 100)}%`;
  const lockLine = (l: LockCost, where: string): string =>
    `- ${where}, ${l.leftoverTables ?? "?"} CRIU-* nftables tables present: a by-hand dump (criu ${l.criuVersion}, 64 MiB, median of ${l.runs}) with nvwa's \`--network-lock ${l.networkLock}\` takes ${l.withLockDumpMs} ms (${l.withLockFrozenMs} ms frozen), without it ${l.withoutLockDumpMs} ms (${l.withoutLockFrozenMs} ms frozen).`;
  const out = [
    `criu dump of a process with N MiB of dirty anonymous memory, into the same directory, median of ${n} runs per size, in ${r.netns === "private" ? "a private network namespace (see test/host/measure-criu.ts)" : "the host's network namespace"}; each run dumps and restores the same process twice, in rotating order with dd: **by hand** is \`criu dump\` with exactly the argv and environment nvwa's plan builds (then \`criu restore\` with nvwa's restore argv), **nvwa** is the engine's checkpoint() (manifest writes, images dir, criu, the frozen tree read back) and then commit + restoreAll(). **dd** copies as many bytes as the images hold from a file in /dev/shm (a read of /dev/zero touches no memory, while criu reads every page it saves; tmpfs pages are memory, like a dumpee's) with bs=1M; dd of /dev/zero is shown for comparison with older figures. Before each timed step, page cache of its size is taken and freed and everything synced: this VM hands memory that stays free back to its host, and touching it again is slow (a 1 GiB dd: 0.25 s warm, up to 1.2 s cold), which bare metal does not do.`,
    "",
    "| MiB | image MiB | dd ms | by hand ms | nvwa ms | nvwa ÷ by hand | by hand ÷ dd | nvwa's speed, % of dd | dd /dev/zero ms | criu frozen ms (by hand / nvwa) | memdump ms | memwrite ms | criu run inside nvwa ms |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...r.rows.map((x) => `| ${x.MiB} | ${x.imageMiB} | ${x.ddMs} | ${x.handDumpMs} | ${x.nvwaDumpMs} | ${x.nvwaVsHand} | ${x.handVsDd} | ${pct(x.nvwaShareOfDd)} | ${x.ddZeroMs} | ${x.handFrozenMs} / ${x.nvwaFrozenMs} | ${x.handMemdumpMs} | ${x.handMemwriteMs} | ${x.nvwaCriuMs} |`),
    "",
    "Durable (dump, then every image fsynced: nvwa's commit, or the same syncImages by hand) and restore:",
    "",
    "| MiB | dd conv=fsync ms | by hand dump+fsync ms | nvwa dump+fsync ms | by hand restore ms | nvwa restore ms | nvwa's preflight criu probe ms | memory intact |",
    "|---|---|---|---|---|---|---|---|",
    ...r.rows.map((x) => `| ${x.MiB} | ${x.ddFsyncMs} | ${x.handDurableMs} | ${x.nvwaDurableMs} | ${x.handRestoreMs} | ${x.nvwaRestoreMs} | ${x.probeMs} | ${x.memoryIntact} |`),
    "",
  ];
  const notes: string[] = [];
  if (r.lock) notes.push(lockLine(r.lock, "Where the rows were measured (private namespace)"));
  if (r.hostLock) notes.push(lockLine(r.hostLock, "In the host's namespace"));
  if (r.fault) {
    notes.push(`- CRIU_FAULT=130 (nvwa's default): criu ${r.fault.criuVersion} without it: ${r.fault.withoutFault}.`);
    const v = r.fault.v42;
    if (v) notes.push(`- criu ${v.criuVersion}, which copes without it: dump with CRIU_FAULT=130 ${v.faultDumpMs} ms (${v.faultFrozenMs} ms frozen), unset ${v.unsetDumpMs} ms (${v.unsetFrozenMs} ms frozen), median of ${v.runs}.`);
  }
  if (notes.length > 0) out.push("Diagnostics (64 MiB, by hand):", "", ...notes, "");
  return out;
}

const out: string[] = [
  "# Benchmarks",
  "",
  `Written by \`bun run bench\` on ${new Date().toISOString()}. Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, kernel ${Bun.spawnSync(["uname", "-r"]).stdout.toString().trim()}, load average at start ${require("node:os").loadavg().map((x: number) => x.toFixed(2)).join(" ")}.`,
  "Figures are medians; the machine is shared, so compare within one run, not across runs.",
  "",
];
if (want("host")) out.push(...(await hostBench()));
if (want("guest")) {
  const { guestBench } = await import("./guest.ts");
  out.push(...(await guestBench()));
}
// Not in the default set (`bun run bench` alone): sessions of minutes each, asked for by name.
if (stages.includes("predump")) {
  const { predumpBench } = await import("./guest.ts");
  out.push(...(await predumpBench()));
}
writeFileSync(join(root, "BENCHMARKS.md"), `${out.join("\n")}\n`);
console.log(out.join("\n"));
