/**
 * Pre-dumps before the freeze (enable_pre_dump): every target's memory is written while it runs,
 * in rounds (src/criu/pre-dump.ts decides how many), into <images>/pre-1, pre-2, … Then
 * checkpoint.ts's final dump, frozen, writes only what changed since the last round, with a
 * `parent` link to it; the restore follows the chain by itself.
 *
 * A pre-dump is an optimisation and never a reason to fail an update: a round that fails (criu
 * resumes the tree) throws the chain away, since the soft-dirty bits it consumed no longer
 * describe the pages on disk, and the target is dumped in full.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { chainOptions, PRE_DUMP_LOG, preDumpArgv } from "../criu/argv.ts";
import type { OnEvent } from "../criu/events.ts";
import { imageBytes, prepareImagesDir } from "../criu/images.ts";
import { parseDumpStats, rootCause } from "../criu/log.ts";
import type { CheckpointPlan, PlannedTarget } from "../criu/plan.ts";
import { nextPreDumpRound, type PreDumpRound } from "../criu/pre-dump.ts";
import { targetLabel } from "../criu/restore-run.ts";
import { criuFailure, failureLines, runCriu } from "../criu/runner.ts";
import { note } from "../note.ts";
import type { PreDump } from "../state/manifest-schema.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";

const PAGE = 4096;
const MiB = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

/** Why a target gets no pre-dump at all, or null when it can have one. */
export function preDumpRefusal(p: PlannedTarget, memTrack: boolean): string | null {
  if (!memTrack) return "this kernel has no soft-dirty tracking (criu check --feature mem_dirty_track fails; arm64 has none): dumped in full while frozen";
  if (p.stoppedBefore.length > 0) return `pid(s) ${p.stoppedBefore.join(", ")} of the tree were already stopped, and criu pre-dumps only running tasks: dumped in full`;
  return null;
}

/** The final dump's extra argv for a target's pre-dump record ([] without a chain). */
export function finalDumpOptions(pre: PreDump | undefined): string[] {
  return pre?.parent === undefined ? [] : chainOptions(pre.parent);
}

export async function preDumpTarget(p: PlannedTarget, plan: CheckpointPlan, memTrack: boolean, emit: OnEvent, timeoutMs = 10 * 60_000): Promise<PreDump> {
  const label = targetLabel(p);
  const refusal = preDumpRefusal(p, memTrack);
  if (refusal !== null) {
    emit(note("warn", `${label}: no pre-dump: ${refusal}`));
    return { rounds: [], skipped: refusal };
  }
  prepareImagesDir(p.imagesDir, emit);
  const done: PreDump["rounds"] = [];
  const history: PreDumpRound[] = [];
  for (let k = 1; nextPreDumpRound(history).again; k++) {
    const dir = `pre-${k}`;
    const path = join(p.imagesDir, dir);
    ensurePrivateDir(path, emit);
    const spec = {
      exe: plan.criuExe,
      argv: preDumpArgv({ pid: p.rootPid, imagesDir: path, ...(k > 1 ? { prevImagesDir: `../pre-${k - 1}` } : {}), ...(plan.options.debug ? { verbosity: 4 } : {}) }),
      env: plan.env,
      action: "pre-dump",
      target: label,
      logPath: join(path, PRE_DUMP_LOG),
      outDir: path,
      timeoutMs,
      onNote: emit,
    };
    const run = await runCriu(spec);
    if (run.exitCode !== 0 || run.timedOut) {
      const why = rootCause(failureLines(spec, run)) ?? criuFailure(spec, run, []).message;
      for (const r of done) rmSync(join(p.imagesDir, r.dir), { recursive: true, force: true });
      rmSync(path, { recursive: true, force: true });
      const skipped = `pre-dump ${k} failed (${why}): dumped in full`;
      emit(note("warn", `${label}: ${skipped}`));
      return { rounds: done, skipped };
    }
    const stats = parseDumpStats(run.stdout) ?? undefined;
    const bytes = imageBytes(path);
    const ms = Math.round(run.ms);
    done.push({ dir, ms, bytes, ...(stats === undefined ? {} : { stats }) });
    history.push({ pagesWritten: stats?.pagesWritten ?? Math.ceil(bytes / PAGE), ms });
    const frozen = stats?.frozenUs === undefined ? "" : `, frozen ${(stats.frozenUs / 1000).toFixed(0)} ms`;
    emit(note("info", `${label}: pre-dump ${k}: ${MiB(bytes)} MiB written in ${ms} ms while it ran${frozen}`));
  }
  const last = done[done.length - 1];
  const stop = nextPreDumpRound(history);
  const total = done.reduce((s, r) => s + r.bytes, 0);
  emit(note("info", `${label}: ${done.length} pre-dump round(s), ${MiB(total)} MiB on disk, stopped: ${stop.again ? "?" : stop.why}; the freeze writes only what changed since ${last?.dir ?? "none"}`));
  return { rounds: done, ...(last === undefined ? {} : { parent: last.dir }) };
}
