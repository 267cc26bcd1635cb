/**
 * Lazy restore (enable_lazy_restore): a target runs again before its private memory is back, and
 * criu's lazy-pages daemon copies that memory in afterwards, on fault and in the background. The
 * danger is silent: if the daemon ends before it has copied everything, the pages not yet copied
 * read as zeros (the kernel hands out a zero page, no signal; src/criu/notes/pre-dump-and-lazy-restore.md §4).
 * So this module supervises each daemon until it ends on its own:
 *
 *   exit 0             every page is in: the target's `lazy` record says "done" and when; only now
 *                      are its images removed
 *   anything else      the tree's memory is damaged: every process of it is killed, the target is
 *                      "lost" with the reason, its images kept (they are not restored again: the
 *                      tree ran meanwhile, and its files moved on from the checkpoint)
 *
 * The update stays "restoring" while any target's memory is coming back (plan.ts settledPhase),
 * and the boot-side restore waits for all of it before it ends. A daemon restarted while a copy
 * was under way cannot know how it ended: recover.ts treats it as damaged (lazyUnfinished).
 */
import { removeImages } from "../criu/images.ts";
import { describeLazyExit, lazyCompleted, startLazyPages, type LazyExit, type LazyPagesDaemon } from "../criu/lazy-pages.ts";
import { checkArgv, criuEnv } from "../criu/argv.ts";
import type { OnEvent } from "../criu/events.ts";
import { featureSupported } from "../criu/probe.ts";
import { currentTree, readProc } from "../criu/proc.ts";
import { runCriu } from "../criu/runner.ts";
import { signalAll } from "../criu/signals.ts";
import { NvwaError } from "../errors.ts";
import { faultKill } from "../fault-point.ts";
import { note } from "../note.ts";
import { errorRecord, withTarget, type ManifestOptions, type Target } from "../state/manifest.ts";
import { updateManifest } from "../state/manifest-file.ts";

export interface LazyRestoresOptions {
  criuDir: string;
  criuExe: string;
  options: ManifestOptions;
  onEvent: OnEvent;
}

/** Pure: the error a target gets when its lazy-pages daemon ended before every page was in. */
export function lazyLostError(t: Pick<Target, "name" | "imagesDir">, end: string, killed: readonly number[]): NvwaError {
  const what = killed.length > 0 ? `nvwa killed it (${killed.length} process(es), pid ${killed.join(", ")})` : "it had already exited";
  return new NvwaError("restore.lazy-pages-lost", `${t.name} is damaged: criu's lazy-pages daemon ended (${end}) before all of its memory was back, so pages not yet copied would read as zeros; ${what}`, {
    hint: `start it afresh (its checkpoint is not restored again: it ran meanwhile); the daemon's log is ${t.imagesDir}/lazy-pages.log; set enable_lazy_restore: false to restore memory in full before a target runs`,
    details: { target: t.name, end, killed: [...killed] },
  });
}

/**
 * SIGKILL to every process of a restored target: its tree now, and its dumped processes that still
 * run (one whose root crashed on a zero page is reparented out of the tree). The saved pids are the
 * restore's alone after the jump (ns_last_pid moved past them), so nothing else holds them.
 */
export function killTarget(t: Pick<Target, "rootPid" | "restoredPid" | "processes">): number[] {
  return signalAll(targetProcesses(t), "SIGKILL");
}

/** The running processes of a restored target: its tree now, and its dumped processes still alive. */
export function targetProcesses(t: Pick<Target, "rootPid" | "restoredPid" | "processes">): number[] {
  return [...new Set([...currentTree(t.restoredPid ?? t.rootPid).processes, ...t.processes.filter((p) => readProc(p) !== null)])].sort((a, b) => a - b);
}

export class LazyRestores {
  private readonly watching = new Map<string, Promise<void>>();
  private supported: Promise<boolean> | null = null;

  constructor(private readonly o: LazyRestoresOptions) {
    // Asked at once, while the boot-side restore does its network phases: criu's first run on a
    // new kernel probes it (kerndat, cached in /run for the restores after it) for a while.
    if (o.options.lazyRestore) void this.kernelSupports();
  }

  /** Names of the targets whose memory is still coming back. */
  pending(): string[] {
    return [...this.watching.keys()];
  }

  /** Settles once every supervised daemon has ended and its outcome is recorded (never rejects). */
  async settled(): Promise<void> {
    while (this.watching.size > 0) await Promise.allSettled([...this.watching.values()]);
  }

  /** `criu check --feature uffd-noncoop` on this kernel, asked once: the kernel after the jump is not the one `nvwa check` saw. */
  private kernelSupports(): Promise<boolean> {
    this.supported ??= runCriu({
      exe: this.o.criuExe,
      argv: checkArgv("uffd-noncoop"),
      env: criuEnv({ hardwareBreakpoints: this.o.options.hardwareBreakpoints }),
      action: "check",
      timeoutMs: 60_000,
    }).then(
      (r) => featureSupported(r.exitCode, `${r.stdout}\n${r.stderr}`, "uffd-noncoop"),
      () => false,
    );
    return this.supported;
  }

  /**
   * The daemon for one target, listening; null (said in a note) when this kernel or criu cannot
   * serve it: the target is then restored in full, as without the key.
   */
  async start(t: Target): Promise<LazyPagesDaemon | null> {
    const d = await this.startDaemon(t);
    // Recorded before criu restore runs: a daemon that dies from here on leaves a record that
    // tells its next start this target's memory may depend on an orphan (recovery-plan.ts).
    if (d !== null) updateManifest(this.o.criuDir, (m) => withTarget(m, t.name, (x) => ({ ...x, lazy: { state: "starting", daemonPid: d.pid, startedAt: Date.now() } })));
    return d;
  }

  private async startDaemon(t: Target): Promise<LazyPagesDaemon | null> {
    if (!(await this.kernelSupports())) {
      this.o.onEvent(note("warn", `${t.name}: restored in full: this kernel has no non-cooperative userfaultfd (criu check --feature uffd-noncoop fails), which enable_lazy_restore needs`));
      return null;
    }
    try {
      return await startLazyPages({
        exe: this.o.criuExe,
        imagesDir: t.imagesDir,
        env: criuEnv({ hardwareBreakpoints: this.o.options.hardwareBreakpoints }),
        ...(this.o.options.debug ? { verbosity: 4 } : {}),
        onNote: this.o.onEvent,
      });
    } catch (e) {
      this.o.onEvent(note("warn", `${t.name}: restored in full: ${e instanceof Error ? e.message : String(e)}`));
      return null;
    }
  }

  /**
   * The tree runs (criu restore --lazy-pages returned): from now until the daemon ends, the
   * target's memory is coming back. Records it and watches the daemon.
   */
  watch(t: Target, rootPid: number, daemon: LazyPagesDaemon, keepImages: boolean): void {
    const startedAt = Date.now();
    // Test-only (NVWA_FAULT_KILL, src/fault-point.ts): the daemon killed for real, mid-copy.
    faultKill("lazy-pages", t.name, daemon.pid);
    updateManifest(this.o.criuDir, (m) => withTarget(m, t.name, (x) => ({ ...x, lazy: { state: "copying", daemonPid: daemon.pid, startedAt } })));
    this.o.onEvent(note("info", `${t.name}: runs again; its memory is coming back from ${t.imagesDir} (criu lazy-pages, pid ${daemon.pid})`));
    const done = daemon.exited
      .then((end) => this.ended(t, rootPid, startedAt, end, keepImages))
      .catch((e: unknown) => {
        // The outcome could not be recorded (the manifest write failed): the target stays
        // "copying", which the next start of the daemon treats as lost, the safe side.
        this.o.onEvent(note("error", `${t.name}: the end of its lazy restore could not be recorded: ${e instanceof Error ? e.message : String(e)}`));
      })
      .finally(() => this.watching.delete(t.name));
    this.watching.set(t.name, done);
  }

  private ended(t: Target, rootPid: number, startedAt: number, end: LazyExit, keepImages: boolean): void {
    const endedAt = Date.now();
    const how = describeLazyExit(end);
    if (lazyCompleted(end)) {
      updateManifest(this.o.criuDir, (m) => withTarget(m, t.name, (x) => ({ ...x, lazy: { ...(x.lazy ?? { startedAt }), state: "done", startedAt, endedAt, end: how } })));
      if (!keepImages) {
        try {
          removeImages(t.imagesDir);
        } catch (e) {
          this.o.onEvent(note("warn", `${t.name}: cannot remove its images in ${t.imagesDir}: ${e instanceof Error ? e.message : String(e)}`));
        }
      }
      this.o.onEvent({ type: "target-lazy-done", name: t.name, ms: endedAt - startedAt });
      return;
    }
    // Recorded lost before the kill: whoever sees the tree die (its unit's start job, a helper)
    // must find it lost, not merely gone.
    const running = targetProcesses({ ...t, restoredPid: rootPid });
    const err = lazyLostError(t, how, running);
    updateManifest(this.o.criuDir, (m) =>
      withTarget(m, t.name, (x) => ({ ...x, phase: "lost", error: errorRecord(err), lazy: { ...(x.lazy ?? { startedAt }), state: "lost", startedAt, endedAt, end: how } })),
    );
    signalAll(running, "SIGKILL");
    this.o.onEvent({ type: "target-lazy-lost", name: t.name, error: errorRecord(err) });
  }
}
