/**
 * `bun run build` makes both executables; each is an ELF for the right machine and unstripped
 * (strip would delete the embedded program), and the x64 one runs here.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, openSync, readSync, closeSync } from "node:fs";
import { join } from "node:path";
import { TARGETS } from "../../build/compile.ts";

const root = join(import.meta.dir, "../..");

function elfHeader(path: string): { machine: number; cls: number; hasSymtab: boolean } {
  const fd = openSync(path, "r");
  const h = Buffer.alloc(64);
  readSync(fd, h, 0, 64, 0);
  expect(h.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
  // Section headers: find SHT_SYMTAB (2); `strip` removes it.
  const shoff = Number(h.readBigUInt64LE(0x28));
  const shentsize = h.readUInt16LE(0x3a);
  const shnum = h.readUInt16LE(0x3c);
  const sh = Buffer.alloc(shentsize * shnum);
  readSync(fd, sh, 0, sh.length, shoff);
  closeSync(fd);
  let hasSymtab = false;
  for (let i = 0; i < shnum; i++) if (sh.readUInt32LE(i * shentsize + 4) === 2) hasSymtab = true;
  return { machine: h.readUInt16LE(18), cls: h[4] ?? 0, hasSymtab };
}

beforeAll(() => {
  const p = Bun.spawnSync([process.execPath, "run", "build"], { cwd: root, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
}, 300_000);

for (const t of TARGETS) {
  test(`dist/${t.out} is a 64-bit ELF for ${t.arch}, not stripped`, () => {
    const path = join(root, "dist", t.out);
    expect(existsSync(path)).toBe(true);
    const h = elfHeader(path);
    expect(h.cls).toBe(2);
    expect(h.machine).toBe(t.elfMachine);
    expect(h.hasSymtab).toBe(true);
  });
}

test("the x64 executable runs --help", () => {
  const p = Bun.spawnSync([join(root, "dist/nvwa-linux-x64"), "--help"]);
  expect(p.exitCode).toBe(0);
  expect(p.stdout.toString()).toContain("COMMANDS:");
});
