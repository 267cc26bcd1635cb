/** The boot side's phase runner: in order, each timed, a failure reported and the next still run. */
import { expect, test } from "bun:test";
import { NvwaError } from "../../src/errors.ts";
import { runPhases, type PhaseEvent } from "../../src/restore/phases.ts";

test("phases run in order; a failing one is reported by name and the rest still run", async () => {
  const ran: string[] = [];
  const events: PhaseEvent[] = [];
  const results = await runPhases(
    [
      { name: "tcp-lock", run: () => void ran.push("tcp-lock") },
      { name: "network", run: () => { ran.push("network"); throw new NvwaError("net.failed", "eth0 is gone"); } },
      { name: "processes", run: async () => { await Bun.sleep(5); ran.push("processes"); } },
    ],
    (e) => events.push(e),
  );
  expect(ran).toEqual(["tcp-lock", "network", "processes"]);
  expect(events.map((e) => `${e.type} ${e.name}`)).toEqual([
    "phase-start tcp-lock", "phase-done tcp-lock", "phase-start network", "phase-failed network", "phase-start processes", "phase-done processes",
  ]);
  expect(results.map((r) => [r.name, r.error?.code])).toEqual([["tcp-lock", undefined], ["network", "net.failed"], ["processes", undefined]]);
  expect(results[2]?.ms).toBeGreaterThanOrEqual(4);
});
