/** The ownership rule on real files, as root (chown needs it). */
import { expect, test } from "bun:test";
import { chmodSync, chownSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NvwaError } from "../../src/errors.ts";
import { loadConfig } from "../../src/config/load.ts";

function configDir(mode: number, uid = 0): string {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-perm-"));
  const file = join(dir, "nvwa-restore.yaml");
  writeFileSync(file, "pids: [1234]\n");
  chmodSync(file, mode);
  chownSync(file, uid, 0);
  return dir;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (e) {
    return e instanceof NvwaError ? `${e.code}: ${e.hint}` : `other: ${String(e)}`;
  }
}

test("the tests run as root (the rule applies only to root)", () => {
  expect(process.geteuid?.()).toBe(0);
});

test("root:root 0640 is accepted", () => {
  expect(loadConfig(configDir(0o640)).restore.pids).toEqual([1234]);
});

test("world-writable is refused with the chmod that fixes it", () => {
  const dir = configDir(0o666);
  expect(codeOf(() => loadConfig(dir))).toBe(`config.insecure: chmod go-w ${join(dir, "nvwa-restore.yaml")}`);
});

test("group-writable is refused", () => {
  expect(codeOf(() => loadConfig(configDir(0o620)))).toStartWith("config.insecure: chmod go-w");
});

test("owned by another user is refused with the chown that fixes it", () => {
  const dir = configDir(0o600, 1000);
  expect(codeOf(() => loadConfig(dir))).toBe(`config.insecure: chown root:root ${join(dir, "nvwa-restore.yaml")}`);
});

test("a directory where the file should be", () => {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-perm-"));
  const { mkdirSync } = require("node:fs") as typeof import("node:fs");
  mkdirSync(join(dir, "nvwa-server.yaml"));
  expect(codeOf(() => loadConfig(dir))).toStartWith("config.unreadable");
});
