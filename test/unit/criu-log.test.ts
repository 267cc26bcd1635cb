/**
 * Reading criu's output. The fixtures are real lines written by criu 4.1.1 / 4.2.1 on the test
 * host (kernel 6.18): failed dumps, the always-present rlimit noise, and --display-stats.
 */
import { describe, expect, test } from "bun:test";
import { hintForLog, meaningfulLines, parseDumpStats, parseRestoreStats, rootCause } from "../../src/criu/log.ts";
import { criuFailure } from "../../src/criu/runner.ts";

const PERF_EVENT_LOG = `Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
Error (criu/files-ext.c:94): Can't dump file 3 of that type [600] (anon anon_inode:[perf_event])
Error (criu/cr-dump.c:1681): Dump files (pid: 30101) failed with -1
Error (criu/cr-dump.c:2111): Dumping FAILED.
`;

const TCP_441_LOG = `Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
Error (criu/sockets.c:628): sockets: Can't get 1:34 opt: Operation not supported
Error (criu/cr-dump.c:1681): Dump files (pid: 22681) failed with -1
Error (criu/cr-dump.c:2111): Dumping FAILED.
`;

const CLASH_V4_LOG = `(00.001020) Warn  (criu/kerndat.c:1799): Hardware breakpoints don't seem to work (status=137f)
(00.001204) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
(00.034567) pie: 1: restoring something
(00.041000)  23073: Error (criu/cr-restore.c:1230): Can't fork for 23073: File exists
(00.041100) Error (criu/cr-restore.c:2320): Restoring FAILED.
`;

describe("meaningfulLines", () => {
  test("drops noise and keeps the error lines in order", () => {
    expect(meaningfulLines(PERF_EVENT_LOG)).toEqual([
      "Error (criu/files-ext.c:94): Can't dump file 3 of that type [600] (anon anon_inode:[perf_event])",
      "Error (criu/cr-dump.c:1681): Dump files (pid: 30101) failed with -1",
      "Error (criu/cr-dump.c:2111): Dumping FAILED.",
    ]);
  });

  test("strips -v4 timestamps and the per-task pid prefix", () => {
    expect(meaningfulLines(CLASH_V4_LOG)).toEqual([
      "Error (criu/cr-restore.c:1230): Can't fork for 23073: File exists",
      "Error (criu/cr-restore.c:2320): Restoring FAILED.",
    ]);
  });

  test("with no Error line, the last non-empty lines", () => {
    expect(meaningfulLines("a\nb\n\nc\n", 2)).toEqual(["b", "c"]);
  });

  test("keeps only the last `max` errors", () => {
    const many = Array.from({ length: 10 }, (_, i) => `Error (x.c:${i}): e${i}`).join("\n");
    expect(meaningfulLines(many, 3)).toEqual(["Error (x.c:7): e7", "Error (x.c:8): e8", "Error (x.c:9): e9"]);
  });
});

describe("rootCause", () => {
  test("the first line that is not a propagation, in words", () => {
    expect(rootCause(meaningfulLines(PERF_EVENT_LOG))).toBe("Can't dump file 3 of that type [600] (anon anon_inode:[perf_event])");
    expect(rootCause(meaningfulLines(CLASH_V4_LOG))).toBe("Can't fork for 23073: File exists");
  });
  test("a full disk is the cause even when criu reports it after the step that failed", () => {
    const log = `Error (criu/mem.c:672): Can't dump page with parasite
Error (criu/bfd.c:131): bfd: Error flushing image: No space left on device
Error (criu/cr-dump.c:2111): Dumping FAILED.
`;
    expect(rootCause(meaningfulLines(log))).toBe("bfd: Error flushing image: No space left on device");
    expect(hintForLog(meaningfulLines(log))).toContain("free space");
  });
  test("falls back to the last line when all are propagations", () => {
    expect(rootCause(["Error (criu/cr-dump.c:2111): Dumping FAILED."])).toBe("Dumping FAILED.");
    expect(rootCause([])).toBeUndefined();
  });
});

describe("hintForLog", () => {
  test("known failures get a specific hint", () => {
    expect(hintForLog(meaningfulLines(TCP_441_LOG))).toContain("criu 4.2");
    expect(hintForLog(meaningfulLines(CLASH_V4_LOG))).toContain("pid of the tree is taken");
    expect(hintForLog(["Error (criu/x.c:1): write: No space left on device"])).toContain("free space");
  });
  test("an unknown failure gets none (the caller points at the log)", () => {
    expect(hintForLog(["Error (x.c:1): something new"])).toBeUndefined();
  });
});

describe("criuFailure", () => {
  const spec = { exe: "/usr/sbin/criu", argv: ["dump", "--tree", "30101"], action: "dump", target: "pid 30101", logPath: "/var/nvwa/running/30101/dump.log" };
  test("names the target, the cause and the log; code per action", () => {
    const e = criuFailure(spec, { exitCode: 1, stdout: "", stderr: "", ms: 5, timedOut: false }, meaningfulLines(PERF_EVENT_LOG));
    expect(e.code).toBe("criu.dump-failed");
    expect(e.message).toBe(
      "criu dump of pid 30101 failed (exit code 1): Can't dump file 3 of that type [600] (anon anon_inode:[perf_event]); full log: /var/nvwa/running/30101/dump.log",
    );
    expect(e.hint).toContain("/var/nvwa/running/30101/dump.log");
    expect(e.details.logLines).toHaveLength(3);
    expect(e.details.command).toBe("/usr/sbin/criu dump --tree 30101");
  });
  test("a timeout says so and explains the breakpoint hang", () => {
    const e = criuFailure({ ...spec, timeoutMs: 20_000 }, { exitCode: 137, stdout: "", stderr: "", ms: 20_000, timedOut: true }, []);
    expect(e.message).toContain("did not finish within 20 s");
    expect(e.hint).toContain("CRIU_FAULT=130");
  });
});

describe("stats", () => {
  test("dump stats as printed by --display-stats", () => {
    const out = `Displaying dump stats:
Freezing time: 321 us
Frozen time: 11665 us
Memory dump time: 1785 us
Memory write time: 859 us
IRMAP resolve time: 0 us
Memory pages scanned: 770 (0x302)
Memory pages skipped from parent: 0 (0x0)
Memory pages written: 703 (0x2bf)
Lazy memory pages: 0 (0x0)
`;
    expect(parseDumpStats(out)).toEqual({ freezingUs: 321, frozenUs: 11665, memdumpUs: 1785, memwriteUs: 859, pagesScanned: 770, pagesSkippedParent: 0, pagesWritten: 703 });
    expect(parseRestoreStats(out)).toBeNull();
  });
  test("restore stats", () => {
    const out = "Displaying restore stats:\nPages compared: 0 (0x0)\nPages skipped COW: 0 (0x0)\nPages restored: 703 (0x2bf)\nRestore time: 20434 us\nForking time: 1 us\n";
    expect(parseRestoreStats(out)).toEqual({ restoreUs: 20434, forkingUs: 1, pagesRestored: 703 });
  });
  test("nothing printed → null", () => {
    expect(parseDumpStats("")).toBeNull();
  });
});
