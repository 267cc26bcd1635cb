/**
 * enable_pre_dump on x86_64 (soft-dirty) in the guest: a 512 MiB process that keeps rewriting 4 MiB
 * a second is rehearsed with a full dump and with pre-dump rounds (its freeze measured both ways,
 * same process, same boot), then updated 6.1 → 6.12 with pre-dump and the fast jump, and re-reads
 * every byte of its memory after the restore. criu's pre-dump cannot run on the CI host (its kernel
 * has no soft-dirty), so this is where the chain, its parent link and its restore are proven.
 * Then enable_lazy_restore back to 6.1 with bookworm's criu 3.17.1 (the host tests run trixie's
 * 4.1.1): the same process runs before its memory is back and re-reads all of it; a second one,
 * whose lazy-pages daemon is killed for real right after its restore, is killed and lost by name.
 * Then both together to 6.12 again: pre-dump rounds, a final dump chained to them, a lazy restore,
 * and every byte re-read once more.
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

test("pre-dump: the 512 MiB process is frozen for a fraction of its full dump, and every byte of it comes back after the jump; then lazily, back, with a second process whose lazy-pages daemon is killed; then both together", async () => {
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
  // Each round is flushed while the process still runs, so the commit's fsync (downtime) finds little.
  expect(r.results.rehearse_pre_notes).toMatch(/pre-dump 1: [\d.]+ MiB written in \d+ ms while it ran.*, on disk \d+ ms later/);

  // A daemon stop after the first pre-dump round: rolled back, nothing frozen, nothing left.
  expect(r.results.stopped_rc).not.toBe("0");
  expect(r.results.stopped_phase).toBe("rolled-back");
  expect(r.results.stopped_rounds_left).toBe("");
  expect(r.results.stopped_kexec_loaded).toBe("0");
  expect(r.results.stopped_verify).toStartWith("verify ok");

  // The update: its rounds, the parent the final dump chained to, pages taken from the parent.
  expect(r.results.kernel_after).toBe(r.kernels.new);
  expect(r.results.phase).toBe("restored");
  expect(r.results.pre_rounds).toMatch(/^pre-1:5\d\dMiB:\d+ms:synced-\d+ms/);
  expect(r.results.pre_parent).toMatch(/^pre-\d$/);
  const stats = Object.fromEntries((r.results.final_stats ?? "").split(" ").map((kv) => kv.split("=")).map(([k, v]) => [k, Number(v)]));
  expect(stats.pagesSkippedParent).toBeGreaterThan(100_000); // most of 131 072 pages came from the rounds
  expect(stats.pagesWritten).toBeLessThan((stats.pagesScanned ?? 0) / 4);
  // Every byte of the 512 MiB against what the process wrote; no round or final image left.
  expect(r.results.verify_after).toStartWith("verify ok");
  expect(r.results.images_left).toBe("none");

  // Boot 3, enable_lazy_restore back to the old kernel (same 512 MiB process, dumped in full).
  expect(r.results.check_lazy).toStartWith("ok non-cooperative userfaultfd works on this kernel");
  expect(r.results.lazy_kernel).toBe(r.kernels.old);
  expect(r.results.lazy_phase).toBe("restore-failed"); // the second target was lost on purpose
  expect(r.results.lazy_a).toBe("restored done exit code 0");
  // criu itself put back only what cannot be lazy: far fewer than its 131 072 pages.
  expect(Number(r.results.lazy_a_pages_restored)).toBeLessThan(131_072 / 4);
  expect(r.results.lazy_verify).toStartWith("verify ok");
  expect(r.results.lazy_a_images_left).toBe("none");
  // The second: its daemon killed right after its restore; killed with it, lost by name, images kept.
  expect(r.results.lazy_b).toBe("lost lost restore.lazy-pages-lost");
  expect(r.results.lazy_b_message).toMatch(/^\d+ is damaged: criu's lazy-pages daemon ended \(killed by SIGKILL\) before all of its memory was back, so pages not yet copied would read as zeros; nvwa killed it \(1 process\(es\), pid \d+\)$/);
  expect(r.results.lazy_b_alive).toBe("gone");
  expect(r.results.lazy_b_images).toBe("kept");
  expect(r.results.lazy_status_text).toMatch(/memory \(lazy restore\): all back [\d.]+ m?s after it ran again\|memory \(lazy restore\): lost: the lazy-pages daemon ended early\|/);
  expect(r.results.lazy_log).toContain("is damaged");
  expect(r.results.lazy_log).toContain("all of its memory is back");
  // Boot 4, both together to the new kernel: rounds, a final dump chained to them (most pages
  // taken from the rounds), restored lazily with every byte right and nothing left behind.
  expect(r.results.both_kernel).toBe(r.kernels.new);
  expect(r.results.both_phase).toBe("restored");
  expect(r.results.both_target).toMatch(/^restored done exit code 0 pre-\d$/);
  expect(Number(r.results.both_rounds)).toBeGreaterThan(0);
  expect(Number(r.results.both_skipped_parent)).toBeGreaterThan(100_000);
  expect(r.results.both_verify).toStartWith("verify ok");
  expect(r.results.both_images_left).toBe("none");
  const eager = Number(r.results.restore_ms_eager);
  const lazyRun = Number(r.results.lazy_a_restore_ms);
  expect(lazyRun).toBeGreaterThan(0);
  process.stdout.write(
    `pre-dump + lazy restore (512 MiB): restore ${r.results.both_restore_ms} ms, ${r.results.both_pages_restored} pages restored by criu itself; ` +
      `lazy restore (512 MiB): restore ${lazyRun} ms, all memory back ${r.results.lazy_a_memory_ms} ms later; ` +
      `the same process restored in full from its pre-dump chain on boot 2: ${eager} ms\n`,
  );
  process.stdout.write(
    `pre-dump: frozen ${full.frozenMs} ms full vs ${pre.frozenMs} ms pre-dumped (${((pre.frozenMs / full.frozenMs) * 100).toFixed(1)} %), ` +
      `final images ${full.imageMiB} vs ${pre.imageMiB} MiB; update rounds ${r.results.pre_rounds}, final ${r.results.final_stats}, downtime ${r.results.downtime_ms} ms\n`,
  );
}, 3_000_000);
