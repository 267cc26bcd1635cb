/**
 * The update as a transaction: a list of steps, each with an optional undo. Steps run in order;
 * when one fails, the undos of the steps that completed run in reverse, each tolerant of the
 * previous one failing (the shape of systemd's shutdown.c: every phase logged, none skipped
 * because an earlier one broke). The caller gets the original error, with any undo failures
 * attached, so "nothing is lost" can be checked step by step.
 *
 * Steps are injected, so the sequencing and rollback rules are tested without root.
 */
import { NvwaError, toNvwaError } from "../errors.ts";

export interface Step {
  /** Stable name used in events, timings and the manifest ("load-kernel", "checkpoint", ...). */
  name: string;
  run(): Promise<void>;
  /** Reverses run(). Only called if run() completed. */
  undo?(): Promise<void>;
}

export type TransactionEvent =
  | { type: "step-start"; step: string; at: number }
  | { type: "step-done"; step: string; at: number; ms: number }
  | { type: "step-failed"; step: string; at: number; ms: number; error: NvwaError }
  | { type: "undo-start"; step: string; at: number }
  | { type: "undo-done"; step: string; at: number; ms: number }
  | { type: "undo-failed"; step: string; at: number; ms: number; error: NvwaError };

export interface StepTiming {
  step: string;
  start: number;
  end: number;
}

export interface TransactionResult {
  timings: StepTiming[];
}

/** Thrown when a step failed; `undoErrors` lists what could not be put back. */
export class RolledBackError extends NvwaError {
  readonly failedStep: string;
  readonly original: NvwaError;
  readonly undoErrors: { step: string; error: NvwaError }[];
  constructor(failedStep: string, original: NvwaError, undoErrors: { step: string; error: NvwaError }[]) {
    const clean = undoErrors.length === 0;
    super(
      original.code,
      clean
        ? `${original.message} (during ${failedStep}; everything was rolled back)`
        : `${original.message} (during ${failedStep}; rollback incomplete: ${undoErrors.map((u) => `${u.step}: ${u.error.message}`).join("; ")})`,
      {
        hint: clean ? original.hint : `${original.hint ?? ""}${original.hint ? "; " : ""}then run \`nvwa status\` and \`nvwa init\` to clean up what is left`,
        exitCode: original.exitCode,
        details: { ...original.details, failedStep, undoErrors: undoErrors.map((u) => ({ step: u.step, ...u.error.toJSON() })) },
        cause: original,
      },
    );
    this.failedStep = failedStep;
    this.original = original;
    this.undoErrors = undoErrors;
  }
}

/**
 * `interrupt` is asked before each step; an error it returns fails that step without running it
 * (the daemon being stopped mid-update, src/update/stop-request.ts).
 */
export async function runTransaction(steps: Step[], emit: (e: TransactionEvent) => void = () => {}, interrupt: (next: string) => NvwaError | null = () => null): Promise<TransactionResult> {
  const done: Step[] = [];
  const timings: StepTiming[] = [];
  for (const step of steps) {
    const start = Date.now();
    emit({ type: "step-start", step: step.name, at: start });
    try {
      const stop = interrupt(step.name);
      if (stop !== null) throw stop;
      await step.run();
    } catch (e) {
      const error = toNvwaError(e);
      const end = Date.now();
      emit({ type: "step-failed", step: step.name, at: end, ms: end - start, error });
      const undoErrors = await undoAll(done, emit);
      throw new RolledBackError(step.name, error, undoErrors);
    }
    const end = Date.now();
    timings.push({ step: step.name, start, end });
    emit({ type: "step-done", step: step.name, at: end, ms: end - start });
    done.push(step);
  }
  return { timings };
}

async function undoAll(done: Step[], emit: (e: TransactionEvent) => void): Promise<{ step: string; error: NvwaError }[]> {
  const errors: { step: string; error: NvwaError }[] = [];
  for (const step of [...done].reverse()) {
    if (step.undo === undefined) continue;
    const start = Date.now();
    emit({ type: "undo-start", step: step.name, at: start });
    try {
      await step.undo();
      emit({ type: "undo-done", step: step.name, at: Date.now(), ms: Date.now() - start });
    } catch (e) {
      const error = toNvwaError(e);
      errors.push({ step: step.name, error });
      emit({ type: "undo-failed", step: step.name, at: Date.now(), ms: Date.now() - start, error });
    }
  }
  return errors;
}
