/** Restore planning: the pid-clash report by name, skips that do not stop others, phases, ns_last_pid. */
import { describe, expect, test } from "bun:test";
import { isNvwaError } from "../../src/errors.ts";
import { nsLastPidTarget } from "../../src/restore/pids.ts";
import { assertRestorable, pendingTargets, pidClash, planRestore, settledPhase } from "../../src/restore/plan.ts";
import { newManifest, type Manifest, type Target } from "../../src/state/manifest.ts";

function t(name: string, kind: Target["kind"], rootPid: number, pids: number[], phase: Target["phase"] = "killed"): Target {
  return {
    kind,
    name,
    ...(kind === "service" ? { unit: name } : {}),
    rootPid,
    pids,
    processes: [rootPid],
    stoppedBefore: [],
    cmdline: [],
    comm: kind === "pid" ? "python3" : "redis-server",
    imagesDir: `/var/nvwa/running/${name}`,
    shellJob: false,
    tcpConnections: false,
    phase,
    timings: {},
  };
}

function manifest(phase: Manifest["phase"], targets: Target[]): Manifest {
  const m = newManifest({
    updateId: "u1",
    kernel: { from: "a", to: "b" },
    criuDir: "/var/nvwa/running",
    options: { debug: false, pinMemory: false, restoreNet: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
  });
  return { ...m, phase, targets };
}

const redis = t("redis.service", "service", 948, [948, 949, 950]);
const counter = t("1234", "pid", 1234, [1234, 1235]);

describe("pidClash", () => {
  test("names the pid, the target and the holder", () => {
    const e = pidClash(redis, new Map([[948, "sshd"]]));
    expect(e?.code).toBe("restore.pid-taken");
    expect(e?.message).toBe("pid 948 of redis.service is taken by sshd");
    expect(e?.hint).toContain("ns_last_pid");
  });
  test("a pid target is named by its command and root pid; more clashes counted", () => {
    expect(pidClash(counter, new Map([[1235, "zombie bash"], [1234, "cron"]]))?.message).toBe(
      "pid 1234 of python3 (pid 1234) is taken by cron (and 1 more of its 2 pids)",
    );
  });
  test("free pids → null", () => {
    expect(pidClash(redis, new Map([[1, "init"]]))).toBeNull();
  });
});

describe("planRestore", () => {
  test("a clash skips only that target", () => {
    const steps = planRestore(manifest("jumping", [redis, counter]), new Map([[949, "sshd"]]));
    expect(steps.map((s) => [s.target.name, s.action])).toEqual([
      ["redis.service", "skip"],
      ["1234", "restore"],
    ]);
  });
  test("selection by kind or name; restored targets are not pending", () => {
    const m = manifest("restore-failed", [redis, counter, t("77", "pid", 77, [77], "restored")]);
    expect(pendingTargets(m, { kinds: ["pid"] }).map((x) => x.name)).toEqual(["1234"]);
    expect(pendingTargets(m, { names: ["redis.service"] }).map((x) => x.name)).toEqual(["redis.service"]);
    expect(pendingTargets(m).map((x) => x.name)).toEqual(["redis.service", "1234"]);
  });
  test("phases that cannot be restored, each with its reason", () => {
    const code = (m: Manifest): string => {
      try {
        assertRestorable(m);
        return "ok";
      } catch (e) {
        if (!isNvwaError(e)) throw e;
        return `${e.code}: ${e.hint}`;
      }
    };
    expect(code(manifest("committed", [counter]))).toBe("ok");
    expect(code(manifest("dumped", [counter]))).toContain("rolled back, not restored");
    expect(code(manifest("restored", [counter]))).toContain("already restored");
    expect(code({ ...manifest("committed", [counter]), options: { ...manifest("committed", []).options, rehearsal: true } })).toContain("restore.rehearsal");
  });
});

test("settledPhase", () => {
  expect(settledPhase(manifest("restoring", [{ ...redis, phase: "restored" }, { ...counter, phase: "restored" }]))).toBe("restored");
  expect(settledPhase(manifest("restoring", [{ ...redis, phase: "restored" }, counter]))).toBe("restoring");
  expect(settledPhase(manifest("restoring", [{ ...redis, phase: "skipped" }, { ...counter, phase: "restored" }]))).toBe("restore-failed");
  // Lazy restore: running, but its memory still coming back, is not restored yet; lost is a failure.
  const lazy = (state: "copying" | "done" | "lost"): Target => ({ ...counter, phase: state === "lost" ? "lost" : "restored", lazy: { state, startedAt: 1 } });
  expect(settledPhase(manifest("restoring", [{ ...redis, phase: "restored" }, lazy("copying")]))).toBe("restoring");
  expect(settledPhase(manifest("restoring", [{ ...redis, phase: "skipped" }, lazy("copying")]))).toBe("restoring");
  expect(settledPhase(manifest("restoring", [{ ...redis, phase: "restored" }, lazy("done")]))).toBe("restored");
  expect(settledPhase(manifest("restoring", [{ ...redis, phase: "restored" }, lazy("lost")]))).toBe("restore-failed");
  expect(pendingTargets(manifest("restore-failed", [lazy("lost")]))).toEqual([]);
});

test("nsLastPidTarget: past the highest saved pid, never backwards, below pid_max", () => {
  expect(nsLastPidTarget(300, 1500, 32768)).toBe(1500);
  expect(nsLastPidTarget(9000, 1500, 32768)).toBeNull();
  try {
    nsLastPidTarget(300, 40000, 32768);
    throw new Error("accepted");
  } catch (e) {
    if (!isNvwaError(e)) throw e;
    expect(e.code).toBe("restore.pid-max");
  }
});
