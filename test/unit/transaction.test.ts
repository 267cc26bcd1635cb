import { describe, expect, test } from "bun:test";
import { NvwaError } from "../../src/errors.ts";
import { RolledBackError, runTransaction, type Step, type TransactionEvent } from "../../src/update/transaction.ts";
import { interruptBefore, isCommitted, requestStop, setPreCommit } from "../../src/update/stop-request.ts";

/** Steps that record what ran into a journal; `fail` names steps whose run (or undo) throws. */
function steps(names: string[], fail: { run?: string; undo?: string[] } = {}, journal: string[] = []): Step[] {
  return names.map((name) => ({
    name,
    async run() {
      journal.push(`run ${name}`);
      if (fail.run === name) throw new NvwaError(`test.${name}`, `${name} broke`, { hint: `fix ${name}` });
    },
    async undo() {
      journal.push(`undo ${name}`);
      if (fail.undo?.includes(name)) throw new Error(`undo ${name} broke`);
    },
  }));
}

describe("runTransaction", () => {
  test("all steps succeed: run in order, no undo, timings for each", async () => {
    const journal: string[] = [];
    const r = await runTransaction(steps(["a", "b", "c"], {}, journal));
    expect(journal).toEqual(["run a", "run b", "run c"]);
    expect(r.timings.map((t) => t.step)).toEqual(["a", "b", "c"]);
    for (const t of r.timings) expect(t.end).toBeGreaterThanOrEqual(t.start);
  });

  test("a failing step undoes the completed ones in reverse and not itself", async () => {
    const journal: string[] = [];
    const events: TransactionEvent[] = [];
    const err = await runTransaction(steps(["load", "dropins", "checkpoint", "commit"], { run: "checkpoint" }, journal), (e) => events.push(e)).catch((e: unknown) => e);
    expect(journal).toEqual(["run load", "run dropins", "run checkpoint", "undo dropins", "undo load"]);
    expect(err).toBeInstanceOf(RolledBackError);
    const rb = err as RolledBackError;
    expect(rb.code).toBe("test.checkpoint");
    expect(rb.failedStep).toBe("checkpoint");
    expect(rb.message).toBe("checkpoint broke (during checkpoint; everything was rolled back)");
    expect(rb.hint).toBe("fix checkpoint");
    expect(events.map((e) => `${e.type}:${e.step}`)).toEqual([
      "step-start:load", "step-done:load", "step-start:dropins", "step-done:dropins", "step-start:checkpoint",
      "step-failed:checkpoint", "undo-start:dropins", "undo-done:dropins", "undo-start:load", "undo-done:load",
    ]);
  });

  test("a failing undo does not stop the other undos, and is reported", async () => {
    const journal: string[] = [];
    const err = (await runTransaction(steps(["a", "b", "c", "d"], { run: "d", undo: ["b"] }, journal)).catch((e: unknown) => e)) as RolledBackError;
    expect(journal).toEqual(["run a", "run b", "run c", "run d", "undo c", "undo b", "undo a"]);
    expect(err.undoErrors.map((u) => u.step)).toEqual(["b"]);
    expect(err.message).toContain("rollback incomplete: b: undo b broke");
    expect(err.hint).toContain("nvwa init");
  });

  test("the first step failing undoes nothing", async () => {
    const journal: string[] = [];
    await expect(runTransaction(steps(["a", "b"], { run: "a" }, journal))).rejects.toBeInstanceOf(RolledBackError);
    expect(journal).toEqual(["run a"]);
  });

  test("non-Nvwa errors are wrapped, not lost", async () => {
    const s: Step[] = [{ name: "x", run: async () => { throw new TypeError("boom"); } }];
    const err = (await runTransaction(s).catch((e: unknown) => e)) as RolledBackError;
    expect(err.original.message).toBe("boom");
    expect(err.code).toBe("internal");
  });
});

describe("a stop of the daemon during an update (stop-request.ts)", () => {
  const steps = (ran: string[]): Step[] =>
    ["load-kernel", "checkpoint", "commit", "jump"].map((name) => ({
      name,
      run: async () => {
        ran.push(name);
        if (name === "checkpoint") requestStop("SIGTERM"); // arrives while the checkpoint runs
      },
      undo: async () => void ran.push(`undo ${name}`),
    }));

  test("before the commit: the next step fails, everything done is undone, the error says why", async () => {
    const ran: string[] = [];
    setPreCommit(true);
    const err = await runTransaction(steps(ran), () => {}, interruptBefore)
      .finally(() => setPreCommit(false))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RolledBackError);
    expect((err as RolledBackError).failedStep).toBe("commit");
    expect((err as RolledBackError).code).toBe("update.stopped");
    expect(ran).toEqual(["load-kernel", "checkpoint", "undo checkpoint", "undo load-kernel"]);
    expect(isCommitted()).toBe(false);
  });

  test("from the commit on, a stop is the jump's: nothing is interrupted and the daemon is told not to wait", async () => {
    const ran: string[] = [];
    setPreCommit(true);
    const s: Step[] = ["load-kernel", "commit", "jump"].map((name) => ({
      name,
      run: async () => {
        ran.push(name);
        if (name === "commit") expect(requestStop("SIGTERM")).toBe(false);
        if (name === "jump") expect(isCommitted()).toBe(true);
      },
    }));
    await runTransaction(s, () => {}, interruptBefore).finally(() => setPreCommit(false));
    expect(ran).toEqual(["load-kernel", "commit", "jump"]);
  });

  test("no update running: a stop asks nothing of anyone", () => {
    setPreCommit(false);
    expect(requestStop("SIGTERM")).toBe(false);
    expect(interruptBefore("checkpoint")).toBeNull();
  });
});
