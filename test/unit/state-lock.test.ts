/**
 * The update lock's pure parts (reading a holder, describing it) and its behaviour within one
 * process on a temp dir. Cross-process exclusion and stale takeover run for real in
 * test/host/criu-lock.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError } from "../../src/errors.ts";
import { parseLockPid } from "../../src/update/facts.ts";
import { acquireLock, describeHolder, lockHolder, lockPath, parseLockInfo } from "../../src/state/lock.ts";

const dir = mkdtempSync(join(tmpdir(), "nvwa-lock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("parseLockInfo: JSON, a bare number, garbage", () => {
  expect(parseLockInfo('{"pid":42,"purpose":"update","since":1700000000000,"bootId":"b","updateId":"u"}\n')).toEqual({
    pid: 42,
    purpose: "update",
    since: 1700000000000,
    bootId: "b",
    updateId: "u",
  });
  expect(parseLockInfo("42\n")).toEqual({ pid: 42, purpose: "unknown", since: 0 });
  expect(parseLockInfo("")).toBeNull();
  expect(parseLockInfo("{}")).toBeNull();
  expect(parseLockInfo("not a lock")).toBeNull();
});

test("describeHolder says when the holder is from before the last jump", () => {
  const h = { pid: 42, purpose: "update", since: Date.UTC(2026, 0, 2, 3, 4, 5), bootId: "old", updateId: "u1" };
  expect(describeHolder(h, "old")).toBe("pid 42 (update u1) since 2026-01-02T03:04:05.000Z");
  expect(describeHolder(h, "new")).toContain("before the last reboot or kernel jump");
});

test("acquire writes who holds it (readable by preflight's parser), 0600; a second acquire is refused; release removes it", () => {
  const path = lockPath(join(dir, "a"));
  const held = acquireLock(path, "update", { updateId: "u1" });
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(parseLockPid(readFileSync(path, "utf8"))).toBe(process.pid);
  expect(lockHolder(path)).toMatchObject({ pid: process.pid, purpose: "update", updateId: "u1" });
  try {
    acquireLock(path, "rehearsal");
    throw new Error("second acquire succeeded");
  } catch (e) {
    if (!isNvwaError(e)) throw e;
    expect(e.code).toBe("state.locked");
    expect(e.message).toContain(`pid ${process.pid} (update u1)`);
  }
  held.release();
  expect(existsSync(path)).toBe(false);
  expect(lockHolder(path)).toBeNull();
  held.release(); // twice is harmless
});

test("a lock file whose holder is gone is taken over, and says whose it was", () => {
  const path = lockPath(join(dir, "b"));
  acquireLock(path, "x").release();
  writeFileSync(path, JSON.stringify({ pid: 999999, purpose: "update", since: 1 }));
  expect(lockHolder(path)).toBeNull();
  const held = acquireLock(path, "update");
  expect(held.tookOver).toMatchObject({ pid: 999999, purpose: "update" });
  held.release();
});
