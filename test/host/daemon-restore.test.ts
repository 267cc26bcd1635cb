/**
 * The daemon's boot-side restore of a service (src/daemon/recover.ts) with the real criu on a
 * real checkpoint, and a stand-in systemd on a real dbus-daemon (helpers/dbus-bus.ts). The
 * stand-in's StartUnit job plays the unit's ExecStart: it makes the restore helper's request
 * (handleRestoreRequest, what the daemon's socket hands a helper) and ends the job with its
 * outcome. The whole path with the real systemd and the real helper process runs in the guest
 * (services and upgrade scenarios).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NvwaConfig } from "../../src/config/types.ts";
import { checkpoint } from "../../src/update/checkpoint.ts";
import { commitCheckpoint } from "../../src/update/commit.ts";
import { gatherCheckpointFacts } from "../../src/criu/facts.ts";
import { planCheckpoint } from "../../src/criu/plan.ts";
import { probeCriu, type CriuCapabilities } from "../../src/criu/probe.ts";
import { restoreOnThisBoot } from "../../src/restore/boot-restore.ts";
import { handleRestoreRequest } from "../../src/restore/service-restore.ts";
import type { ProgressEvent, RestoreResult } from "../../src/daemon/protocol.ts";
import { SystemdManager } from "../../src/systemd/manager.ts";
import { config, countsPast, isRunning, state, testCriu, waitFor, Workloads, type Workload } from "./helpers/criu-env.ts";
import { standInSystemd, startTestBus, type TestBus } from "./helpers/dbus-bus.ts";

const work = new Workloads();
const dirs: string[] = [];
let criu: string;
let caps: CriuCapabilities;
let bus: TestBus;

beforeAll(async () => {
  criu = testCriu();
  caps = await probeCriu(criu);
  bus = await startTestBus();
});

afterAll(async () => {
  work.killAll();
  await bus.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A counter checkpointed as the service `unit` and committed (killed), as before a jump; with
 * `lazyMiB`, instead a process of that much memory, checkpointed for a lazy restore.
 */
async function committedService(unit: string, lazyMiB?: number): Promise<{ cfg: NvwaConfig; w: Workload }> {
  const lazy = lazyMiB !== undefined;
  const w = lazy ? await work.start("memory", String(lazyMiB)) : await work.start("counter");
  if (lazy) await waitFor("memory workload ready", () => w.num("ready"), 120_000);
  else await countsPast(w, "count", 1);
  const d = mkdtempSync(join(tmpdir(), "nvwa-daemon-restore-"));
  dirs.push(d);
  const base = config(join(d, "running"), criu, { services: [unit], enableLazyRestore: lazy });
  // Drop-ins go to a directory of the test's own: nothing of this host's systemd is touched.
  const cfg: NvwaConfig = { ...base, server: { ...base.server, systemdEtc: join(d, "systemd") } };
  const plan = planCheckpoint(cfg, gatherCheckpointFacts(caps, { [unit]: w.pid }));
  expect(plan.problems).toEqual([]);
  const r = await checkpoint(plan);
  await commitCheckpoint(r.manifest);
  expect(isRunning(w.pid)).toBe(false);
  return { cfg, w };
}

describe("boot-side restore of a service", () => {
  test("criu restore starts with the unit's start job, not after it; the helper's request joins it", async () => {
    const unit = "nvwa-test-counter.service";
    const { cfg, w } = await committedService(unit);
    const pid = w.pid;
    const answers: RestoreResult[] = [];
    const helperEvents: ProgressEvent[] = [];
    const fake = await standInSystemd(bus, {
      jobRemovedSignal: true,
      runStartJob: async (u) => {
        // The helper starts up (a second nvwa: seconds under emulation), then asks the daemon.
        await Bun.sleep(300);
        answers.push(await handleRestoreRequest(cfg, u, (e) => helperEvents.push(e)));
        return "done";
      },
    });
    const mgr = await SystemdManager.connect(bus.systemdOptions());
    const events: ProgressEvent[] = [];
    try {
      const m = await restoreOnThisBoot(cfg, { emit: (e) => events.push(e), mgr });
      expect(m.phase).toBe("restored");
      const t = m.targets[0];
      expect(t?.phase).toBe("restored");
      expect(answers).toEqual([{ unit, mainPid: pid, pids: [pid] }]);
      // The restore began before systemd was asked to start the unit.
      expect(t?.timings.restore?.start).toBeLessThanOrEqual(fake.startedAt.get(unit) ?? 0);
      // One criu restore, the daemon's: the helper joined it instead of starting another.
      expect(events.filter((e) => e.message.startsWith(`${unit}: restoring (pid`)).length).toBe(1);
      expect(helperEvents).toEqual([]);
      await countsPast(w, "count", w.num("count") ?? -1);
    } finally {
      mgr.close();
      await fake.release();
    }
  });

  test("lazy restore, its lazy-pages daemon killed while the unit starts: the tree is killed, the service lost by name, never said to run outside its unit", async () => {
    const unit = "nvwa-test-lazy-lost.service";
    // 512 MiB: far more than the daemon copies before nvwa kills it, right after the restore.
    const { cfg, w } = await committedService(unit, 512);
    process.env.NVWA_FAULT_KILL = `lazy-pages:${unit}`;
    // The start job fails once the tree is gone (the helper could not hand it to systemd).
    const fake = await standInSystemd(bus, {
      jobRemovedSignal: true,
      runStartJob: async () => {
        // systemd's job runs while criu restores: the tree appears, then dies when nvwa kills it.
        await waitFor("the tree restored", () => state(w.pid) !== null, 20_000);
        await waitFor("the damaged tree killed", () => state(w.pid) === null || state(w.pid) === "Z", 20_000);
        return "failed";
      },
    });
    const mgr = await SystemdManager.connect(bus.systemdOptions());
    const events: ProgressEvent[] = [];
    try {
      const m = await restoreOnThisBoot(cfg, { emit: (e) => events.push(e), mgr });
      expect(m.phase).toBe("restore-failed");
      expect(m.targets[0]?.phase).toBe("lost");
      expect(m.targets[0]?.error?.code).toBe("restore.lazy-pages-lost");
      const errors = events.filter((e) => e.level === "error").map((e) => e.message);
      expect(errors.some((x) => x.startsWith(`${unit} is damaged: criu's lazy-pages daemon ended (killed by SIGKILL)`))).toBe(true);
      expect(errors.some((x) => x.includes("run outside the unit"))).toBe(false);
      expect(isRunning(w.pid)).toBe(false);
    } finally {
      delete process.env.NVWA_FAULT_KILL;
      mgr.close();
      await fake.release();
    }
  });

  test("a unit systemd fails to start: the restored processes keep running, and the error names the pid to stop", async () => {
    const unit = "nvwa-test-unstartable.service";
    const { cfg, w } = await committedService(unit);
    const pid = w.pid;
    const fake = await standInSystemd(bus, { jobRemovedSignal: true, runStartJob: async () => "failed" });
    const mgr = await SystemdManager.connect(bus.systemdOptions());
    const events: ProgressEvent[] = [];
    try {
      const m = await restoreOnThisBoot(cfg, { emit: (e) => events.push(e), mgr });
      const errors = events.filter((e) => e.level === "error").map((e) => e.message);
      expect(errors).toEqual([
        `${unit}: its processes were restored (pid ${pid}) but systemd did not take them over: its start job ended "failed" (see \`journalctl -u ${unit}\` and ${m.targets[0]?.imagesDir}/restore.log); they run outside the unit, stop them with kill ${pid} before starting the unit again`,
      ]);
      await countsPast(w, "count", w.num("count") ?? -1);
    } finally {
      mgr.close();
      await fake.release();
    }
  });
});
