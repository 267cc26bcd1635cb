/**
 * The commit step of an update: the point of no return (see commitCheckpoint).
 */
import { ignoreEvents } from "../criu/events.ts";
import { syncContainer } from "../container/keep.ts";
import { syncImages } from "../criu/images.ts";
import { targetLabel } from "../criu/restore-run.ts";
import { signalAll, waitPidsFree } from "../criu/signals.ts";
import { NvwaError } from "../errors.ts";
import { faultPoint } from "../fault-point.ts";
import { note } from "../note.ts";
import { fsyncDir } from "../state/atomic.ts";
import { currentBootId } from "../state/lock.ts";
import { withPhase, type Manifest } from "../state/manifest.ts";
import { writeManifest } from "../state/manifest-file.ts";
import { liveProcesses, type EngineOptions } from "./rollback.ts";

export interface CommitResult {
  manifest: Manifest;
  syncedBytes: number;
  /** Pids not yet reaped when commit returned (their parent has not waited for them yet). */
  stillHeld: { pid: number; holder: string }[];
}

/**
 * The point of no return: images and manifest durable on disk (phase "committed", boot id, every
 * target "killing"), then the frozen trees are killed. The intent is written before the effect:
 * a crash at any moment after that write leaves a manifest from which the next start of the
 * daemon restores every target (src/daemon/recovery-plan.ts), whether its kill happened or not.
 * Call it after the last step that could still roll back.
 */
export async function commitCheckpoint(manifest: Manifest, o: EngineOptions = {}): Promise<CommitResult> {
  const emit = o.onEvent ?? ignoreEvents;
  if (manifest.phase !== "dumped") {
    throw new NvwaError("checkpoint.not-dumped", `cannot commit: the update is in phase "${manifest.phase}", not "dumped"`, {
      hint: "commit follows a successful checkpoint; see `nvwa status`",
      details: { phase: manifest.phase },
    });
  }
  const started = performance.now();
  let synced = 0;
  for (const t of manifest.targets) synced += syncImages(t.imagesDir);
  for (const c of manifest.containers) synced += syncContainer(c);
  fsyncDir(manifest.criuDir);
  emit({ type: "images-synced", ms: Math.round(performance.now() - started), bytes: synced });
  const bootId = currentBootId();
  let m: Manifest = {
    ...withPhase(manifest, "committed"),
    ...(bootId === undefined ? {} : { bootId }),
    targets: manifest.targets.map((t) => ({ ...t, phase: "killing" as const })),
  };
  writeManifest(m);

  const stillHeld: { pid: number; holder: string }[] = [];
  for (const t of m.targets) {
    const t0 = performance.now();
    const pids = liveProcesses({ ...t, stoppedBefore: [] });
    signalAll(pids, "SIGKILL");
    const held = await waitPidsFree(t.pids, o.reapTimeoutMs ?? 10_000);
    stillHeld.push(...held);
    if (held.length > 0) emit(note("warn", `${targetLabel(t)}: pid ${held[0]?.pid} not reaped yet (${held[0]?.holder}); a restore on this boot would clash`));
    emit({ type: "target-killed", name: t.name, pids: pids.length, ms: Math.round(performance.now() - t0) });
  }
  await faultPoint("after-kill");
  m = { ...m, targets: m.targets.map((t) => ({ ...t, phase: "killed" as const })) };
  writeManifest(m);
  return { manifest: m, syncedBytes: synced, stillHeld };
}
