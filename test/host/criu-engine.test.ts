/**
 * The checkpoint engine against the real criu on this host (root): real daemons dumped, frozen,
 * killed, restored; real rollbacks. Each test has its own criu_dir.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError, type NvwaError } from "../../src/errors.ts";
import { checkpoint } from "../../src/update/checkpoint.ts";
import { commitCheckpoint } from "../../src/update/commit.ts";
import { rollbackCheckpoint } from "../../src/update/rollback.ts";
import { criuLockTable, dumpRunId } from "../../src/criu/inventory.ts";
import { inetTableExists } from "../../src/net/tcp-lock.ts";
import type { EngineEvent } from "../../src/criu/events.ts";
import { gatherCheckpointFacts } from "../../src/criu/facts.ts";
import { planCheckpoint } from "../../src/criu/plan.ts";
import { probeCriu, type CriuCapabilities } from "../../src/criu/probe.ts";
import { pidHolder, readProc } from "../../src/criu/proc.ts";
import { restoreAll, restoreTarget } from "../../src/restore/restore.ts";
import { manifestPath, readManifest } from "../../src/state/manifest-file.ts";
import { config, countsPast, imageFiles, isRunning, state, testCriu, waitFor, Workloads } from "./helpers/criu-env.ts";

const work = new Workloads();
const dirs: string[] = [];
let criu: string;
let caps: CriuCapabilities;

function criuDir(): string {
  const d = mkdtempSync(join(tmpdir(), "nvwa-criu-"));
  dirs.push(d);
  return join(d, "running");
}

async function expectThrows(p: Promise<unknown>): Promise<NvwaError> {
  try {
    await p;
  } catch (e) {
    if (isNvwaError(e)) return e;
    throw e;
  }
  throw new Error("expected an NvwaError, nothing was thrown");
}

beforeAll(async () => {
  criu = testCriu();
  caps = await probeCriu(criu);
});

afterAll(() => {
  work.killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test("the probe sees a working criu", () => {
  expect(caps.checkOk).toBe(true);
  expect(caps.version.major).toBeGreaterThanOrEqual(4);
});

describe("checkpoint → commit → restore", () => {
  test("1. a counter is dumped, killed, restored, and counts on from where it stopped", async () => {
    const w = await work.start("counter");
    await countsPast(w, "count", 3);
    const dir = criuDir();
    const events: EngineEvent[] = [];
    const plan = planCheckpoint(config(dir, criu, { pids: [w.pid] }), gatherCheckpointFacts(caps));
    expect(plan.targets[0]?.shellJob).toBe(false);
    const r = await checkpoint(plan, { onEvent: (e) => events.push(e) });
    expect(r.manifest.phase).toBe("dumped");
    expect(state(w.pid)).toBe("T");
    // Notes (criu's command line, at debug level) come between the progress events.
    const notes = events.filter((e) => e.type === "note");
    expect(notes.map((n) => n.message)).toEqual([expect.stringContaining(`running ${criu} dump`)]);
    const progress = events.filter((e) => e.type !== "note");
    expect(progress.map((e) => e.type)).toEqual(["target-dumping", "target-dumped"]);
    const dumped = progress[1];
    expect(dumped?.type === "target-dumped" && dumped.bytes > 0).toBe(true);

    const frozenAt = w.num("count") ?? -1;
    const c = await commitCheckpoint(r.manifest);
    expect(c.manifest.phase).toBe("committed");
    expect(c.manifest.bootId).toBe(readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
    expect(c.stillHeld).toEqual([]);
    expect(pidHolder(w.pid)).toBeNull();
    expect(readManifest(dir).targets[0]?.phase).toBe("killed");

    const rep = await restoreAll(dir, { criuExe: criu });
    expect(rep.sameBoot).toBe(true);
    expect(rep.nsLastPid?.after).toBeGreaterThanOrEqual(w.pid);
    expect(rep.results.map((x) => [x.name, x.status])).toEqual([[String(w.pid), "restored"]]);
    expect(rep.results[0]?.rootPid).toBe(w.pid);
    expect(rep.phase).toBe("restored");
    // It went on from the value it had when frozen, not from 1.
    const next = await countsPast(w, "count", frozenAt);
    expect(next).toBeGreaterThan(frozenAt);
    expect(isRunning(w.pid)).toBe(true);
    const t = readManifest(dir).targets[0];
    expect(t?.phase).toBe("restored");
    expect(t?.timings.dump?.end).toBeDefined();
    expect(t?.timings.restore?.end).toBeDefined();
    // Images gone (not debug), logs kept.
    expect(imageFiles(join(dir, String(w.pid)))).toEqual([]);
    expect(readdirSync(join(dir, String(w.pid))).sort()).toEqual(["dump.log", "restore.log"]);
  });

  test("2. a tree (parent, child, extra thread) with an open file and a pipe between them", async () => {
    // A classic double-forked daemon: its session leader is gone, so criu needs --shell-job.
    const w = await work.start("tree", "--double-fork");
    await countsPast(w, "child", 3);
    const childPid = (await waitFor("child pid", () => w.num("childpid"))) as number;
    work.track(childPid);
    await countsPast(w, "thread", 3);
    const dir = criuDir();
    const plan = planCheckpoint(config(dir, criu, { pids: [w.pid] }), gatherCheckpointFacts(caps));
    const planned = plan.targets[0];
    expect(planned?.shellJob).toBe(true);
    expect(planned?.processes).toEqual([w.pid, childPid]);
    expect(planned?.pids.length).toBe(3); // parent, its thread, the child
    const r = await checkpoint(plan);
    expect(r.manifest.targets[0]?.pids).toEqual(planned?.pids);
    await commitCheckpoint(r.manifest);
    const childAt = w.num("child") ?? -1;
    const threadAt = w.num("thread") ?? -1;

    const rep = await restoreAll(dir, { criuExe: criu });
    expect(rep.results[0]?.status).toBe("restored");
    expect(rep.results[0]?.pids).toEqual([w.pid, childPid]);
    await countsPast(w, "child", childAt);
    await countsPast(w, "thread", threadAt);
    expect(readProc(childPid)?.ppid).toBe(w.pid);
    expect(readProc(w.pid)?.tids.length).toBe(2);
    // The open log file went on at its offset: 1..n, no line lost or repeated.
    const lines = await waitFor("log lines past the restore", () => {
      const l = (w.text("log") ?? "").trim().split("\n").map(Number);
      return l.length > childAt + 2 ? l : null;
    });
    expect(lines).toEqual(lines.map((_, i) => i + 1));
  });

  test("a shell job (session and group of the shell that started it) is dumped and restored with --shell-job", async () => {
    const w = await work.startForeground("counter");
    await countsPast(w, "count", 2);
    const me = readProc(w.pid);
    expect(me?.sid).toBe(me?.ppid);
    expect(me?.pgid).toBe(me?.ppid);
    expect(me?.sid).not.toBe(w.pid);
    const dir = criuDir();
    const plan = planCheckpoint(config(dir, criu, { pids: [w.pid] }), gatherCheckpointFacts(caps));
    expect(plan.targets[0]?.shellJob).toBe(true);
    expect(plan.targets[0]?.argv).toContain("--shell-job");
    const r = await checkpoint(plan);
    await commitCheckpoint(r.manifest);
    const at = w.num("count") ?? -1;
    const rep = await restoreAll(dir, { criuExe: criu });
    expect(rep.results[0]?.status).toBe("restored");
    await countsPast(w, "count", at);
  });
});

describe("rollback", () => {
  test("4. three targets, the second undumpable: all three run and work afterwards", async () => {
    const a = await work.start("counter");
    const b = await work.start("undumpable");
    const c = await work.start("counter");
    for (const w of [a, b, c]) await countsPast(w, "count", 2);
    const dir = criuDir();
    const events: EngineEvent[] = [];
    const plan = planCheckpoint(config(dir, criu, { pids: [a.pid, b.pid, c.pid] }), gatherCheckpointFacts(caps));
    const e = await expectThrows(checkpoint(plan, { onEvent: (ev) => events.push(ev) }));
    expect(e.code).toBe("checkpoint.dump-failed");
    expect(e.message).toStartWith(`cannot checkpoint pid ${b.pid}: criu dump failed (exit code 1): Can't dump file 3 of that type [600] (anon anon_inode:[perf_event])`);
    expect(e.message).toContain(`rolled back: ${a.pid} resumed`);
    expect(e.details.target).toBe(String(b.pid));
    expect((e.details.logLines as string[]).length).toBeGreaterThan(0);
    expect(events.filter((x) => x.type !== "note").map((x) => `${x.type}${"name" in x ? ` ${x.name}` : ""}`)).toEqual([
      `target-dumping ${a.pid}`,
      `target-dumped ${a.pid}`,
      `target-dumping ${b.pid}`,
      `target-dump-failed ${b.pid}`,
      "rollback-start",
      `target-resumed ${a.pid}`,
    ]);
    for (const w of [a, b, c]) {
      const at = w.num("count") ?? -1;
      await countsPast(w, "count", at);
      expect(isRunning(w.pid)).toBe(true);
    }
    const m = readManifest(dir);
    expect(m.phase).toBe("rolled-back");
    expect(m.error?.code).toBe("checkpoint.dump-failed");
    expect(m.targets.map((t) => t.phase)).toEqual(["resumed", "dump-failed", "planned"]);
    expect(imageFiles(join(dir, String(a.pid)))).toEqual([]);
  });

  test("a tree resumed after its dump leaves no criu lock table behind (it used to, one per rehearsal)", async () => {
    expect(caps.networkLock).toBe("nftables");
    const w = await work.start("counter");
    await countsPast(w, "count", 2);
    const dir = criuDir();
    const r = await checkpoint(planCheckpoint(config(dir, criu, { pids: [w.pid] }), gatherCheckpointFacts(caps)));
    const runId = dumpRunId(readFileSync(join(dir, String(w.pid), "inventory.img")));
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    const table = criuLockTable(runId, w.pid);
    expect(inetTableExists(table)).toBe(true); // criu's own, left by --leave-stopped
    await rollbackCheckpoint(r.manifest);
    expect(inetTableExists(table)).toBe(false);
    await countsPast(w, "count", (w.num("count") ?? 0) + 1);
  });

  test("5. a target that exits before its dump is reported by name; the others run on", async () => {
    const a = await work.start("counter");
    const b = await work.start("counter");
    const c = await work.start("counter");
    for (const w of [a, b, c]) await countsPast(w, "count", 1);
    const dir = criuDir();
    const plan = planCheckpoint(config(dir, criu, { pids: [a.pid, b.pid, c.pid] }), gatherCheckpointFacts(caps));
    let killed = false;
    const e = await expectThrows(
      checkpoint(plan, {
        onEvent: (ev) => {
          // b goes away between planning and its dump, while a is already frozen.
          if (ev.type === "target-dumped" && ev.name === String(a.pid)) {
            process.kill(b.pid, "SIGKILL");
            while (isRunning(b.pid)) Bun.sleepSync(5);
            killed = true;
          }
        },
      }),
    );
    expect(killed).toBe(true);
    expect(e.code).toBe("checkpoint.target-exited");
    expect(e.message).toStartWith(`pid ${b.pid} exited before its dump`);
    for (const w of [a, c]) {
      await countsPast(w, "count", w.num("count") ?? -1);
      expect(isRunning(w.pid)).toBe(true);
    }
  });
});

describe("restore", () => {
  test("7. a pid clash is reported by name; the other target is restored; a retry works once the pid is free", async () => {
    const a = await work.start("counter");
    const b = await work.start("counter");
    await countsPast(a, "count", 1);
    await countsPast(b, "count", 1);
    const dir = criuDir();
    const r = await checkpoint(planCheckpoint(config(dir, criu, { pids: [a.pid, b.pid] }), gatherCheckpointFacts(caps)));
    await commitCheckpoint(r.manifest);

    // Put a `sleep` on b's pid: the way a service started early in boot would take it.
    let squatter: ReturnType<typeof Bun.spawn> | null = null;
    for (let i = 0; i < 20 && squatter === null; i++) {
      writeFileSync("/proc/sys/kernel/ns_last_pid", String(b.pid - 1));
      const s = Bun.spawn(["sleep", "600"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      if (s.pid === b.pid) squatter = s;
      else s.kill("SIGKILL");
    }
    if (squatter === null) throw new Error(`could not place a process on pid ${b.pid} (other processes kept taking it)`);

    const rep = await restoreAll(dir, { criuExe: criu });
    const byName = new Map(rep.results.map((x) => [x.name, x]));
    expect(byName.get(String(a.pid))?.status).toBe("restored");
    const skipped = byName.get(String(b.pid));
    expect(skipped?.status).toBe("skipped");
    expect(skipped?.error?.message).toBe(`pid ${b.pid} of python3 (pid ${b.pid}) is taken by sleep`);
    expect(rep.phase).toBe("restore-failed");
    await countsPast(a, "count", a.num("count") ?? -1);
    expect(readManifest(dir).targets.find((t) => t.name === String(b.pid))?.error?.code).toBe("restore.pid-taken");

    squatter.kill("SIGKILL");
    await squatter.exited;
    const again = await restoreTarget(dir, String(b.pid), { criuExe: criu });
    expect(again.status).toBe("restored");
    expect(readManifest(dir).phase).toBe("restored");
    await countsPast(b, "count", b.num("count") ?? -1);
  });

  test("9. a truncated manifest: a clear error and nothing restored half-way; the intact one restores all", async () => {
    const a = await work.start("counter");
    const b = await work.start("counter");
    await countsPast(a, "count", 1);
    await countsPast(b, "count", 1);
    const dir = criuDir();
    const r = await checkpoint(planCheckpoint(config(dir, criu, { pids: [a.pid, b.pid] }), gatherCheckpointFacts(caps)));
    await commitCheckpoint(r.manifest);
    const good = readFileSync(manifestPath(dir), "utf8");

    writeFileSync(manifestPath(dir), good.slice(0, Math.floor(good.length * 0.6)));
    const e = await expectThrows(restoreAll(dir, { criuExe: criu }));
    expect(e.code).toBe("state.manifest-corrupt");
    expect(e.message).toContain(manifestPath(dir));
    expect(e.hint).toContain("nvwa init");
    expect(pidHolder(a.pid)).toBeNull();
    expect(pidHolder(b.pid)).toBeNull();

    writeFileSync(manifestPath(dir), good.replace(/"phase": "committed"/, '"phase": "committing-ish"'));
    expect((await expectThrows(restoreAll(dir, { criuExe: criu }))).code).toBe("state.manifest-corrupt");
    expect(pidHolder(a.pid)).toBeNull();

    writeFileSync(manifestPath(dir), good);
    const rep = await restoreAll(dir, { criuExe: criu });
    expect(rep.results.map((x) => x.status)).toEqual(["restored", "restored"]);
  });
});
