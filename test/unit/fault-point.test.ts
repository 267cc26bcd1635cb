/** Fault points: inert unless named; once per boot; `point@<release>` only on that kernel. */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { release } from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { faultPoint } from "../../src/fault-point.ts";

test("a point pauses only when named (bare or for this kernel), until released, and once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-fault-"));
  try {
    // Not named, or named for another kernel: returns at once, leaves nothing.
    await faultPoint("after-kill", { NVWA_FAULT_DIR: dir });
    await faultPoint("after-kill", { NVWA_FAULT_DIR: dir, NVWA_FAULT_PAUSE: "before-dump-2,after-kill@0.0.0-other" });
    expect(existsSync(join(dir, "after-kill.paused"))).toBe(false);
    // Named for this kernel: waits for the .go file.
    let done = false;
    const p = faultPoint("after-kill", { NVWA_FAULT_DIR: dir, NVWA_FAULT_PAUSE: `after-kill@${release()}` }).then(() => (done = true));
    await Bun.sleep(250);
    expect(existsSync(join(dir, "after-kill.paused"))).toBe(true);
    expect(done).toBe(false);
    writeFileSync(join(dir, "after-kill.go"), "");
    await p;
    expect(done).toBe(true);
    // Once per boot: the marker stays, so a restarted daemon goes straight through.
    rmSync(join(dir, "after-kill.go"));
    await faultPoint("after-kill", { NVWA_FAULT_DIR: dir, NVWA_FAULT_PAUSE: "after-kill" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
