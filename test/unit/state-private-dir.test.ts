/** criu_dir and images dirs: created 0700 whatever the umask, tightened when loosened, symlinks refused. */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError } from "../../src/errors.ts";
import { ensurePrivateDir } from "../../src/state/private-dir.ts";

const dir = mkdtempSync(join(tmpdir(), "nvwa-private-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("created 0700 with missing parents, even under umask 0", () => {
  const old = process.umask(0);
  try {
    ensurePrivateDir(join(dir, "a", "b"));
  } finally {
    process.umask(old);
  }
  expect(statSync(join(dir, "a", "b")).mode & 0o777).toBe(0o700);
});

test("an existing dir left open to others is tightened", () => {
  const d = join(dir, "open");
  mkdirSync(d, { mode: 0o755 });
  chmodSync(d, 0o755);
  ensurePrivateDir(d);
  expect(statSync(d).mode & 0o777).toBe(0o700);
});

test("a symlink or a file in its place is refused", () => {
  const real = join(dir, "real");
  mkdirSync(real);
  symlinkSync(real, join(dir, "link"));
  writeFileSync(join(dir, "file"), "x");
  for (const p of [join(dir, "link"), join(dir, "file")]) {
    try {
      ensurePrivateDir(p);
      throw new Error(`accepted ${p}`);
    } catch (e) {
      if (!isNvwaError(e)) throw e;
      expect(e.code).toBe("state.insecure-path");
      expect(e.message).toContain(p);
    }
  }
});
