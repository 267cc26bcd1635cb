/**
 * The benchmark's timeline arithmetic (test/bench/guest-timeline.ts): per-boot clock mapping and
 * phases that add up to each mode's downtime, on a hand-made session whose true figures are known.
 */
import { describe, expect, test } from "bun:test";
import { type BenchStatus, bootOffsets, nvwaServiceStarts, parseSerial, sessionFigures, TimelineError } from "../bench/guest-timeline.ts";

// Host stamps (s) and each boot's guest wall clock: boot 1 = host + 1000, boot 2 = host + 1000.6,
// boot 3 = host + 999.8, boot 4 = host + 1000.3, boot 5 = host + 1000.1 (the RTC's whole seconds).
const serial = [
  "[   1.000] [    0.000000] Linux version 6.1.0 (debian) #1",
  "[  20.000] NVWA-GUEST boot=1 bench a-update rt=1020.000000",
  "[  30.000] [  100.1] kexec_core: Starting new kernel",
  "[  31.000] [    0.000000] Linux version 6.12.0 (debian) #1",
  "[  50.000] NVWA-GUEST boot=2 bench a-boot2-runner rt=1050.600000",
  "[  55.000] NVWA-GUEST boot=2 bench a2-update rt=1055.600000",
  "[  60.000] [  100.1] kexec_core: Starting new kernel",
  "[  61.000] [    0.000000] Linux version 6.1.0 (debian) #1",
  "[  80.000] NVWA-GUEST boot=3 bench a2-boot3-runner rt=1079.800000",
  "[  90.000] NVWA-GUEST boot=3 bench b-dump-start rt=1089.800000",
  "[  92.000] NVWA-GUEST boot=3 bench b-dump-end rt=1091.800000",
  "[  92.500] NVWA-GUEST boot=3 bench b-synced rt=1092.300000",
  "[  92.600] [  200.0] kexec_core: Starting new kernel",
  "[  94.000] [    0.000000] Linux version 6.12.0 (debian) #1",
  "[ 100.000] NVWA-GUEST boot=4 bench b-restore-start rt=1100.300000",
  "[ 101.000] NVWA-GUEST boot=4 bench b-restore-end rc=0 rt=1101.300000",
  "[ 110.000] NVWA-GUEST boot=4 bench c-reboot rt=1110.300000",
  "[ 115.000] [  300.0] reboot: Restarting system",
  "[ 117.000] [    0.000000] Linux version 6.1.0 (debian) #1",
  "[ 130.000] NVWA-GUEST boot=5 bench c-boot5-runner rt=1130.100000",
].join("\n");

/** An update whose dump runs at host [d0, d1] in `from`'s clock and whose restore runs in the next boot's. */
function status(offFrom: number, offTo: number, d0: number, d1: number, daemon: number, r0: number, r1: number): BenchStatus {
  const ms = (host: number, off: number): number => Math.round((host + off) * 1000);
  return {
    manifest: {
      timings: { "boot-restore": { start: ms(daemon, offTo) } },
      targets: [{ name: "31001", timings: { dump: { start: ms(d0, offFrom), end: ms(d1, offFrom) }, restore: { start: ms(r0, offTo), end: ms(r1, offTo) } }, imageBytes: 64 << 20, dumpStats: { frozenUs: 1_500_000 } }],
    },
  };
}
const statuses: [BenchStatus, BenchStatus] = [status(1000, 1000.6, 25, 27, 42, 44, 45), status(1000.6, 999.8, 56, 57, 70, 71, 73)];

describe("bench timeline", () => {
  test("each boot's clock is mapped through its own markers", () => {
    const off = bootOffsets(parseSerial(serial).marks);
    expect([1, 2, 3, 4, 5].map((b) => off.get(b))).toEqual([1000, 1000.6, 999.8, 1000.3, 1000.1].map((x) => expect.closeTo(x, 6) as unknown as number));
  });

  test("downtimes, phases that add up to them, and nvwa's overhead", () => {
    const f = sessionFigures(serial, statuses, { c_ready_rt: "1125.100000" }); // host 125
    const sum = (p: [string, number][]): number => p.reduce((a, [, s]) => a + s, 0);
    expect(f.nvwa.downtime).toBeCloseTo(20, 6); // 25 → 45
    expect(sum(f.nvwa.phases)).toBeCloseTo(20, 6);
    expect(Object.fromEntries(f.nvwa.phases)["kernel → nvwa start"]).toBeCloseTo(11, 6); // 31 → 42
    // 20 − (dump 2 + kexec→nvwa start 12 + restore 1) = 5: commit (3) and nvwa start → restore (2)
    expect(f.nvwa.overhead).toBeCloseTo(5, 6);
    expect(f.nvwa.frozen).toBe(1.5);
    expect(f.nvwaBack.downtime).toBeCloseTo(17, 6); // 56 → 73
    expect(Object.fromEntries(f.nvwaBack.phases)["kexec → kernel"]).toBeCloseTo(1, 6); // 60 → 61
    expect(f.byHand.downtime).toBeCloseTo(11, 6); // 90 → 101
    expect(sum(f.byHand.phases)).toBeCloseTo(11, 6);
    expect(f.cold.downtime).toBeCloseTo(15, 6); // 110 → 125
    expect(Object.fromEntries(f.cold.phases)["orderly shutdown"]).toBeCloseTo(5, 6);
    expect(f.warmDump).toBeNull();
  });

  test("order B A (ABBA sequences): B from the first stage, A2 then A from the next two, each figure where it ran", () => {
    const ba = [
      "[   1.000] [    0.000000] Linux version 6.1.0 (debian) #1",
      "[   5.000] NVWA-GUEST boot=1 bench setup rt=1005.000000",
      "[  10.000] NVWA-GUEST boot=1 bench b-dump-start rt=1010.000000",
      "[  12.000] NVWA-GUEST boot=1 bench b-dump-end rt=1012.000000",
      "[  12.500] NVWA-GUEST boot=1 bench b-synced rt=1012.500000",
      "[  12.600] [  100.1] kexec_core: Starting new kernel",
      "[  14.000] [    0.000000] Linux version 6.12.0 (debian) #1",
      "[  20.000] NVWA-GUEST boot=2 bench b-restore-start rt=1020.600000",
      "[  21.000] NVWA-GUEST boot=2 bench b-restore-end rc=0 rt=1021.600000",
      "[  25.000] NVWA-GUEST boot=2 bench a2-update rt=1025.600000",
      "[  30.000] [  100.1] kexec_core: Starting new kernel",
      "[  31.000] [    0.000000] Linux version 6.1.0 (debian) #1",
      "[  50.000] NVWA-GUEST boot=3 bench a2-boot3-runner rt=1049.800000",
      "[  55.000] NVWA-GUEST boot=3 bench a-update rt=1054.800000",
      "[  60.000] [  200.0] kexec_core: Starting new kernel",
      "[  61.000] [    0.000000] Linux version 6.12.0 (debian) #1",
      "[  80.000] NVWA-GUEST boot=4 bench a-boot4-runner rt=1080.300000",
      "[  90.000] NVWA-GUEST boot=4 bench c-reboot rt=1090.300000",
      "[  95.000] [  300.0] reboot: Restarting system",
      "[  97.000] [    0.000000] Linux version 6.1.0 (debian) #1",
      "[ 110.000] NVWA-GUEST boot=5 bench c-boot5-runner rt=1110.100000",
    ].join("\n");
    // In the order they ran: A2 (boot 2 → 3), then A (boot 3 → 4).
    const ran: [BenchStatus, BenchStatus] = [status(1000.6, 999.8, 26, 27, 40, 41, 43), status(999.8, 1000.3, 56, 58, 70, 72, 73)];
    const f = sessionFigures(ba, ran, { c_ready_rt: "1105.100000" }, 0, "", "ba"); // host 105
    expect(f.byHand.downtime).toBeCloseTo(11, 6); // 10 → 21
    expect(Object.fromEntries(f.byHand.phases)["kexec -e call"]).toBeCloseTo(0.1, 6);
    expect(Object.fromEntries(f.byHand.phases)["kexec → kernel"]).toBeCloseTo(1.4, 6);
    expect(Object.fromEntries(f.byHand.phases)["kernel → restore unit"]).toBeCloseTo(6, 6);
    expect(f.nvwaBack.downtime).toBeCloseTo(17, 6); // 26 → 43
    expect(Object.fromEntries(f.nvwaBack.phases)["kexec → kernel"]).toBeCloseTo(1, 6); // 30 → 31
    expect(f.nvwa.downtime).toBeCloseTo(17, 6); // 56 → 73
    expect(Object.fromEntries(f.nvwa.phases)["kernel → nvwa start"]).toBeCloseTo(9, 6); // 61 → 70
    expect(f.cold.downtime).toBeCloseTo(15, 6); // 90 → 105
  });

  test("the warm-up dump before A is timed from its markers and changes no other figure", () => {
    const marks = ["[  21.000] NVWA-GUEST boot=1 bench warm-dump-start rt=1021.000000", "[  23.250] NVWA-GUEST boot=1 bench warm-dump-end rt=1023.250000"];
    const lines = serial.split("\n");
    const withWarm = [...lines.slice(0, 2), ...marks, ...lines.slice(2)].join("\n");
    const f = sessionFigures(withWarm, statuses, { c_ready_rt: "1125.100000" });
    expect(f.warmDump).toBeCloseTo(2.25, 6);
    expect(f.nvwa).toEqual(sessionFigures(serial, statuses, { c_ready_rt: "1125.100000" }).nvwa);
  });

  test("pre-dump: the rounds (A, from the manifest, with their flush) and B's round (its markers) are reported beside the downtime, not in it", () => {
    const marks = ["[  85.000] NVWA-GUEST boot=3 bench b-predump-start rt=1084.800000", "[  88.500] NVWA-GUEST boot=3 bench b-predump-end rt=1088.300000"];
    const lines = serial.split("\n");
    const at = lines.findIndex((l) => l.includes("b-dump-start"));
    const withPre = [...lines.slice(0, at), ...marks, ...lines.slice(at)].join("\n");
    const [a, a2] = statuses;
    const target = { ...a.manifest.targets[0]!, preDump: { rounds: [{ ms: 3800, bytes: 64 << 20, syncMs: 200 }, { ms: 500, bytes: 1 << 20 }] } };
    const pre: [BenchStatus, BenchStatus] = [{ manifest: { ...a.manifest, targets: [target] } }, a2];
    const plain = sessionFigures(serial, statuses, { c_ready_rt: "1125.100000" });
    const f = sessionFigures(withPre, pre, { c_ready_rt: "1125.100000" });
    expect(f.nvwa.preDump).toEqual({ seconds: 4.5, rounds: 2, mib: 65 });
    expect(f.byHandPreDump).toBeCloseTo(3.5, 6);
    expect(f.nvwa.downtime).toBeCloseTo(plain.nvwa.downtime, 6);
    expect(f.byHand.downtime).toBeCloseTo(plain.byHand.downtime, 6);
    expect(plain.nvwa.preDump).toBeUndefined();
    expect(plain.byHandPreDump).toBeUndefined();
  });

  test("warm-up boots before the stages shift boots, kexecs and banners, not the figures", () => {
    const shifted = serial.replace(/boot=(\d)/g, (_m, b: string) => `boot=${Number(b) + 2}`);
    const warm = ["[   0.100] [    0.000000] Linux version 6.1.0 (debian) #1", "[   0.200] [  1.0] kexec_core: Starting new kernel", "[   0.300] [    0.000000] Linux version 6.12.0 (debian) #1", "[   0.400] [  1.0] kexec_core: Starting new kernel"];
    const plain = sessionFigures(serial, statuses, { c_ready_rt: "1125.100000" });
    const withWarm = sessionFigures([...warm, shifted].join("\n"), statuses, { c_ready_rt: "1125.100000" }, 2);
    expect(withWarm.nvwa.downtime).toBeCloseTo(plain.nvwa.downtime, 6);
    expect(withWarm.byHand.phases).toEqual(plain.byHand.phases);
    expect(withWarm.cold.downtime).toBeCloseTo(plain.cold.downtime, 6);
  });

  test("the journal splits nvwa's start into systemd's part and the daemon's own start-up", () => {
    const journal = [
      "[    0.000000] guest kernel: Linux version 6.1.0 (debian) #1",
      "[    5.000000] guest systemd[1]: Starting nvwa.service - nvwa kernel hot-upgrade daemon...",
      "[    0.000000] guest kernel: Linux version 6.12.0 (debian) #1",
      "[    7.500000] guest systemd[1]: Starting nvwa.service - nvwa kernel hot-upgrade daemon...",
      "[    0.000000] guest kernel: Linux version 6.1.0 (debian) #1",
    ].join("\n");
    expect(nvwaServiceStarts(journal)).toEqual([5, 7.5, null]);
    // Boot 2's banner is at host 31 and its daemon's boot-restore starts at host 42: 7.5 + 3.5.
    const f = sessionFigures(serial, statuses, { c_ready_rt: "1125.100000" }, 0, journal);
    expect(Object.fromEntries(f.nvwa.phases)["kernel → systemd starts nvwa"]).toBe(7.5);
    expect(Object.fromEntries(f.nvwa.phases)["nvwa daemon start-up"]).toBeCloseTo(3.5, 6);
    expect(f.nvwa.phases.reduce((a, [, x]) => a + x, 0)).toBeCloseTo(f.nvwa.downtime, 6);
  });

  test("a session whose guest kernel panicked, or that has a boot nothing explains, gives no figures", () => {
    // As seen: the kexec'd 6.12 died on a stray int3 and QEMU's firmware booted 6.1 again.
    const lines = serial.split("\n");
    const panicked = [...lines.slice(0, 4), "[  32.000] [    1.8] Kernel panic - not syncing: Fatal exception in interrupt", "[  33.000] [    0.000000] Linux version 6.1.0 (debian) #1", ...lines.slice(4)].join("\n");
    expect(() => sessionFigures(panicked, statuses, { c_ready_rt: "1125.1" })).toThrow(TimelineError);
    const extraBoot = [...lines.slice(0, 4), "[  33.000] [    0.000000] Linux version 6.1.0 (debian) #1", ...lines.slice(4)].join("\n");
    expect(() => sessionFigures(extraBoot, statuses, { c_ready_rt: "1125.1" })).toThrow(new TimelineError("bench timeline: 6 kernel banners for 3 kexecs and 1 firmware reboot(s): a boot neither explains"));
  });

  test("a missing marker is named, not turned into NaN", () => {
    const broken = serial.replace(/.*b-synced.*\n/, "");
    expect(() => sessionFigures(broken, statuses, { c_ready_rt: "1125.1" })).toThrow(new TimelineError("bench timeline: marker b-synced missing"));
  });
});

test("the pre-dump bench reads the rehearsal row nvwa check prints", async () => {
  const { rehearsalFigures } = await import("../bench/guest.ts");
  expect(rehearsalFigures("ok frozen 320.19 ms (stopped 1411.5 ms), dump 512 ms, images 5.2 MiB, resumed by SIGCONT")).toEqual({ frozenMs: 320.19, stoppedMs: 1411.5, imageMiB: 5.2 });
  expect(rehearsalFigures("fail criu dump failed")).toBeNull();
  expect(rehearsalFigures(undefined)).toBeNull();
});

test("a daemon that records its exec and its first line: Bun's start and nvwa's apart, still adding up", () => {
  const withExec: [BenchStatus, BenchStatus] = [status(1000, 1000.6, 25, 27, 42, 44, 45), status(1000.6, 999.8, 56, 57, 70, 71, 73)];
  // Boot 2 (offset 1000.6): exec at host 36.5, nvwa's code at host 40.
  withExec[0].manifest.timings["daemon-exec"] = { start: Math.round((36.5 + 1000.6) * 1000), end: Math.round((40 + 1000.6) * 1000) };
  const journal = ["[    0.000000] guest kernel: Linux version 6.1.0", "[    0.000000] guest kernel: Linux version 6.12.0", "[    4.000000] guest systemd[1]: Starting nvwa.service - nvwa", "[    0.000000] guest kernel: Linux version 6.1.0"].join("\n");
  const f = sessionFigures(serial, withExec, { c_ready_rt: "1125.100000" }, 0, journal);
  const p = Object.fromEntries(f.nvwa.phases);
  expect(p["kernel → systemd starts nvwa"]).toBeCloseTo(4, 6); // banner 31 → 35
  expect(p["systemd → nvwa exec"]).toBeCloseTo(1.5, 6); // 35 → 36.5
  expect(p["Bun start (exec → nvwa's code)"]).toBeCloseTo(3.5, 6); // 36.5 → 40
  expect(p["nvwa start-up"]).toBeCloseTo(2, 6); // 40 → 42
  expect(f.nvwa.phases.reduce((a, [, s]) => a + s, 0)).toBeCloseTo(f.nvwa.downtime, 6);
});
