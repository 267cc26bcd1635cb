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
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { chainOptions, PRE_DUMP_LOG, preDumpArgv } from "../criu/argv.ts";
import type { OnEvent } from "../criu/events.ts";
import { imageBytes, prepareImagesDir, syncImages } from "../criu/images.ts";
import { parseDumpStats, rootCause } from "../criu/log.ts";
import type { CheckpointPlan, PlannedTarget } from "../criu/plan.ts";
import { nextPreDumpRound, type PreDumpRound } from "../criu/pre-dump.ts";
import { targetLabel } from "../criu/restore-run.ts";
import { criuFailure, failureLines, runCriu, type CriuRun, type CriuRunSpec } from "../criu/runner.ts";
import { toNvwaError } from "../errors.ts";
import { faultPoint } from "../fault-point.ts";
import { interruptBefore } from "./stop-request.ts";
import { note } from "../note.ts";
import type { PreDump } from "../state/manifest-schema.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";

const PAGE = 4096;
const MiB = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

/** Pure: smaps holds a private hugetlb mapping ("ht" among a mapping's VmFlags, without "sh"). */
export function hasPrivateHugetlb(smaps: string): boolean {
  return smaps.split("\n").some((l) => {
    if (!l.startsWith("VmFlags:")) return false;
    const flags = l.slice(8).trim().split(/\s+/);
    return flags.includes("ht") && !flags.includes("sh");
  });
}

function criuBefore318(version: string | undefined): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version ?? "");
  return m !== null && (Number(m[1]) < 3 || (Number(m[1]) === 3 && Number(m[2]) < 18));
}

/** Why a target gets no pre-dump at all, or null when it can have one. Pure. */
export function preDumpRefusal(p: PlannedTarget, memTrack: boolean, facts: { criuVersion?: string; privateHugetlb?: boolean } = {}): string | null {
  if (!memTrack) return "this kernel has no soft-dirty tracking (criu check --feature mem_dirty_track fails; arm64 has none): dumped in full while frozen";
  if (p.stoppedBefore.length > 0) return `pid(s) ${p.stoppedBefore.join(", ")} of the tree were already stopped, and criu pre-dumps only running tasks: dumped in full`;
  if (facts.privateHugetlb === true && criuBefore318(facts.criuVersion)) {
    return `the tree has private hugetlb memory, whose pre-dumped restore hangs in criu ${facts.criuVersion} (fixed in 3.18): dumped in full`;
  }
  return null;
}

function treeHasPrivateHugetlb(pids: readonly number[]): boolean {
  return pids.some((pid) => {
    try {
      return hasPrivateHugetlb(readFileSync(`/proc/${pid}/smaps`, "utf8"));
    } catch {
      return false;
    }
  });
}

/** The final dump's extra argv for a target's pre-dump record ([] without a chain). */
export function finalDumpOptions(pre: PreDump | undefined): string[] {
  return pre?.parent === undefined ? [] : chainOptions(pre.parent);
}

export async function preDumpTarget(p: PlannedTarget, plan: CheckpointPlan, memTrack: boolean, emit: OnEvent, timeoutMs = 10 * 60_000): Promise<PreDump> {
  const label = targetLabel(p);
  const refusal = preDumpRefusal(p, memTrack, { ...(plan.criuVersion === undefined ? {} : { criuVersion: plan.criuVersion }), privateHugetlb: treeHasPrivateHugetlb(p.processes) });
  if (refusal !== null) {
    emit(note("warn", `${label}: no pre-dump: ${refusal}`));
    return { rounds: [], skipped: refusal };
  }
  prepareImagesDir(p.imagesDir, emit);
  const done: PreDump["rounds"] = [];
  const history: PreDumpRound[] = [];
  const dropChain = (k: number, why: string): PreDump => {
    for (let r = 1; r <= k; r++) rmSync(join(p.imagesDir, `pre-${r}`), { recursive: true, force: true });
    const skipped = `pre-dump ${k} failed (${why}): dumped in full`;
    emit(note("warn", `${label}: ${skipped}`));
    return { rounds: done, skipped };
  };
  for (let k = 1; nextPreDumpRound(history).again; k++) {
    // A stop of the daemon ends the rounds at once: nothing is frozen yet, the update rolls back.
    const stop = interruptBefore("pre-dump");
    if (stop !== null) throw stop;
    const dir = `pre-${k}`;
    const path = join(p.imagesDir, dir);
    let run: CriuRun;
    let spec: CriuRunSpec;
    try {
      ensurePrivateDir(path, emit);
      spec = {
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
      run = await runCriu(spec);
    } catch (e) {
      return dropChain(k, toNvwaError(e).message);
    }
    if (run.exitCode !== 0 || run.timedOut) return dropChain(k, rootCause(failureLines(spec, run)) ?? criuFailure(spec, run, []).message);
    const stats = parseDumpStats(run.stdout) ?? undefined;
    const bytes = imageBytes(path);
    const ms = Math.round(run.ms);
    // Flushed now, while the tree still runs: left to the commit, a round's pages would reach a
    // slow disk (eMMC, SD) inside the downtime, seconds per GiB, which is what pre-dump is for.
    const flushStart = performance.now();
    try {
      syncImages(path);
    } catch (e) {
      return dropChain(k, toNvwaError(e).message);
    }
    const syncMs = Math.round(performance.now() - flushStart);
    done.push({ dir, ms, bytes, syncMs, ...(stats === undefined ? {} : { stats }) });
    history.push({ pagesWritten: stats?.pagesWritten ?? Math.ceil(bytes / PAGE), ms });
    const frozen = stats?.frozenUs === undefined ? "" : `, frozen ${(stats.frozenUs / 1000).toFixed(0)} ms`;
    emit(note("info", `${label}: pre-dump ${k}: ${MiB(bytes)} MiB written in ${ms} ms while it ran${frozen}, on disk ${syncMs} ms later`));
    if (k === 1) await faultPoint("after-pre-dump-1");
  }
  const last = done[done.length - 1];
  const stop = nextPreDumpRound(history);
  const total = done.reduce((s, r) => s + r.bytes, 0);
  emit(note("info", `${label}: ${done.length} pre-dump round(s), ${MiB(total)} MiB on disk, stopped: ${stop.again ? "?" : stop.why}; the freeze writes only what changed since ${last?.dir ?? "none"}`));
  return { rounds: done, ...(last === undefined ? {} : { parent: last.dir }) };
}
