/**
 * build/tarball.ts's ustar writer, read back by GNU tar (the reader OS pipelines use), and the
 * SHA256SUMS text as `sha256sum -c` reads it. No root: listing shows the recorded owners, and
 * extraction as a user keeps the recorded modes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError } from "../../src/errors.ts";
import { sha256sumsText, tarballName, ustarArchive, type TarEntry } from "../../build/tarball.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "nvwa-tarball-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MTIME = 1_780_000_000;
const LONG = `usr/share/${"deep/".repeat(25)}file.txt`; // > 100 bytes: needs ustar's prefix field
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

const ENTRIES: TarEntry[] = [
  { name: "etc/nvwa", type: "dir", mode: 0o755, mtime: MTIME },
  { name: "etc/nvwa/log", type: "dir", mode: 0o700, mtime: MTIME },
  { name: "etc/nvwa/nvwa-server.yaml", type: "file", mode: 0o640, mtime: MTIME, data: bytes("criu_dir: /var/nvwa/running/\n") },
  { name: "usr/bin/nvwa", type: "file", mode: 0o755, mtime: MTIME, data: new Uint8Array(1500).fill(7) },
  { name: "usr/share/empty", type: "file", mode: 0o644, mtime: MTIME, data: new Uint8Array() },
  { name: LONG, type: "file", mode: 0o644, mtime: MTIME, data: bytes("x") },
];

function tar(args: string[], cwd = dir): { code: number; out: string } {
  const p = Bun.spawnSync(["tar", ...args], { cwd, env: { ...process.env, LC_ALL: "C", TZ: "UTC" }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

test("GNU tar lists every entry with its mode, root:root (0/0), the one mtime and its size, in order", () => {
  const file = join(dir, "a.tar");
  writeFileSync(file, ustarArchive(ENTRIES));
  const r = tar(["-tvf", file, "--numeric-owner", "--full-time"]);
  expect(r.code).toBe(0);
  const when = "2026-05-28 20:26:40";
  expect(new Date(MTIME * 1000).toISOString()).toBe("2026-05-28T20:26:40.000Z");
  expect(r.out.split("\n").filter((l) => l !== "").map((l) => l.split(/\s+/).join(" "))).toEqual([
    `drwxr-xr-x 0/0 0 ${when} etc/nvwa/`,
    `drwx------ 0/0 0 ${when} etc/nvwa/log/`,
    `-rw-r----- 0/0 29 ${when} etc/nvwa/nvwa-server.yaml`,
    `-rwxr-xr-x 0/0 1500 ${when} usr/bin/nvwa`,
    `-rw-r--r-- 0/0 0 ${when} usr/share/empty`,
    `-rw-r--r-- 0/0 1 ${when} ${LONG}`,
  ]);
  // Names root/root too, for tools that map by name.
  expect(tar(["-tvf", file]).out.split("\n")[0]).toContain("root/root");
  // ustar, not GNU or pax: the most widely read format.
  expect(new TextDecoder().decode(readFileSync(file).subarray(257, 265))).toBe("ustar\x0000");
});

test("extracting gives back the bytes and modes; the archive is the same bytes every time", () => {
  const file = join(dir, "b.tar");
  const archive = ustarArchive(ENTRIES);
  writeFileSync(file, archive);
  const out = join(dir, "x");
  mkdirSync(out);
  expect(tar(["-xpf", file, "-C", out]).code).toBe(0);
  expect(readFileSync(join(out, "etc/nvwa/nvwa-server.yaml"), "utf8")).toBe("criu_dir: /var/nvwa/running/\n");
  expect(readFileSync(join(out, "usr/bin/nvwa"))).toEqual(Buffer.from(new Uint8Array(1500).fill(7)));
  expect(readFileSync(join(out, LONG), "utf8")).toBe("x");
  expect((lstatSync(join(out, "usr/bin/nvwa")).mode & 0o7777).toString(8)).toBe("755");
  expect((lstatSync(join(out, "etc/nvwa/log")).mode & 0o7777).toString(8)).toBe("700");
  expect((lstatSync(join(out, "etc/nvwa/nvwa-server.yaml")).mode & 0o7777).toString(8)).toBe("640");
  expect(lstatSync(join(out, "usr/bin/nvwa")).mtimeMs).toBe(MTIME * 1000);
  // 512-byte blocks, two zero blocks at the end.
  expect(archive.length % 512).toBe(0);
  expect(archive.subarray(-1024).every((b) => b === 0)).toBe(true);
  expect(createHash("sha256").update(ustarArchive(ENTRIES)).digest("hex")).toBe(createHash("sha256").update(archive).digest("hex"));
});

test("a damaged header is caught by tar (the checksum is real)", () => {
  const archive = ustarArchive(ENTRIES);
  archive[0] = "f".charCodeAt(0); // "etc/nvwa/" → "ftc/nvwa/", checksum unchanged
  const file = join(dir, "c.tar");
  writeFileSync(file, archive);
  const r = tar(["-tf", file]);
  expect(r.code).not.toBe(0);
  expect(r.out).toMatch(/header|Skipping|not look like a tar/i);
});

test("names that are absolute, ./-relative or too long are refused", () => {
  const code = (name: string): string | undefined => {
    try {
      ustarArchive([{ name, type: "file", mode: 0o644, mtime: 0, data: new Uint8Array() }]);
    } catch (e) {
      return isNvwaError(e) ? e.code : String(e);
    }
    return undefined;
  };
  expect(code("/usr/bin/nvwa")).toBe("package.tarball");
  expect(code("./usr/bin/nvwa")).toBe("package.tarball");
  expect(code(`${"x".repeat(200)}/y`)).toBe("package.tarball");
  expect(code("usr/bin/nvwa")).toBeUndefined();
});

test("SHA256SUMS: what sha256sum -c reads, sorted by name", () => {
  const a = join(dir, "nvwa-0.1.0-linux-x64.tar.gz");
  const b = join(dir, "nvwa-0.1.0-linux-arm64.tar.gz");
  writeFileSync(a, "x64");
  writeFileSync(b, "arm64");
  const sum = (p: string): string => createHash("sha256").update(readFileSync(p)).digest("hex");
  const text = sha256sumsText([
    { name: tarballName("0.1.0", "x64"), sha256: sum(a) },
    { name: tarballName("0.1.0", "arm64"), sha256: sum(b) },
  ]);
  expect(text.split("\n")[0]).toEndWith("  nvwa-0.1.0-linux-arm64.tar.gz");
  writeFileSync(join(dir, "SHA256SUMS"), text);
  const check = (): { code: number; out: string } => {
    const p = Bun.spawnSync(["sha256sum", "-c", "SHA256SUMS"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    return { code: p.exitCode ?? -1, out: p.stdout.toString() };
  };
  expect(check()).toEqual({ code: 0, out: "nvwa-0.1.0-linux-arm64.tar.gz: OK\nnvwa-0.1.0-linux-x64.tar.gz: OK\n" });
  writeFileSync(a, "x65");
  expect(check().code).toBe(1);
});
