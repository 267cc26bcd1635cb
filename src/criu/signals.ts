/**
 * Signals to whole trees and waiting for their pids to be free again. A killed process keeps its
 * pid until its parent reaps it; for a daemon that parent is init, which may take a moment, and
 * criu restore needs the exact pids back ("Can't fork for N: File exists").
 */
import { pidHolder, readProc } from "./proc.ts";

export type TreeSignal = "SIGCONT" | "SIGKILL" | "SIGSTOP";

/** Sends `signal` to each pid; returns those that received it (the others were already gone). */
export function signalAll(pids: readonly number[], signal: TreeSignal): number[] {
  const sent: number[] = [];
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
      sent.push(pid);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
  }
  return sent;
}

/** Polls until none of `pids` exists (zombies count as existing); returns those still held. */
export async function waitPidsFree(pids: readonly number[], timeoutMs: number, pollMs = 20): Promise<{ pid: number; holder: string }[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const held: { pid: number; holder: string }[] = [];
    for (const pid of pids) {
      const holder = pidHolder(pid);
      if (holder !== null) held.push({ pid, holder });
    }
    if (held.length === 0 || Date.now() >= deadline) return held;
    await Bun.sleep(pollMs);
  }
}

/** Polls until every process of `pids` has left the stopped state; returns those still stopped. */
export async function waitRunning(pids: readonly number[], timeoutMs: number, pollMs = 10): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stopped = pids.filter((pid) => {
      const s = readProc(pid)?.state;
      return s === "T" || s === "t";
    });
    if (stopped.length === 0 || Date.now() >= deadline) return stopped;
    await Bun.sleep(pollMs);
  }
}
