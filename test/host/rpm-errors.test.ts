/**
 * `bun run package` refuses bad inputs before it builds anything, with an error that names
 * the file, key or value and says what to do; and a failed run leaves the previous repo alone.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError, type NvwaError } from "../../src/errors.ts";
import { packageAll, type PackageOptions } from "../../build/package.ts";

const ROOT = join(import.meta.dir, "../..");
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "nvwa-rpm-errors-"));
  if (!existsSync(join(ROOT, "dist/nvwa-linux-arm64"))) {
    const p = Bun.spawnSync([process.execPath, "run", "build", "arm64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
    expect(p.exitCode).toBe(0);
  }
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

async function failure(opts: PackageOptions): Promise<NvwaError> {
  try {
    await packageAll({ env: { NVWA_GPG_KEY_ID: "" }, ...opts });
  } catch (e) {
    if (isNvwaError(e)) return e;
    throw e;
  }
  throw new Error("packageAll succeeded but should have failed");
}

test("no executables: says which file and to run the build", async () => {
  const dist = join(work, "empty-dist");
  mkdirSync(dist);
  const e = await failure({ distDir: dist, out: join(work, "out1") });
  expect(e.code).toBe("package.missing-executable");
  expect(e.message).toBe(`${join(dist, "nvwa-linux-x64")} does not exist`);
  expect(e.hint).toContain("bun run build");
  expect(existsSync(join(work, "out1"))).toBe(false);
});

test("an arm64 executable where the x86_64 one should be is refused", async () => {
  const dist = join(work, "swapped-dist");
  mkdirSync(dist);
  linkSync(join(ROOT, "dist/nvwa-linux-arm64"), join(dist, "nvwa-linux-x64"));
  const e = await failure({ distDir: dist, arches: ["x64"], out: join(work, "out2") });
  expect(e.code).toBe("package.wrong-executable");
  expect(e.message).toContain("is not an x86_64 ELF executable (e_machine 183)");
});

test("a signing key that is not there fails before anything is built, and the old repo stays", async () => {
  const out = join(work, "out3");
  mkdirSync(join(out, "Packages"), { recursive: true });
  writeFileSync(join(out, "Packages", "previous.rpm"), "the previous release");
  const gnupg = join(work, "gnupg-empty");
  mkdirSync(gnupg, { mode: 0o700 });
  const e = await failure({ arches: ["arm64"], out, env: { NVWA_GPG_KEY_ID: "0000000000000000DEADBEEF", GNUPGHOME: gnupg } });
  expect(e.code).toBe("package.gpg-key");
  expect(e.message).toBe(`NVWA_GPG_KEY_ID=0000000000000000DEADBEEF: no such secret key in ${gnupg}`);
  expect(e.hint).toContain("gpg --import");
  expect(readdirSync(join(out, "Packages"))).toEqual(["previous.rpm"]);
  expect(readdirSync(work).filter((d) => d.startsWith("out3."))).toEqual([]);
  Bun.spawnSync(["gpgconf", "--homedir", gnupg, "--kill", "all"]);
});

test("a passphrase file that does not exist is named", async () => {
  const e = await failure({ arches: ["arm64"], out: join(work, "out4"), env: { NVWA_GPG_KEY_ID: "ABCD", NVWA_GPG_PASSPHRASE_FILE: join(work, "nope") } });
  expect(e.code).toBe("package.gpg-key");
  expect(e.message).toContain(join(work, "nope"));
});

test("versions and releases rpm cannot carry are refused", async () => {
  expect((await failure({ version: "v1", out: join(work, "out5") })).code).toBe("package.bad-version");
  expect((await failure({ release: "1-1", out: join(work, "out5") })).code).toBe("package.bad-release");
  expect((await failure({ arches: ["mips"] as unknown as PackageOptions["arches"], out: join(work, "out5") })).code).toBe("package.bad-arch");
});

test("the CLI prints one line and a hint, never a stack, and exits 2 for bad usage", () => {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "build/package.ts"), "--arch", "sparc"], { stdout: "pipe", stderr: "pipe" });
  expect(p.exitCode).toBe(2);
  const err = p.stderr.toString();
  expect(err).toBe('package: unknown architecture "sparc" [package.bad-arch]\n  hint: use one of: x64 (x86_64), arm64 (aarch64)\n');
});
