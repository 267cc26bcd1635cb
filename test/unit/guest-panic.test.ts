/**
 * The guest harness runs a scenario again only when the guest's kernel panicked (an emulator
 * fault under TCG); this is how it recognises one in a run's serial log.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { guestPanic } from "../guest/scenarios.ts";

test("a kernel panic is found with the oops that caused it; a clean log or no log is none", () => {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-panic-"));
  try {
    expect(guestPanic(dir)).toBeNull();
    writeFileSync(join(dir, "serial.log"), "[  1.0] Linux version 6.12\n[  2.0] NVWA-GUEST boot=2 userspace\n");
    expect(guestPanic(dir)).toBeNull();
    writeFileSync(
      join(dir, "serial.log"),
      "[ 61.476] [    2.124563] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[ 61.477] RIP: 0010:sched_clock_cpu+0x9/0x190\n[ 61.492] [    2.127757] Kernel panic - not syncing: Fatal exception in interrupt\n",
    );
    expect(guestPanic(dir)).toBe("[ 61.476] [    2.124563] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI … [ 61.492] [    2.127757] Kernel panic - not syncing: Fatal exception in interrupt");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
