/**
 * 6. criu_dir on a tiny tmpfs that fills up in the middle of a dump: the tree frozen before is
 * resumed, the failing one keeps running with its memory intact, and the error says why.
 * The tmpfs is mounted on a temp dir for this test only and unmounted after it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError } from "../../src/errors.ts";
import { checkpoint } from "../../src/update/checkpoint.ts";
import { gatherCheckpointFacts } from "../../src/criu/facts.ts";
import { planCheckpoint } from "../../src/criu/plan.ts";
import { probeCriu } from "../../src/criu/probe.ts";
import { config, countsPast, isRunning, testCriu, waitFor, Workloads } from "./helpers/criu-env.ts";

const work = new Workloads();
const mnt = mkdtempSync(join(tmpdir(), "nvwa-tinyfs-"));
let mounted = false;

function sh(argv: string[]): void {
  const r = Bun.spawnSync(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
}

beforeAll(() => {
  // 12 MiB: room for the manifest, a python counter's images (~3 MiB) and the logs, not for a
  // process with 32 MiB of dirty memory.
  sh(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "nvwa-test-tiny", mnt]);
  mounted = true;
});

afterAll(() => {
  work.killAll();
  if (mounted) sh(["umount", mnt]);
  rmSync(mnt, { recursive: true, force: true });
});

test("6. a full criu_dir mid-dump: rollback and a clear error", async () => {
  const criu = testCriu();
  const small = await work.start("counter");
  const big = await work.start("memory", "32");
  await countsPast(small, "count", 1);
  await waitFor("memory workload ready", () => big.num("ready"), 60_000);
  const dir = join(mnt, "running");
  const plan = planCheckpoint(config(dir, criu, { pids: [small.pid, big.pid] }), gatherCheckpointFacts(await probeCriu(criu)));
  let error: unknown;
  try {
    await checkpoint(plan);
  } catch (e) {
    error = e;
  }
  if (!isNvwaError(error)) throw error ?? new Error("the dump on a full disk succeeded");
  expect(error.code).toBe("checkpoint.dump-failed");
  expect(error.message).toStartWith(`cannot checkpoint pid ${big.pid}: criu dump failed`);
  expect(error.message).toMatch(/No space left on device|ENOSPC/);
  expect(error.hint).toContain("free space");
  expect(error.message).toContain(`rolled back: ${small.pid} resumed`);

  await countsPast(small, "count", small.num("count") ?? -1);
  expect(isRunning(small.pid)).toBe(true);
  expect(isRunning(big.pid)).toBe(true);
  // Its memory is intact: it re-checks its pattern on SIGUSR1.
  process.kill(big.pid, "SIGUSR1");
  expect(await waitFor("memory verification", () => big.text("verify"), 60_000)).toBe("ok");
});
