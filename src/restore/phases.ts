/**
 * The boot side's shape, after systemd's shutdown sequence: phases run in order, each logged at
 * its start and its end with its time, and a phase that fails is reported and does not stop the
 * next one (a process without its network beats no process; services still come back when a
 * bare process could not). The phases and their effects are boot-restore.ts's.
 */
import { toNvwaError, type NvwaError } from "../errors.ts";

export interface BootPhase {
  name: string;
  run: () => Promise<void> | void;
}

export type PhaseEvent =
  | { type: "phase-start"; name: string }
  | { type: "phase-done"; name: string; ms: number }
  | { type: "phase-failed"; name: string; ms: number; error: NvwaError };

export interface PhaseResult {
  name: string;
  ms: number;
  error?: NvwaError;
}

export async function runPhases(phases: readonly BootPhase[], emit: (e: PhaseEvent) => void): Promise<PhaseResult[]> {
  const results: PhaseResult[] = [];
  for (const p of phases) {
    emit({ type: "phase-start", name: p.name });
    const t0 = performance.now();
    try {
      await p.run();
      const ms = Math.round(performance.now() - t0);
      emit({ type: "phase-done", name: p.name, ms });
      results.push({ name: p.name, ms });
    } catch (e) {
      const ms = Math.round(performance.now() - t0);
      const error = toNvwaError(e);
      emit({ type: "phase-failed", name: p.name, ms, error });
      results.push({ name: p.name, ms, error });
    }
  }
  return results;
}
