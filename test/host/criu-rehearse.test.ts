/**
 * `nvwa check --rehearse`: every target checkpointed and given back, with its numbers; a target
 * criu cannot save is reported, not fatal; nothing is left behind and everything still runs.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rehearse } from "../../src/update/rehearse.ts";
import { lockHolder, lockPath } from "../../src/state/lock.ts";
import { config, countsPast, isRunning, testCriu, Workloads } from "./helpers/criu-env.ts";

const work = new Workloads();
const dir = mkdtempSync(join(tmpdir(), "nvwa-rehearse-"));
afterAll(() => {
  work.killAll();
  rmSync(dir, { recursive: true, force: true });
});

test("rehearsal: numbers for each target, failures named, all resumed, images removed", async () => {
  const counter = await work.start("counter");
  const service = await work.start("tree");
  const bad = await work.start("undumpable");
  for (const w of [counter, bad]) await countsPast(w, "count", 1);
  await countsPast(service, "child", 1);
  const criuDir = join(dir, "running");
  const cfg = config(criuDir, testCriu(), { pids: [counter.pid, bad.pid], services: ["fake.service", "gone.service"] });
  const mainPids: Record<string, number> = { "fake.service": service.pid, "gone.service": 0 };

  const report = await rehearse(cfg, { resolveService: async (u) => mainPids[u] ?? 0 });

  const by = new Map(report.targets.map((t) => [t.name, t]));
  expect(report.targets.map((t) => t.name)).toEqual([String(counter.pid), String(bad.pid), "fake.service", "gone.service"]);
  expect(report.ok).toBe(false);
  expect(report.criu.version).toMatch(/^\d+\.\d+/);

  const c = by.get(String(counter.pid));
  expect(c?.ok).toBe(true);
  expect(c?.resumedBy).toBe("sigcont");
  for (const k of ["freezingMs", "frozenMs", "dumpMs", "stoppedMs", "imageBytes"] as const) expect(typeof c?.[k]).toBe("number");
  expect(c?.imageBytes).toBeGreaterThan(0);

  const s = by.get("fake.service");
  expect(s).toMatchObject({ kind: "service", rootPid: service.pid, ok: true, processes: 2, pids: 3 });

  expect(by.get(String(bad.pid))?.ok).toBe(false);
  expect(by.get(String(bad.pid))?.error?.message).toContain("perf_event");
  expect(by.get("gone.service")?.error?.code).toBe("checkpoint.service-not-running");

  expect(report.totalImageBytes).toBe((c?.imageBytes ?? 0) + (s?.imageBytes ?? 0));
  expect(report.serialFreezeMs).toBeGreaterThanOrEqual(c?.dumpMs ?? 0);

  for (const w of [counter, bad]) {
    await countsPast(w, "count", w.num("count") ?? -1);
    expect(isRunning(w.pid)).toBe(true);
  }
  await countsPast(service, "child", service.num("child") ?? -1);
  expect(existsSync(join(criuDir, ".rehearsal"))).toBe(false);
  expect(existsSync(join(criuDir, "manifest.json"))).toBe(false);
  expect(lockHolder(lockPath(criuDir))).toBeNull();
});
