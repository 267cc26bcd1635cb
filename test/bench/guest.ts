/**
 * Guest figures: the upgrade scenario run N times under TCG, nvwa's own per-phase timings and each
 * target's downtime (dump start → restored) from `nvwa status --json`, medians over the runs.
 * The by-hand baseline (criu dump; kexec; criu restore) and the cold reboot of issue 9 are not
 * written yet; they are named here so the gap is visible in BENCHMARKS.md.
 */
import { median } from "./stats.ts";

interface Status {
  phases: { name: string; ms: number }[];
  targets: { name: string; downtimeMs?: number; steps: { name: string; ms: number }[] }[];
}

export async function guestBench(runs = Number(process.env.NVWA_BENCH_GUEST_RUNS ?? "3")): Promise<string[]> {
  const { ROOT, runScenario } = await import("../guest/scenarios.ts");
  const build = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
  if (build.exitCode !== 0) throw new Error("build failed");
  const samples: Status[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await runScenario("upgrade");
    if (r.status === 0 && r.nvwaStatus !== null) samples.push(r.nvwaStatus as Status);
  }
  const lines = ["## Guest (QEMU TCG x86_64, Debian 6.1 → 6.12)", ""];
  if (samples.length === 0) return [...lines, "No successful run; no figures.", ""];
  const phaseNames = [...new Set(samples.flatMap((s) => s.phases.map((p) => p.name)))];
  const targetNames = [...new Set(samples.flatMap((s) => s.targets.map((t) => t.name)))];
  const sec = (ms: number): string => (ms / 1000).toFixed(2);
  lines.push(
    `The upgrade scenario (a counter process and Redis with 100 000 keys, restore_net on), ${samples.length} successful run(s) of ${runs}; medians in seconds of guest wall time. Phases are nvwa's manifest phases (planned: drop-ins and reload; checkpointing: the dumps; dumped: restore drop-ins and commit; jumping: kexec to the new kernel's nvwa.service; boot-restore: network, processes and services).`,
    "",
    `| phase | ${phaseNames.join(" | ")} |`,
    `|---|${phaseNames.map(() => "---").join("|")}|`,
    `| median s | ${phaseNames.map((n) => sec(median(samples.map((s) => s.phases.find((p) => p.name === n)?.ms ?? 0)))).join(" | ")} |`,
    "",
    "| target | downtime s | dump s | restore s |",
    "|---|---|---|---|",
    ...targetNames.map((n) => {
      const ts = samples.map((s) => s.targets.find((t) => t.name === n));
      const step = (k: string): string => sec(median(ts.map((t) => t?.steps.find((x) => x.name === k)?.ms ?? 0)));
      return `| ${n} | ${sec(median(ts.map((t) => t?.downtimeMs ?? 0)))} | ${step("dump")} | ${step("restore")} |`;
    }),
    "",
    "Not measured yet: the same workload moved by a by-hand sequence (criu dump; kexec_file_load; reboot; criu restore) and the cold path (reboot, service started from scratch, Redis loading its RDB), hence no ours/by-hand or ours/cold ratios and no overhead figure.",
    "",
  );
  return lines;
}
