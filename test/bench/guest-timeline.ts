/**
 * Pure: turns one "bench" guest session (test/guest/scenarios/bench) into per-phase figures for
 * the three ways of moving the workload: A nvwa (`nvwa update --fast`, old → new, and A2 back),
 * B by hand (criu dump, sync, kexec -e, criu restore from an early unit; old → new like A),
 * C cold (reboot, started from scratch).
 *
 * Clocks: every serial line carries the host's stamp (seconds since QEMU started, run-guest.sh).
 * nvwa's manifest and the guest's "ready" times are guest wall clock, which restarts from the
 * RTC (whole seconds) at every boot, so each boot gets its own offset: the median of
 * (guest wall clock − host stamp) over that boot's "bench" markers, which print both.
 */
import { median } from "./stats.ts";

export interface BenchMark {
  boot: number;
  name: string;
  /** Host stamp, seconds. */
  t: number;
  /** Guest wall clock, seconds since the epoch. */
  rt: number;
}

export interface SerialEvents {
  marks: BenchMark[];
  /** Host stamps of "kexec_core: Starting new kernel", in order. */
  kexecs: number[];
  /** Host stamps of each kernel's "Linux version" banner, in order (boot 1 first). */
  banners: number[];
  /** Host stamp of "reboot: Restarting system" (the cold path's firmware reboot). */
  firmwareReboots: number[];
}

export function parseSerial(serial: string): SerialEvents {
  const ev: SerialEvents = { marks: [], kexecs: [], banners: [], firmwareReboots: [] };
  for (const line of serial.split("\n")) {
    const m = /^\[\s*(\d+\.\d+)\] (.*)$/.exec(line);
    if (m === null) continue;
    const t = Number(m[1]);
    const text = m[2] ?? "";
    const b = /NVWA-GUEST boot=(\d+) bench (\S+) .*?rt=(\d+\.\d+)/.exec(text);
    if (b !== null) ev.marks.push({ boot: Number(b[1]), name: b[2] ?? "", t, rt: Number(b[3]) });
    else if (/\] Linux version |^Linux version /.test(text)) ev.banners.push(t);
    else if (text.includes("Starting new kernel")) ev.kexecs.push(t);
    else if (text.includes("reboot: Restarting system")) ev.firmwareReboots.push(t);
  }
  return ev;
}

/**
 * Per boot (in order), the kernel timestamp (seconds since that boot's banner) at which systemd
 * started nvwa.service, from `journalctl -o short-monotonic` of all boots; null where it did not.
 */
export function nvwaServiceStarts(journal: string): (number | null)[] {
  const out: (number | null)[] = [];
  for (const line of journal.split("\n")) {
    if (/ kernel: Linux version /.test(line)) out.push(null);
    const m = /^\[\s*(\d+\.\d+)\] \S+ systemd\[1\]: Starting nvwa\.service/.exec(line);
    if (m !== null && out.length > 0 && out[out.length - 1] === null) out[out.length - 1] = Number(m[1]);
  }
  return out;
}


/** boot → (guest wall clock − host stamp), seconds. */
export function bootOffsets(marks: BenchMark[]): Map<number, number> {
  const by = new Map<number, number[]>();
  for (const m of marks) by.set(m.boot, [...(by.get(m.boot) ?? []), m.rt - m.t]);
  return new Map([...by].map(([b, xs]) => [b, median(xs)]));
}

/** The parts of `nvwa status --json` the figures need. */
export interface BenchStatus {
  manifest: {
    timings: Record<string, { start: number; end?: number }>;
    targets: {
      name: string;
      timings: Record<string, { start: number; end?: number }>;
      imageBytes?: number;
      dumpStats?: { frozenUs?: number; memdumpUs?: number; memwriteUs?: number };
      /** enable_lazy_restore: when the restored tree ran, and when its last page arrived (epoch ms). */
      lazy?: { startedAt: number; endedAt?: number };
      /** enable_pre_dump: the rounds written while the tree ran (syncMs: their flush, builds from 096b89d). */
      preDump?: { rounds: { ms: number; bytes: number; syncMs?: number }[] };
    }[];
  };
}

export interface ModeFigures {
  /** Seconds the workload was not running. */
  downtime: number;
  /** Consecutive parts of the downtime, seconds, in order; they add up to it. */
  phases: [string, number][];
}

export type NvwaFigures = ModeFigures & {
  overhead: number;
  frozen: number;
  imageBytes: number;
  /** Lazy restore: seconds from running again to the last page (after the downtime, not part of it). */
  memoryBack?: number;
  /** Pre-dump: the rounds before the freeze (not downtime): their time, count and what they wrote. */
  preDump?: { seconds: number; rounds: number; mib: number };
};

export interface SessionFigures {
  /** old → new, like byHand. */
  nvwa: NvwaFigures;
  /** new → old: the same tool the other way (the kernels boot at different speeds). */
  nvwaBack: NvwaFigures;
  byHand: ModeFigures;
  cold: ModeFigures;
  /** The thrown-away criu dump before A (sessions from before it existed: null). */
  warmDump: number | null;
  /** B's pre-dump round by hand, before its freeze (sessions with pre-dump only). */
  byHandPreDump?: number;
}

export class TimelineError extends Error {}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined || (typeof v === "number" && !Number.isFinite(v))) throw new TimelineError(`bench timeline: ${what} missing`);
  return v;
}

type Mapper = (rtSeconds: number, boot: number) => number;

/** One nvwa update: its dump in boot `from`'s clock, the daemon's start and restore in the next boot's. */
function nvwaFigures(status: BenchStatus, from: number, kexec: number, banner: number, host: Mapper, serviceStart: number | null): NvwaFigures {
  const target = need(status.manifest.targets[0], "nvwa's target");
  const ms = (x: number | undefined, what: string): number => need(x, what) / 1000;
  const dumpStart = host(ms(target.timings.dump?.start, "dump start"), from);
  const dumpEnd = host(ms(target.timings.dump?.end, "dump end"), from);
  const daemonStart = host(ms(status.manifest.timings["boot-restore"]?.start, "boot-restore start"), from + 1);
  const restoreStart = host(ms(target.timings.restore?.start, "restore start"), from + 1);
  const restoreEnd = host(ms(target.timings.restore?.end, "restore end"), from + 1);
  const downtime = restoreEnd - dumpStart;
  // Builds that record the daemon's exec and its own first line (boot-restore.ts "daemon-exec").
  const execTiming = status.manifest.timings["daemon-exec"];
  const exec = execTiming === undefined ? undefined : host(execTiming.start / 1000, from + 1);
  const ownCode = execTiming?.end === undefined ? undefined : host(execTiming.end / 1000, from + 1);
  const startup: [string, number][] =
    exec === undefined || ownCode === undefined
      ? serviceStart === null
        ? [["kernel → nvwa start", daemonStart - banner]]
        : [
            ["kernel → systemd starts nvwa", serviceStart],
            ["nvwa daemon start-up", daemonStart - banner - serviceStart],
          ]
      : [
          ...((serviceStart === null
            ? [["kernel → nvwa exec", exec - banner]]
            : [
                ["kernel → systemd starts nvwa", serviceStart],
                ["systemd → nvwa exec", exec - banner - serviceStart],
              ]) as [string, number][]),
          ["Bun start (exec → nvwa's code)", ownCode - exec],
          ["nvwa start-up", daemonStart - ownCode],
        ];
  return {
    downtime,
    phases: [
      ["dump", dumpEnd - dumpStart],
      ["commit and reboot call", kexec - dumpEnd],
      ["kexec → kernel", banner - kexec],
      // Split where the journal says when systemd started the unit, and where the daemon says
      // its exec and its own first line were: Bun's start apart from nvwa's.
      ...startup,
      ["nvwa start → restore", restoreStart - daemonStart],
      ["restore", restoreEnd - restoreStart],
    ],
    // The definition: downtime − (dump + jump-to-nvwa-start + restore).
    overhead: downtime - ((dumpEnd - dumpStart) + (daemonStart - kexec) + (restoreEnd - restoreStart)),
    frozen: (target.dumpStats?.frozenUs ?? 0) / 1e6,
    imageBytes: target.imageBytes ?? 0,
    ...(target.lazy?.endedAt === undefined ? {} : { memoryBack: (target.lazy.endedAt - target.lazy.startedAt) / 1000 }),
    ...(target.preDump === undefined || target.preDump.rounds.length === 0
      ? {}
      : {
          preDump: {
            seconds: target.preDump.rounds.reduce((t, r) => t + r.ms + (r.syncMs ?? 0), 0) / 1000,
            rounds: target.preDump.rounds.length,
            mib: target.preDump.rounds.reduce((t, r) => t + r.bytes, 0) / 2 ** 20,
          },
        }),
  };
}

/** Which of A and B a session ran first (scenarios/bench ORDER): A B or B A, for ABBA sequences of sessions. */
export type BenchOrder = "ab" | "ba";

/**
 * statuses: `nvwa status --json` after each of the two updates, in the order they ran; results: the guest's result.env
 * (c_ready_rt, the cold path's ready time in the last boot's clock). After `warm` warm-up boots
 * (each ending in a kexec), the stages' boots are: old (A), new (A2), old (B), new (C), old; with
 * order "ba": old (B), new (A2), old (A), new (C), old.
 */
export function sessionFigures(serial: string, statuses: [BenchStatus, BenchStatus], results: Record<string, string>, warm = 0, journal = "", order: BenchOrder = "ab"): SessionFigures {
  const ev = parseSerial(serial);
  // A guest kernel that panics (an emulator fault under TCG, see test/guest/scenarios.ts
  // guestPanic) reboots through the firmware and the runner carries on, so the session can still
  // pass while its boots no longer line up with the stages.
  if (serial.includes("Kernel panic - not syncing")) throw new TimelineError("bench timeline: a guest kernel panicked during the session; its boots do not line up with the stages");
  if (ev.banners.length !== ev.kexecs.length + ev.firmwareReboots.length + 1) {
    throw new TimelineError(`bench timeline: ${ev.banners.length} kernel banners for ${ev.kexecs.length} kexecs and ${ev.firmwareReboots.length} firmware reboot(s): a boot neither explains`);
  }
  const off = bootOffsets(ev.marks);
  const host: Mapper = (rtSeconds, boot) => rtSeconds - need(off.get(boot), `clock offset of boot ${boot}`);
  const mark = (name: string): number => need(ev.marks.find((m) => m.name === name), `marker ${name}`).t;
  // Stage numbers 1..5 as in the comment above; kexecs and banners of the warm-up come first.
  const kexec = (i: number): number => need(ev.kexecs[warm + i], `kexec ${warm + i + 1}`);
  const banner = (stage: number): number => need(ev.banners[warm + stage - 1], `boot ${warm + stage} banner`);
  const mapStage: Mapper = (rt, stage) => host(rt, warm + stage);

  const starts = nvwaServiceStarts(journal);
  const started = (stage: number): number | null => starts[warm + stage - 1] ?? null;
  // "ab": A from stage 1, A2 from 2, B from 3. "ba": B from 1, A2 from 2, A from 3; the statuses
  // are in the order the updates ran (A2 first).
  const ab = order === "ab";
  const nvwa = ab ? nvwaFigures(statuses[0], 1, kexec(0), banner(2), mapStage, started(2)) : nvwaFigures(statuses[1], 3, kexec(2), banner(4), mapStage, started(4));
  const nvwaBack = nvwaFigures(ab ? statuses[1] : statuses[0], 2, kexec(1), banner(3), mapStage, started(3));
  const bFrom = ab ? 3 : 1;

  // B: by hand. All console markers: host stamps, no clock mapping needed.
  const bStart = mark("b-dump-start");
  const bPhases: [string, number][] = [
    ["dump", mark("b-dump-end") - bStart],
    ["sync", mark("b-synced") - mark("b-dump-end")],
    ["kexec -e call", kexec(bFrom - 1) - mark("b-synced")],
    ["kexec → kernel", banner(bFrom + 1) - kexec(bFrom - 1)],
    ["kernel → restore unit", mark("b-restore-start") - banner(bFrom + 1)],
    ["restore", mark("b-restore-end") - mark("b-restore-start")],
  ];

  // C: cold. Ready is the workload's own wall clock in boot 5.
  const cStart = mark("c-reboot");
  const restart = need(ev.firmwareReboots[0], "firmware reboot");
  const ready = mapStage(Number(need(results.c_ready_rt, "c_ready_rt")), 5);
  const cPhases: [string, number][] = [
    ["orderly shutdown", restart - cStart],
    ["firmware → kernel", banner(5) - restart],
    ["kernel → workload ready", ready - banner(5)],
  ];

  const warmStart = ev.marks.find((m) => m.name === "warm-dump-start");
  const warmEnd = ev.marks.find((m) => m.name === "warm-dump-end");
  const bPreStart = ev.marks.find((m) => m.name === "b-predump-start");
  const bPreEnd = ev.marks.find((m) => m.name === "b-predump-end");
  return {
    nvwa,
    nvwaBack,
    ...(bPreStart !== undefined && bPreEnd !== undefined ? { byHandPreDump: bPreEnd.t - bPreStart.t } : {}),
    warmDump: warmStart !== undefined && warmEnd !== undefined ? warmEnd.t - warmStart.t : null,
    byHand: { downtime: mark("b-restore-end") - bStart, phases: bPhases },
    cold: { downtime: ready - cStart, phases: cPhases },
  };
}
