/**
 * Lazy restore (enable_lazy_restore) with the real criu on this host (root; its 6.18 kernel has
 * non-cooperative userfaultfd): real processes dumped, killed, restored by the boot-side restore
 * before their memory is back, every byte of it checked once criu's lazy-pages daemon is done; and
 * the daemon killed for real mid-copy (NVWA_FAULT_KILL picks the moment), which must end with the
 * tree killed and the target lost by name, never restored.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gatherCheckpointFacts } from "../../src/criu/facts.ts";
import { planCheckpoint } from "../../src/criu/plan.ts";
import { probeCriu, type CriuCapabilities } from "../../src/criu/probe.ts";
import type { ProgressEvent } from "../../src/daemon/protocol.ts";
import { restoreOnThisBoot } from "../../src/restore/boot-restore.ts";
import { restoreTarget } from "../../src/restore/restore.ts";
import { readManifest, updateManifest } from "../../src/state/manifest-file.ts";
import { withTarget } from "../../src/state/manifest.ts";
import { checkpoint } from "../../src/update/checkpoint.ts";
import { commitCheckpoint } from "../../src/update/commit.ts";
import { config, isRunning, testCriu, waitFor, Workloads, type Workload } from "./helpers/criu-env.ts";

const work = new Workloads();
const dirs: string[] = [];
let criu: string;
let caps: CriuCapabilities;

beforeAll(async () => {
  criu = testCriu();
  caps = await probeCriu(criu);
});

afterEach(() => {
  delete process.env.NVWA_FAULT_KILL;
});

afterAll(() => {
  work.killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A memory workload of `mib` MiB, checkpointed with enable_lazy_restore and committed (killed), as before a jump. */
async function committed(mib: number): Promise<{ dir: string; w: Workload }> {
  const w = await work.start("memory", String(mib));
  await waitFor("memory workload ready", () => w.num("ready"), 120_000);
  const d = mkdtempSync(join(tmpdir(), "nvwa-lazy-"));
  dirs.push(d);
  const dir = join(d, "running");
  const plan = planCheckpoint(config(dir, criu, { pids: [w.pid], enableLazyRestore: true }), gatherCheckpointFacts(caps));
  expect(plan.problems).toEqual([]);
  expect(plan.options.lazyRestore).toBe(true);
  await commitCheckpoint((await checkpoint(plan)).manifest);
  expect(isRunning(w.pid)).toBe(false);
  return { dir, w };
}

test("a 256 MiB process runs again before its memory is back; every byte of it is right once the daemon is done; then its images go", async () => {
  const { dir, w } = await committed(256);
  const events: ProgressEvent[] = [];
  const m = await restoreOnThisBoot(config(dir, criu), { emit: (e) => events.push(e), mgr: null });
  const t = m.targets[0];
  expect(m.phase).toBe("restored");
  expect(t?.phase).toBe("restored");
  expect(t?.lazy?.state).toBe("done");
  expect(t?.lazy?.end).toBe("exit code 0");
  expect(t?.lazy?.endedAt).toBeGreaterThanOrEqual(t?.lazy?.startedAt ?? Infinity);
  const lines = events.map((e) => e.message);
  // The daemon served it: restore ran with --lazy-pages, the boot waited in its "memory" phase.
  expect(lines.some((l) => /runs again; its memory is coming back .*criu lazy-pages, pid \d+/.test(l))).toBe(true);
  expect(lines.some((l) => l.includes("all of its memory is back"))).toBe(true);
  expect(lines).toContain("boot memory done");
  // criu restored only what could not be lazy (stack, non-anonymous): far fewer than 65 536 pages.
  expect(t?.restoreStats?.pagesRestored ?? 0).toBeLessThan(65_536 / 4);
  expect(isRunning(w.pid)).toBe(true);
  process.kill(w.pid, "SIGUSR1");
  expect(await waitFor("memory verification", () => w.text("verify"), 60_000)).toBe("ok");
  // Kept while the tree read from them; gone once it no longer does (logs stay).
  expect(readdirSync(t?.imagesDir ?? "/nonexistent").filter((f) => !f.endsWith(".log"))).toEqual([]);
}, 240_000);

test("the lazy-pages daemon killed mid-copy: the tree is killed and the target lost by name, with its images kept; never restored", async () => {
  const { dir, w } = await committed(512);
  const name = String(w.pid);
  process.env.NVWA_FAULT_KILL = `lazy-pages:${name}`;
  const events: ProgressEvent[] = [];
  const m = await restoreOnThisBoot(config(dir, criu), { emit: (e) => events.push(e), mgr: null });
  const t = m.targets[0];
  expect(m.phase).toBe("restore-failed");
  expect(t?.phase).toBe("lost");
  expect(t?.lazy?.state).toBe("lost");
  expect(t?.lazy?.end).toBe("killed by SIGKILL");
  expect(t?.error?.code).toBe("restore.lazy-pages-lost");
  expect(t?.error?.message).toStartWith(`${name} is damaged: criu's lazy-pages daemon ended (killed by SIGKILL) before all of its memory was back`);
  expect(t?.error?.message).toContain(`nvwa killed it (1 process(es), pid ${w.pid})`);
  expect(events.some((e) => e.level === "error" && e.target === name && e.message.includes("is damaged"))).toBe(true);
  await waitFor("the damaged tree is gone", () => !isRunning(w.pid), 10_000);
  expect(existsSync(join(t?.imagesDir ?? "/nonexistent", "inventory.img"))).toBe(true);
  // A later restore (another daemon start, `nvwa restore`, a unit's helper) leaves it alone.
  const again = await restoreTarget(dir, name, { criuExe: criu });
  expect(again.status).toBe("failed");
  expect(again.error?.code).toBe("restore.target-lost");
  expect(isRunning(w.pid)).toBe(false);
  expect(readManifest(dir).targets[0]?.phase).toBe("lost");
}, 240_000);

test("a target restored in full drops a lazy record left by an attempt that never came up (else a later start would take it for lazily restored)", async () => {
  const { dir, w } = await committed(64);
  const name = String(w.pid);
  // As left by a daemon that died between starting lazy-pages and criu restore.
  updateManifest(dir, (m) => withTarget(m, name, (t) => ({ ...t, lazy: { state: "starting", daemonPid: 999_999, startedAt: Date.now() } })));
  const r = await restoreTarget(dir, name, { criuExe: criu });
  expect(r.status).toBe("restored");
  const t = readManifest(dir).targets[0];
  expect(t?.phase).toBe("restored");
  expect(t?.lazy).toBeUndefined();
  process.kill(w.pid, "SIGUSR1");
  expect(await waitFor("memory verification", () => w.text("verify"), 60_000)).toBe("ok");
}, 240_000);
