/**
 * Lazy restore (enable_lazy_restore): the daemon's command line, how its end is read, the error a
 * damaged target gets, and the test-only kill. The real daemon, restore and kill run in
 * test/host/criu-lazy.test.ts and in the guest (scenarios/predump, boot 3).
 */
import { describe, expect, test } from "bun:test";
import { LAZY_RESTORE_ARGS, lazyPagesArgv, restoreArgv } from "../../src/criu/argv.ts";
import { describeLazyExit, lazyCompleted } from "../../src/criu/lazy-pages.ts";
import { faultKill } from "../../src/fault-point.ts";
import { lazyLostError } from "../../src/restore/lazy.ts";
import { newManifest, type Target } from "../../src/state/manifest.ts";
import { renderSummary, summarise } from "../../src/update/summary.ts";

describe("criu lazy-pages command line", () => {
  test("same images dir as the restore (the socket is relative to it), its own log, the status fd, no -d", () => {
    expect(lazyPagesArgv({ imagesDir: "/var/nvwa/running/948", statusFd: 3 })).toEqual([
      "lazy-pages",
      "--images-dir",
      "/var/nvwa/running/948",
      "--log-file",
      "lazy-pages.log",
      "--status-fd",
      "3",
    ]);
    expect(lazyPagesArgv({ imagesDir: "/d", statusFd: 3, verbosity: 9 })).toContain("-v4");
    expect(lazyPagesArgv({ imagesDir: "/d", statusFd: 3 })).not.toContain("-d");
    expect(() => lazyPagesArgv({ imagesDir: "/d", statusFd: 1 })).toThrow(RangeError);
  });
  test("the restore meets it with --lazy-pages and nothing else", () => {
    expect(LAZY_RESTORE_ARGS).toEqual(["--lazy-pages"]);
    const a = restoreArgv({ imagesDir: "/d", shellJob: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, pinMemory: false, displayStats: true, extra: LAZY_RESTORE_ARGS });
    expect(a.filter((x) => x.includes("lazy"))).toEqual(["--lazy-pages"]);
    expect(a).not.toContain("--auto-dedup"); // would punch the pages out of the images the daemon reads
  });
});

describe("how the daemon ended", () => {
  test("only exit 0 means every page came", () => {
    expect(lazyCompleted({ code: 0, signal: null })).toBe(true);
    expect(lazyCompleted({ code: 1, signal: null })).toBe(false);
    expect(lazyCompleted({ code: null, signal: "SIGKILL" })).toBe(false);
    expect(lazyCompleted({ code: null, signal: null })).toBe(false);
    expect(describeLazyExit({ code: null, signal: "SIGKILL" })).toBe("killed by SIGKILL");
    expect(describeLazyExit({ code: 1, signal: null })).toBe("exit code 1");
  });
  test("a damaged target is named, says what was done and how to go on", () => {
    const e = lazyLostError({ name: "redis.service", imagesDir: "/var/nvwa/running/redis.service" }, "exit code 1", [948, 950]);
    expect(e.code).toBe("restore.lazy-pages-lost");
    expect(e.message).toBe(
      "redis.service is damaged: criu's lazy-pages daemon ended (exit code 1) before all of its memory was back, so pages not yet copied would read as zeros; nvwa killed it (2 process(es), pid 948, 950)",
    );
    expect(e.hint).toContain("/var/nvwa/running/redis.service/lazy-pages.log");
    expect(e.hint).toContain("enable_lazy_restore: false");
    expect(lazyLostError({ name: "x", imagesDir: "/d" }, "unknown", []).message).toEndWith("it had already exited");
  });
});

test("NVWA_FAULT_KILL: kills only the named daemon of the named target", async () => {
  const child = Bun.spawn(["sleep", "30"]);
  try {
    expect(faultKill("lazy-pages", "948", child.pid, {})).toBe(false);
    expect(faultKill("lazy-pages", "948", child.pid, { NVWA_FAULT_KILL: "lazy-pages:949" })).toBe(false);
    expect(faultKill("lazy-pages", "948", child.pid, { NVWA_FAULT_KILL: "other:1, lazy-pages:948" })).toBe(true);
    await child.exited;
    expect(child.signalCode).toBe("SIGKILL");
  } finally {
    child.kill();
  }
});

test("nvwa status says where each lazily restored target's memory is", () => {
  const base = newManifest({
    updateId: "u1",
    kernel: { from: "6.1", to: "6.12" },
    criuDir: "/var/nvwa/running",
    options: { debug: false, pinMemory: false, restoreNet: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, hardwareBreakpoints: false, rehearsal: false, lazyRestore: true },
  });
  const target = (name: string, phase: Target["phase"], lazy: Target["lazy"]): Target => ({
    kind: "pid",
    name,
    rootPid: Number(name),
    pids: [Number(name)],
    processes: [Number(name)],
    stoppedBefore: [],
    cmdline: [],
    imagesDir: `/var/nvwa/running/${name}`,
    shellJob: false,
    tcpConnections: false,
    phase,
    timings: {},
    ...(lazy === undefined ? {} : { lazy }),
  });
  const s = summarise({
    ...base,
    phase: "restoring",
    targets: [
      target("100", "restored", { state: "copying", daemonPid: 7, startedAt: 1000 }),
      target("200", "restored", { state: "done", startedAt: 1000, endedAt: 3500, end: "exit code 0" }),
      target("300", "lost", { state: "lost", startedAt: 1000, endedAt: 1200, end: "killed by SIGKILL" }),
      target("400", "restored", undefined),
    ],
  });
  expect(s.targets.map((t) => t.memory)).toEqual([{ state: "coming back" }, { state: "back", ms: 2500 }, { state: "lost", ms: 200 }, undefined]);
  const text = renderSummary(s);
  expect(text).toContain("    memory (lazy restore): coming back (it runs meanwhile)\n");
  expect(text).toContain("    memory (lazy restore): all back 2.50 s after it ran again\n");
  expect(text).toContain("    memory (lazy restore): lost: the lazy-pages daemon ended early\n");
});
