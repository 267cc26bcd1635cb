/**
 * 8. A second concurrent update is refused by the lock; when the holder dies without releasing
 * it, the next run takes it over and says whose it was. The holder is a real second process.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError, type NvwaError } from "../../src/errors.ts";
import { rehearse } from "../../src/update/rehearse.ts";
import { acquireLock, lockHolder, lockPath } from "../../src/state/lock.ts";
import { config, testCriu } from "./helpers/criu-env.ts";

const dir = mkdtempSync(join(tmpdir(), "nvwa-lock-host-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function refused(f: () => unknown): Promise<NvwaError> {
  try {
    await f();
  } catch (e) {
    if (isNvwaError(e)) return e;
    throw e;
  }
  throw new Error("not refused");
}

test("8. a second update is refused while another holds the lock; a dead holder's lock is taken over", async () => {
  const criuDir = join(dir, "running");
  const path = lockPath(criuDir);
  const holder = Bun.spawn([process.execPath, join(import.meta.dir, "helpers", "hold-lock.ts"), path], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const reader = holder.stdout.getReader();
  const first = await reader.read();
  expect(new TextDecoder().decode(first.value)).toBe("held\n");

  const e = await refused(() => acquireLock(path, "update"));
  expect(e.code).toBe("state.locked");
  expect(e.message).toContain(`another nvwa run holds ${path}: pid ${holder.pid} (update held-by-test)`);
  expect(e.hint).toContain("one update");
  expect(lockHolder(path)?.pid).toBe(holder.pid);
  // A rehearsal is an update as far as the workloads are concerned: refused the same way.
  expect((await refused(() => rehearse(config(criuDir, testCriu(), { pids: [process.pid] })))).code).toBe("state.locked");

  holder.kill("SIGKILL");
  await holder.exited;
  expect(lockHolder(path)).toBeNull();
  const held = acquireLock(path, "update");
  expect(held.tookOver?.pid).toBe(holder.pid);
  expect(held.tookOver?.updateId).toBe("held-by-test");
  held.release();
});
