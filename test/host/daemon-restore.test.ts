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
import { config, countsPast, isRunning, testCriu, Workloads, type Workload } from "./helpers/criu-env.ts";
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

/** A counter checkpointed as the service `unit` and committed (killed), as before a jump. */
async function committedService(unit: string): Promise<{ cfg: NvwaConfig; w: Workload }> {
  const w = await work.start("counter");
  await countsPast(w, "count", 1);
  const d = mkdtempSync(join(tmpdir(), "nvwa-daemon-restore-"));
  dirs.push(d);
  const base = config(join(d, "running"), criu, { services: [unit] });
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
