/**
 * The daemon's decision at start (src/daemon/recovery-plan.ts), row by row: every update phase ×
 * same boot or not × kernel loaded or not, and per target which are restored, adopted, killed
 * first or reported lost. Pure: no root, no processes.
 */
import { describe, expect, test } from "bun:test";
import { decideRecovery, type RecoveryFacts } from "../../src/daemon/recovery-plan.ts";
import { newManifest, UPDATE_PHASES, type Manifest, type Target, type UpdatePhase } from "../../src/state/manifest.ts";

function t(name: string, phase: Target["phase"], kind: Target["kind"] = "pid"): Target {
  return {
    kind,
    name,
    rootPid: 4000 + name.length,
    pids: [4000 + name.length],
    processes: [4000 + name.length],
    stoppedBefore: [],
    cmdline: ["python3", name],
    imagesDir: `/var/nvwa/running/${name}`,
    shellJob: false,
    tcpConnections: false,
    phase,
    timings: {},
  };
}

const BOOT_A = "boot-a";
const BOOT_B = "boot-b";

function m(phase: UpdatePhase, targets: Target[], extra: Partial<Manifest> = {}): Manifest {
  const base = newManifest({
    updateId: "u1",
    kernel: { from: "6.1", to: "6.12", loader: "kexec_file_load" },
    criuDir: "/var/nvwa/running",
    bootId: BOOT_A,
    options: { debug: false, pinMemory: false, restoreNet: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
  });
  // createdBootId (newManifest) and the commit's bootId: both on boot A.
  return { ...base, bootId: BOOT_A, phase, targets, ...extra };
}

const facts = (bootId: string, kexecLoaded = false, alive: string[] = []): RecoveryFacts => ({ bootId, kexecLoaded, alive: new Set(alive) });

describe("decideRecovery", () => {
  test("no manifest: nothing to do", () => {
    expect(decideRecovery(null, facts(BOOT_A))).toEqual({ action: "none" });
  });

  describe("before the commit", () => {
    const targets = [t("counter", "dumped"), t("redis.service", "dumping", "service"), t("third", "planned")];
    for (const phase of ["planned", "checkpointing", "dumped"] as const) {
      test(`${phase}, same boot, kernel loaded by nvwa: roll back and unload`, () => {
        expect(decideRecovery(m(phase, targets), facts(BOOT_A, true))).toEqual({ action: "rollback", unloadKernel: true });
      });
      test(`${phase}, same boot, no kernel loaded: roll back, nothing to unload`, () => {
        expect(decideRecovery(m(phase, targets), facts(BOOT_A, false))).toEqual({ action: "rollback", unloadKernel: false });
      });
      test(`${phase}, another boot (power cut): every target named as lost`, () => {
        expect(decideRecovery(m(phase, targets), facts(BOOT_B, false))).toEqual({ action: "lost", targets: ["counter", "redis.service", "third"] });
      });
    }
    test("a kernel loaded by hand (no loader recorded) is not nvwa's to unload", () => {
      const x = m("checkpointing", targets);
      const { loader: _l, ...kernel } = x.kernel;
      expect(decideRecovery({ ...x, kernel }, facts(BOOT_A, true))).toEqual({ action: "rollback", unloadKernel: false });
    });
  });

  describe("after the commit", () => {
    test("committed, crash before any kill was written (targets still dumped), same boot: kill leftovers, restore all, unload", () => {
      const d = decideRecovery(m("committed", [t("counter", "dumped"), t("redis.service", "dumped", "service")]), facts(BOOT_A, true));
      expect(d).toEqual({ action: "restore", sameBoot: true, killLeftovers: ["counter", "redis.service"], adopt: [], restore: ["counter", "redis.service"], lazyUnfinished: [], unloadKernel: true });
    });
    test("committed, intent written (killing), power cut: another boot restores every target, kills nothing", () => {
      const d = decideRecovery(m("committed", [t("counter", "killing"), t("redis.service", "killing", "service")]), facts(BOOT_B, false));
      expect(d).toEqual({ action: "restore", sameBoot: false, killLeftovers: [], adopt: [], restore: ["counter", "redis.service"], lazyUnfinished: [], unloadKernel: false });
    });
    test("jumping, arrived on the new boot: restore the killed targets", () => {
      const d = decideRecovery(m("jumping", [t("counter", "killed"), t("redis.service", "killed", "service")]), facts(BOOT_B, false));
      expect(d).toEqual({ action: "restore", sameBoot: false, killLeftovers: [], adopt: [], restore: ["counter", "redis.service"], lazyUnfinished: [], unloadKernel: false });
    });
    test("jumping, but the same boot (the jump failed): killed trees are not killed again; kernel unloaded", () => {
      const d = decideRecovery(m("jumping", [t("counter", "killed")]), facts(BOOT_A, true));
      expect(d).toEqual({ action: "restore", sameBoot: true, killLeftovers: [], adopt: [], restore: ["counter"], lazyUnfinished: [], unloadKernel: true });
    });
    test("restoring, power cut after some were restored: the restored ones are never restored twice", () => {
      const targets = [t("counter", "restored"), t("tcp", "restoring"), t("redis.service", "killed", "service"), t("bad", "restore-failed"), t("clash", "skipped")];
      const d = decideRecovery(m("restoring", targets, { restoreBootId: BOOT_B }), facts("boot-c", false, ["tcp"]));
      // Another boot than the restore's: a process alive at the old pid is not ours to adopt.
      expect(d).toEqual({ action: "restore", sameBoot: false, killLeftovers: [], adopt: [], restore: ["tcp", "redis.service", "bad", "clash"], lazyUnfinished: [], unloadKernel: false });
    });
    test("restoring, daemon killed on the restore's own boot: a target caught restoring whose tree runs is adopted", () => {
      const targets = [t("counter", "restored"), t("tcp", "restoring"), t("redis.service", "restoring", "service"), t("x", "killed")];
      const d = decideRecovery(m("restoring", targets, { restoreBootId: BOOT_B }), facts(BOOT_B, false, ["tcp", "counter", "x"]));
      expect(d).toEqual({ action: "restore", sameBoot: false, killLeftovers: [], adopt: ["tcp"], restore: ["redis.service", "x"], lazyUnfinished: [], unloadKernel: false });
    });
    test("restoring, a lazily restored target whose memory was still coming back: lost (never restored twice), the rest restored", () => {
      const copying: Target = { ...t("big", "restored"), lazy: { state: "copying", daemonPid: 900, startedAt: 1 } };
      const done: Target = { ...t("small", "restored"), lazy: { state: "done", startedAt: 1, endedAt: 2, end: "exit code 0" } };
      for (const f of [facts(BOOT_B, false, ["big"]), facts("boot-c")]) {
        const d = decideRecovery(m("restoring", [copying, done, t("x", "killed")], { restoreBootId: BOOT_B }), f);
        expect(d).toMatchObject({ action: "restore", adopt: [], restore: ["x"], lazyUnfinished: ["big"] });
      }
    });
    test("restoring, daemon killed during a lazy restore: a tree that runs is lost (never adopted), one that never came up is restored", () => {
      const running: Target = { ...t("up", "restoring"), lazy: { state: "starting", daemonPid: 901, startedAt: 1 } };
      const never: Target = { ...t("down", "restoring"), lazy: { state: "starting", daemonPid: 902, startedAt: 1 } };
      const d = decideRecovery(m("restoring", [running, never], { restoreBootId: BOOT_B }), facts(BOOT_B, false, ["up"]));
      expect(d).toMatchObject({ action: "restore", adopt: [], restore: ["down"], lazyUnfinished: ["up"] });
    });
    test("targets that were never frozen or are already lost are never restored", () => {
      const d = decideRecovery(m("committed", [t("a", "lost"), t("b", "resumed"), t("c", "planned"), t("d", "dump-failed"), t("e", "killed")]), facts(BOOT_B));
      expect(d).toMatchObject({ action: "restore", restore: ["e"] });
    });
  });

  for (const phase of ["restored", "restore-failed", "rolled-back"] as const) {
    test(`${phase}: settled, only nvwa's drop-ins are cleaned up (same or other boot, kernel loaded or not)`, () => {
      for (const f of [facts(BOOT_A, true), facts(BOOT_B, false)]) expect(decideRecovery(m(phase, [t("counter", "restored")]), f)).toEqual({ action: "cleanup" });
    });
  }

  test("every update phase has a row", () => {
    for (const phase of UPDATE_PHASES) expect(decideRecovery(m(phase, [t("c", "killed")]), facts(BOOT_B)).action).not.toBe("none");
  });
});
