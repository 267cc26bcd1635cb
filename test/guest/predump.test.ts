/**
 * enable_pre_dump on x86_64 (soft-dirty) in the guest: a 512 MiB process that keeps rewriting 4 MiB
 * a second is rehearsed with a full dump and with pre-dump rounds (its freeze measured both ways,
 * same process, same boot), then updated 6.1 → 6.12 with pre-dump and the fast jump, and re-reads
 * every byte of its memory after the restore. criu's pre-dump cannot run on the CI host (its kernel
 * has no soft-dirty), so this is where the chain, its parent link and its restore are proven.
 */
import { beforeAll, expect, test } from "bun:test";
import { failureReport, ROOT, runScenario } from "./scenarios.ts";

beforeAll(() => {
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
}, 300_000);

/** "ok frozen 1234.5 ms (stopped …), dump 2345 ms, images 12.3 MiB, …" → its numbers. */
function rehearsal(row: string | undefined): { frozenMs: number; dumpMs: number; imageMiB: number } {
  const m = /^ok frozen ([\d.]+) ms .*dump ([\d.]+) ms, images ([\d.]+) MiB/.exec(row ?? "");
  expect(m, `rehearsal row: ${row}`).not.toBeNull();
  return { frozenMs: Number(m?.[1]), dumpMs: Number(m?.[2]), imageMiB: Number(m?.[3]) };
}

test("pre-dump: the 512 MiB process is frozen for a fraction of its full dump, and every byte of it comes back after the jump", async () => {
  const r = await runScenario("predump", { args: ["--mem", "3G"] });
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);
  expect(r.results.check_pre_dump).toStartWith("ok soft-dirty pages are tracked");

  // Same process, same boot: the freeze with a full dump, and with pre-dump rounds first.
  const full = rehearsal(r.results.rehearse_full);
  const pre = rehearsal(r.results.rehearse_pre);
  expect(full.imageMiB).toBeGreaterThan(500);
  expect(pre.imageMiB).toBeLessThan(full.imageMiB / 4); // the final dump holds only what changed
  expect(pre.frozenMs).toBeLessThan(full.frozenMs / 2);
  expect(r.results.rehearse_pre_notes).toContain("pre-dump 1: ");

  // The update: its rounds, the parent the final dump chained to, pages taken from the parent.
  expect(r.results.kernel_after).toBe(r.kernels.new);
  expect(r.results.phase).toBe("restored");
  expect(r.results.pre_rounds).toMatch(/^pre-1:5\d\dMiB:\d+ms/);
  expect(r.results.pre_parent).toMatch(/^pre-\d$/);
  const stats = Object.fromEntries((r.results.final_stats ?? "").split(" ").map((kv) => kv.split("=")).map(([k, v]) => [k, Number(v)]));
  expect(stats.pagesSkippedParent).toBeGreaterThan(100_000); // most of 131 072 pages came from the rounds
  expect(stats.pagesWritten).toBeLessThan((stats.pagesScanned ?? 0) / 4);
  // Every byte of the 512 MiB against what the process wrote; no round or final image left.
  expect(r.results.verify_after).toStartWith("verify ok");
  expect(r.results.images_left).toBe("none");
  process.stdout.write(
    `pre-dump: frozen ${full.frozenMs} ms full vs ${pre.frozenMs} ms pre-dumped (${((pre.frozenMs / full.frozenMs) * 100).toFixed(1)} %), ` +
      `final images ${full.imageMiB} vs ${pre.imageMiB} MiB; update rounds ${r.results.pre_rounds}, final ${r.results.final_stats}, downtime ${r.results.downtime_ms} ms\n`,
  );
}, 2_400_000);
