/**
 * Guest figures (issue 9): each workload is moved three ways inside ONE guest session (scenario
 * "bench": A nvwa update --fast, B by hand, C cold reboot), so the machine's drift cancels out of
 * the ratios; sessions repeat for medians. Workloads: a process with N MiB of dirty anonymous
 * memory (a pid target) and Redis with K keys (the redis-test service).
 *
 *   NVWA_BENCH_WORKLOADS="mem:64,mem:256,mem:1024,redis:100000,redis:1000000"
 *   NVWA_BENCH_GUEST_RUNS=3      sessions per workload (medians over them)
 * A workload named more than once gets a session each time it is named (times RUNS), its figures
 * pooled: "mem:64,redis:100000,mem:64,redis:100000" interleaves sessions so drift spreads evenly.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { failureReport, guestPanic, readEnv, ROOT, runScenario } from "../guest/scenarios.ts";
import { type BenchOrder, type BenchStatus, type SessionFigures, sessionFigures } from "./guest-timeline.ts";
import { median } from "./stats.ts";

interface Workload {
  kind: "mem" | "redis";
  size: number;
  /** Which of A (nvwa) and B (by hand) the session runs first: sessions "ab" and "ba" make ABBA. */
  order: BenchOrder;
  /** enable_lazy_restore for A, and its twin for B (criu lazy-pages, restore --lazy-pages). */
  lazy: boolean;
  /** enable_pre_dump for A, and its twin for B (one `criu pre-dump` round, then the final dump on it). */
  pre: boolean;
}

/** "mem:256", "mem:256:ba", "mem:1024:lazy", "mem:1024:ba+lazy", "mem:1024:pre+lazy". */
function parseWorkloads(spec: string): Workload[] {
  const seen = new Map<string, Workload>();
  return spec.split(",").map((w) => {
    const known = seen.get(w);
    if (known !== undefined) return known;
    const [kind, size, opts = ""] = w.split(":");
    const flags = opts === "" ? [] : opts.split("+");
    if ((kind !== "mem" && kind !== "redis") || !Number.isInteger(Number(size)) || flags.some((f) => f !== "ba" && f !== "lazy" && f !== "pre")) {
      throw new Error(`NVWA_BENCH_WORKLOADS: bad entry '${w}' (mem:<MiB> or redis:<keys>, then optionally :ba, :lazy, :pre or several joined with +)`);
    }
    if (kind === "redis" && flags.includes("ba")) throw new Error(`NVWA_BENCH_WORKLOADS: '${w}': order ba needs the memory workload (a by-hand restore leaves Redis outside its unit)`);
    const parsed: Workload = { kind, size: Number(size), order: flags.includes("ba") ? "ba" : "ab", lazy: flags.includes("lazy"), pre: flags.includes("pre") };
    seen.set(w, parsed);
    return parsed;
  });
}

/** The bench scenario's warm-up boots (scenarios/bench/run.sh WARM). */
const WARM_BOOTS = 2;

const label = (w: Workload): string =>
  `${w.kind === "mem" ? `process, ${w.size} MiB dirty` : `Redis, ${w.size.toLocaleString("en")} keys`}${w.order === "ba" ? ", B before A" : ""}${w.pre ? ", pre-dump" : ""}${w.lazy ? ", lazy restore" : ""}`;
const s2 = (x: number): string => x.toFixed(2);

/** The figures of one finished bench session, from its run directory. */
function figuresOf(runDir: string, results: Record<string, string>, order: BenchOrder): SessionFigures {
  const serial = readFileSync(join(runDir, "serial.log"), "utf8");
  const status = (n: number): BenchStatus => JSON.parse(readFileSync(join(runDir, `results/nvwa-status-${n}.json`), "utf8")) as BenchStatus;
  const journalPath = join(runDir, "results/journal.txt");
  const journal = existsSync(journalPath) ? readFileSync(journalPath, "utf8") : "";
  return sessionFigures(serial, [status(1), status(2)], results, WARM_BOOTS, journal, order);
}

/**
 * The report again from finished sessions' run directories (/tmp/nvwa-guest-bench-*), without
 * running anything: `bun test/bench/guest.ts --from DIR...`. Sessions that did not pass are skipped.
 */
export function guestReportFromRuns(dirs: string[]): string[] {
  const byLabel = new Map<string, Workload>();
  const workloads: Workload[] = [];
  const results = new Map<Workload, SessionFigures[]>();
  const failures: string[] = [];
  for (const dir of dirs) {
    try {
      if (readFileSync(join(dir, "results/status"), "utf8").trim() !== "0") throw new Error("the session did not pass");
      const env = readEnv(join(dir, "results/result.env"));
      const [kind, size] = (env.workload ?? "").split(" ");
      const flags = [...(env.order === "ba" ? ["ba"] : []), ...(env.predump === "1" ? ["pre"] : []), ...(env.lazy === "1" ? ["lazy"] : [])];
      const key = `${kind}:${size}${flags.length === 0 ? "" : `:${flags.join("+")}`}`;
      let w = byLabel.get(key);
      if (w === undefined) {
        [w] = parseWorkloads(key);
        if (w === undefined) throw new Error(`no workload in ${dir}`);
        byLabel.set(key, w);
        workloads.push(w);
      }
      results.set(w, [...(results.get(w) ?? []), figuresOf(dir, env, w.order)]);
    } catch (e) {
      failures.push(`${dir}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return report(workloads, results, 1, failures);
}

if (import.meta.main && process.argv[2] === "--from") console.log(guestReportFromRuns(process.argv.slice(3)).join("\n"));

export async function guestBench(): Promise<string[]> {
  const workloads = parseWorkloads(process.env.NVWA_BENCH_WORKLOADS ?? "mem:64,mem:256,mem:1024,redis:100000,redis:1000000");
  const runs = Number(process.env.NVWA_BENCH_GUEST_RUNS ?? "3");
  const build = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
  if (build.exitCode !== 0) throw new Error("build failed");

  const work = mkdtempSync("/tmp/nvwa-bench-guest-");
  // Seven boots: two warm-up kexecs, then A, A2, B, C (the runner allows 6 by default).
  const boots = join(work, "runner-boots.conf");
  writeFileSync(boots, "[Service]\nEnvironment=NVWA_MAX_BOOTS=8\n");
  const results = new Map<Workload, SessionFigures[]>();
  const failures: string[] = [];
  for (const w of workloads) {
    const env = join(work, `${w.kind}-${w.size}-${w.order}${w.pre ? "-pre" : ""}${w.lazy ? "-lazy" : ""}.env`);
    // Beyond 1 GiB the guest needs more memory (the process, criu's buffers, the page cache of
    // its images) and more disk (the images of A, B and the warm-up dump, one at a time, each
    // about the memory; with pre-dump twice that) than the image's 1.5 GiB of slack, and time.
    const big = w.kind === "mem" && w.size > 1024;
    const grow = big ? w.size * 3 : 0;
    writeFileSync(env, `WORKLOAD=${w.kind}\nSIZE=${w.size}\nORDER=${w.order}\nLAZY=${w.lazy ? 1 : 0}\nPREDUMP=${w.pre ? 1 : 0}\n${big ? "GROW_FS=1\n" : ""}`);
    const sizeArgs = big ? ["--mem", `${Math.ceil((w.size * 2.5) / 1024)}G`, "--disk-grow", String(grow), "--timeout", "7200"] : ["--mem", "3G"];
    for (let i = 0; i < runs; i++) {
      // A session in which a guest kernel panicked (an emulator fault) may still pass with its
      // boots shifted; it is discarded and run once more, like runScenario does for a failed one.
      for (let attempt = 1; attempt <= 2; attempt++) {
        const r = await runScenario("bench", {
          adds: [
            [env, "/etc/nvwa-bench.env"],
            [boots, "/etc/systemd/system/nvwa-guest-runner.service.d/bench.conf"],
          ],
          args: [...sizeArgs, "--allow-reboot"],
        });
        if (r.status !== 0) {
          process.stderr.write(`${failureReport(r)}\n`);
          failures.push(`${label(w)} run ${i + 1}: status ${r.status} (${r.out})`);
          break;
        }
        try {
          const f = figuresOf(r.out, r.results, w.order);
          results.set(w, [...(results.get(w) ?? []), f]);
          process.stderr.write(`bench ${label(w)} run ${i + 1}: nvwa ${s2(f.nvwa.downtime)} s (back ${s2(f.nvwaBack.downtime)} s), by hand ${s2(f.byHand.downtime)} s, cold ${s2(f.cold.downtime)} s\n`);
          break;
        } catch (e) {
          const panic = guestPanic(r.out);
          failures.push(`${label(w)} run ${i + 1}${attempt > 1 ? " (again)" : ""}: ${e instanceof Error ? e.message : String(e)} (${r.out})`);
          if (panic === null) break;
          process.stderr.write(`bench ${label(w)} run ${i + 1}: the guest kernel panicked (${panic}); session discarded, running it once more\n`);
        }
      }
    }
  }
  return report(workloads, results, runs, failures);
}

function report(workloads: Workload[], results: Map<Workload, SessionFigures[]>, runs: number, failures: string[]): string[] {
  const lines = [
    "## Guest (QEMU TCG x86_64, Debian 6.1 ⇄ 6.12)",
    "",
    "Each session first jumps to 6.12 and back with a bare `kexec -e` (not measured: under TCG the first run of a kernel's decompressor and early boot after a kexec pays for QEMU translating that code, which had made whichever mode came first look seconds slower), then moves one workload three ways in one guest: **A** `nvwa update --fast` 6.1 → 6.12 (and **A2** back to 6.1), **B** by hand 6.1 → 6.12 like A (`kexec -s -l` first, then `criu dump` with nvwa's options, `sync`, `kexec -e`, and `criu restore` from an early unit ordered like nvwa.service), **C** cold (`systemctl reboot`, the workload started from scratch by systemd; Redis loads an RDB saved just before, not timed). Downtime: A from nvwa's dump start to its restore end; B from `criu dump` to the end of `criu restore`; C from `systemctl reboot` to the workload being ready (memory written / Redis active after loading). Clocks: host stamps on the serial console; guest wall-clock times (nvwa's manifest, ready times) mapped per boot through markers that print both.",
    'Sessions marked "B before A" run B first, then A2, then A (the runs make A B B A sequences with the unmarked ones, to tell order effects from nvwa\'s). "lazy restore": A with enable_lazy_restore, and B with its twin by hand (`criu lazy-pages -d`, then `criu restore --lazy-pages`); the downtime ends when the process runs again. "pre-dump": A with enable_pre_dump, and B with one `criu pre-dump --track-mem` round by hand before its final `criu dump --track-mem --prev-images-dir`; the rounds run before the freeze and are not downtime.',
    `Medians over the sessions in the "runs" column (${runs} per time a workload was named), seconds. nvwa's own overhead is the issue's definition: downtime − (dump + kexec-to-nvwa-start + restore).`,
    "",
    "| workload | runs | A nvwa s | B by hand s | C cold s | A ÷ B | A ÷ C | nvwa overhead s | overhead ÷ A | A2 nvwa back s | frozen by criu s | image MiB |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  const med = (fs: SessionFigures[], f: (x: SessionFigures) => number): number => median(fs.map(f));
  for (const w of new Set(workloads)) {
    const fs = results.get(w) ?? [];
    if (fs.length === 0) {
      lines.push(`| ${label(w)} | 0 | – | – | – | – | – | – | – | – | – | – |`);
      continue;
    }
    const a = med(fs, (x) => x.nvwa.downtime);
    const b = med(fs, (x) => x.byHand.downtime);
    const c = med(fs, (x) => x.cold.downtime);
    const o = med(fs, (x) => x.nvwa.overhead);
    lines.push(`| ${label(w)} | ${fs.length} | ${s2(a)} | ${s2(b)} | ${s2(c)} | ${s2(a / b)} | ${s2(a / c)} | ${s2(o)} | ${((o / a) * 100).toFixed(1)} % | ${s2(med(fs, (x) => x.nvwaBack.downtime))} | ${s2(med(fs, (x) => x.nvwa.frozen))} | ${(med(fs, (x) => x.nvwa.imageBytes) / 2 ** 20).toFixed(0)} |`);
  }
  lines.push("", "Phases (medians, seconds; each mode's phases add up to its downtime):", "");
  for (const w of new Set(workloads)) {
    const fs = results.get(w) ?? [];
    if (fs.length === 0) continue;
    lines.push(`**${label(w)}**`, "");
    for (const [name, pick] of [
      ["A nvwa", (x: SessionFigures) => x.nvwa.phases],
      ["A2 nvwa back", (x: SessionFigures) => x.nvwaBack.phases],
      ["B by hand", (x: SessionFigures) => x.byHand.phases],
      ["C cold", (x: SessionFigures) => x.cold.phases],
    ] as const) {
      // By name: sessions of builds that split a phase further have more of them.
      const names = [...new Set(fs.flatMap((x) => pick(x).map(([n]) => n)))];
      const cells = names.map((n) => {
        const xs = fs.flatMap((x) => pick(x).filter(([m]) => m === n).map(([, v]) => v));
        return `${n} ${s2(median(xs))}${xs.length < fs.length ? ` (${xs.length} of ${fs.length})` : ""}`;
      });
      lines.push(`- ${name}: ${cells.join(" · ")}`);
    }
    const back = fs.map((x) => x.nvwa.memoryBack).filter((x): x is number => x !== undefined);
    if (back.length > 0) lines.push(`- A lazy restore: memory all back ${s2(median(back))} after the restore (the process runs meanwhile; not downtime)`);
    const pre = fs.map((x) => x.nvwa.preDump).filter((x): x is { seconds: number; mib: number; rounds: number } => x !== undefined);
    if (pre.length > 0) {
      lines.push(`- A pre-dump (while the process ran, before the freeze; not downtime; with each round's flush where recorded): ${s2(median(pre.map((x) => x.seconds)))} s in ${median(pre.map((x) => x.rounds))} round(s), ${median(pre.map((x) => x.mib)).toFixed(0)} MiB written`);
    }
    const bPre = fs.map((x) => x.byHandPreDump).filter((x): x is number => x !== undefined);
    if (bPre.length > 0) lines.push(`- B pre-dump by hand (one round, before the freeze; not downtime): ${s2(median(bPre))}`);
    const warm = fs.map((x) => x.warmDump).filter((x): x is number => x !== null);
    if (warm.length > 0) lines.push(`- warm-up criu dump before A (not in any figure): ${s2(median(warm))}`);
    lines.push("");
  }
  if (failures.length > 0) lines.push("Sessions without figures:", "", ...failures.map((f) => `- ${f}`), "");
  return lines;
}

/** "ok frozen 1234.5 ms (stopped 1300.2 ms), dump 2345 ms, images 12.3 MiB, …" → its numbers. */
export function rehearsalFigures(row: string | undefined): { frozenMs: number; stoppedMs: number; imageMiB: number } | null {
  const m = /^ok frozen ([\d.]+) ms \(stopped ([\d.]+) ms\), dump [\d.]+ ms, images ([\d.]+) MiB/.exec(row ?? "");
  return m === null ? null : { frozenMs: Number(m[1]), stoppedMs: Number(m[2]), imageMiB: Number(m[3]) };
}

/**
 * Pre-dump's freeze against a full dump's, same process, same boot (scenario "predump" with
 * REHEARSE_ONLY=1: two `nvwa check --rehearse`, no jump). NVWA_BENCH_PREDUMP="1024:2,3072:2"
 * (MiB:rewritten MiB per second), NVWA_BENCH_GUEST_RUNS sessions each. The issue's target: the
 * freeze with pre-dump ≤ 15 % of the full dump's, for a process rewriting ≤ 2 % of its memory
 * between the last round and the dump (the final image's size says how much it was).
 */
export async function predumpBench(): Promise<string[]> {
  const specs = (process.env.NVWA_BENCH_PREDUMP ?? "1024:2").split(",").map((x) => x.split(":").map(Number) as [number, number]);
  const runs = Number(process.env.NVWA_BENCH_GUEST_RUNS ?? "3");
  const build = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
  if (build.exitCode !== 0) throw new Error("build failed");
  const work = mkdtempSync("/tmp/nvwa-bench-predump-");
  const lines = [
    "### Pre-dump: the freeze with and without it (rehearsals, same process, same boot)",
    "",
    "`nvwa check --rehearse` twice on one memhog process that keeps rewriting its memory: with a full dump, then with `enable_pre_dump` (rounds while it runs, then the final dump of what changed). Frozen: criu's freeze of the final dump; stopped: the whole time the process did not run, the rounds' short freezes included. Final image: how much changed between the last round and the dump.",
    "",
    "| process MiB | rewrites MiB/s | runs | frozen full s | frozen pre-dump s | pre ÷ full | stopped pre-dump s | final image MiB (of memory) | target ≤ 15 % |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  const failures: string[] = [];
  for (const [mib, dirty] of specs) {
    const env = join(work, `predump-${mib}-${dirty}.env`);
    // Room for the full dump and the rounds (each about the memory) beyond the image's 1.5 GiB of slack.
    const grow = mib > 512 ? mib * 3 : 0;
    writeFileSync(env, `MIB=${mib}\nDIRTY=${dirty}\nREHEARSE_ONLY=1\n${grow > 0 ? "GROW_FS=1\n" : ""}`);
    const rows: { full: number; pre: number; stopped: number; image: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await runScenario("predump", { adds: [[env, "/etc/nvwa-predump.env"]], args: ["--mem", `${Math.max(3, Math.ceil((mib * 2.5) / 1024))}G`, ...(grow > 0 ? ["--disk-grow", String(grow)] : [])] });
      const full = rehearsalFigures(r.results.rehearse_full);
      const pre = rehearsalFigures(r.results.rehearse_pre);
      if (r.status !== 0 || full === null || pre === null) {
        process.stderr.write(`${failureReport(r)}\n`);
        failures.push(`${mib} MiB run ${i + 1}: status ${r.status} (${r.out})`);
        continue;
      }
      rows.push({ full: full.frozenMs / 1000, pre: pre.frozenMs / 1000, stopped: pre.stoppedMs / 1000, image: pre.imageMiB });
      process.stderr.write(`bench pre-dump ${mib} MiB run ${i + 1}: frozen ${s2(full.frozenMs / 1000)} s full, ${s2(pre.frozenMs / 1000)} s pre-dumped, final image ${pre.imageMiB} MiB\n`);
    }
    if (rows.length === 0) {
      lines.push(`| ${mib} | ${dirty} | 0 | – | – | – | – | – | – |`);
      continue;
    }
    const full = median(rows.map((x) => x.full));
    const pre = median(rows.map((x) => x.pre));
    const image = median(rows.map((x) => x.image));
    const ratio = pre / full;
    lines.push(
      `| ${mib} | ${dirty} | ${rows.length} | ${s2(full)} | ${s2(pre)} | ${(ratio * 100).toFixed(1)} % | ${s2(median(rows.map((x) => x.stopped)))} | ${image.toFixed(1)} (${((image / mib) * 100).toFixed(1)} %) | ${ratio <= 0.15 ? "met" : "not met"} |`,
    );
  }
  lines.push("");
  if (failures.length > 0) lines.push("Sessions without figures:", "", ...failures.map((f) => `- ${f}`), "");
  return lines;
}
