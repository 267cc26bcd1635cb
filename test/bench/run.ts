/**
 * `bun run bench`: measures and writes BENCHMARKS.md (date, machine, method, raw figures).
 * Speed goals live here, never in tests. Stages:
 *
 *   host    CLI cold start (--help, status), config load, manifest write, and criu dump/restore
 *           throughput against dd of the same bytes (test/host/measure-criu.ts)
 *   guest   nvwa update vs a by-hand criu+kexec sequence vs a cold reboot, in the QEMU guest
 *           (test/bench/guest.ts), when the guest harness is available
 *
 *   bun test/bench/run.ts [host] [guest] [--runs N]
 */
import { cpus, totalmem } from "node:os";
import { mkdtempSync, writeFileSync, rmSync, mkdirSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { newManifest } from "../../src/state/manifest.ts";
import { writeManifest } from "../../src/state/manifest-file.ts";
import { median } from "./stats.ts";

const root = join(import.meta.dir, "../..");
const argv = process.argv.slice(2);
const runsArg = argv.indexOf("--runs");
const runs = runsArg >= 0 ? Number(argv[runsArg + 1]) : 31;
const stages = argv.filter((a, i) => !a.startsWith("--") && argv[i - 1] !== "--runs");
const want = (s: string): boolean => stages.length === 0 || stages.includes(s);


function timeCommand(cmd: string[], env: Record<string, string>, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n + 2; i++) {
    const t0 = performance.now();
    const p = Bun.spawnSync(cmd, { env: { ...process.env, ...env }, stdout: "ignore", stderr: "ignore" });
    const ms = performance.now() - t0;
    if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${p.exitCode}`);
    if (i >= 2) out.push(ms); // two warm-up runs: page cache, not a first-ever start
  }
  return out;
}

const f1 = (x: number): string => x.toFixed(1);

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
  const m = newManifest({
    kernel: { from: "6.1.0-57-cloud-amd64", to: "6.12.95+deb12-cloud-amd64", loader: "kexec_file_load" },
    criuDir: join(work, "running"),
    options: { debug: false, pinMemory: false, restoreNet: true, tcpEstablished: true, extUnixSk: true, fileLocks: true, hardwareBreakpoints: false, rehearsal: false },
  });
  writeManifest(m);

  // A compiled hello world is Bun's own floor on this machine: what nvwa adds is the difference.
  const hello = join(root, ".cache/bench-hello");
  mkdirSync(join(root, ".cache"), { recursive: true });
  writeFileSync(`${hello}.ts`, 'console.log("hi");\n');
  Bun.spawnSync([process.execPath, "build", "--compile", "--minify", `${hello}.ts`, "--outfile", hello], { cwd: root, stdout: "ignore", stderr: "ignore" });
  const env = { NVWA_CONFIG_DIR: cfg };
  const bin = join(root, "dist/nvwa-linux-x64");
  const helpMs = timeCommand([bin, "--help"], env, runs);
  const statusMs = timeCommand([bin, "status"], env, runs);
  const helloMs = timeCommand([hello], env, runs);
  rmSync(join(root, ".cache/main.js.map"), { force: true });

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

  lines.push(
    `Cold start of the compiled x64 executable, ${runs} runs each after 2 warm-ups (wall time of the whole process):`,
    "",
    "| command | median ms | min ms | max ms |",
    "|---|---|---|---|",
    `| \`nvwa --help\` | ${f1(median(helpMs))} | ${f1(Math.min(...helpMs))} | ${f1(Math.max(...helpMs))} |`,
    `| \`nvwa status\` (3-target manifest) | ${f1(median(statusMs))} | ${f1(Math.min(...statusMs))} | ${f1(Math.max(...statusMs))} |`,
    `| compiled Bun hello world (floor) | ${f1(median(helloMs))} | ${f1(Math.min(...helloMs))} | ${f1(Math.max(...helloMs))} |`,
    "",
    `nvwa's own share of \`--help\`: ${f1(median(helpMs) - median(helloMs))} ms (median minus the floor); of \`status\`: ${f1(median(statusMs) - median(helloMs))} ms.`,
    "",
    `In-process: config load (both files) median ${f1(median(loadUs))} µs over 500 runs; manifest write (temp, fsync, rename, fsync dir) median ${median(writeMs).toFixed(2)} ms over 100 runs.`,
    "",
  );

  const mc = Bun.spawnSync([process.execPath, "test/host/measure-criu.ts", "--json", "--runs", "3"], { cwd: root, stdout: "pipe", stderr: "inherit" });
  if (mc.exitCode === 0) {
    const rows = JSON.parse(mc.stdout.toString()) as Record<string, number | boolean>[];
    lines.push(
      "criu dump and restore through nvwa's engine (checkpoint → commit with fsync → restore), a process with N MiB of dirty anonymous memory, median of 3; `dd if=/dev/zero bs=1M` of the same bytes into the same directory:",
      "",
      "| MiB | dump ms | dump MB/s | dd ms | dd MB/s | dump ÷ dd | dump+fsync ms | dd conv=fsync ms | durable ÷ dd | restore ms | restore MB/s | memory intact |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
      ...rows.map((r) => `| ${r.MiB} | ${r.dumpMs} | ${r.dumpMBps} | ${r.ddMs} | ${r.ddMBps} | ${r.dumpVsDd} | ${r.dumpPlusSyncMs} | ${r.ddFsyncMs} | ${r.durableVsDd} | ${r.restoreMs} | ${r.restoreMBps} | ${r.memoryIntact} |`),
      "",
    );
  } else {
    lines.push("criu throughput: measure-criu.ts failed (see its output); no figures.", "");
  }
  return lines;
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
writeFileSync(join(root, "BENCHMARKS.md"), `${out.join("\n")}\n`);
console.log(out.join("\n"));
