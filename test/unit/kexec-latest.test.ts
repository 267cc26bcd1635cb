import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NvwaError } from "../../src/errors.ts";
import { compareReleases, installedKernels, pickLatest, releaseOfBootEntry } from "../../src/kexec/latest.ts";

describe("compareReleases (dpkg order)", () => {
  const ordered = [
    "5.10.0-136.12.0.86.oe2203sp1.aarch64",
    "6.1.0-28-cloud-amd64",
    "6.1.0-57-cloud-amd64",
    "6.12.0~rc3",
    "6.12.0",
    "6.12.12+bpo-cloud-amd64",
    "6.12.95+deb12-cloud-amd64",
    "6.18.0",
  ];
  test("sorts kernel releases of Debian, openEuler and upstream as their packages do", () => {
    const shuffled = [...ordered].reverse();
    expect(shuffled.sort(compareReleases)).toEqual(ordered);
  });
  test("numbers compare as numbers, not text", () => {
    expect(compareReleases("6.12.0", "6.9.0")).toBeGreaterThan(0);
    expect(compareReleases("6.1.0-9", "6.1.0-10")).toBeLessThan(0);
    expect(compareReleases("6.1.010", "6.1.10")).toBe(0);
  });
  test("~ sorts before the end, and letters before other characters", () => {
    expect(compareReleases("6.12~rc1", "6.12")).toBeLessThan(0);
    expect(compareReleases("6.12a", "6.12+")).toBeLessThan(0);
    expect(compareReleases("6.12", "6.12+x")).toBeLessThan(0);
  });
});

describe("pickLatest", () => {
  const k = (version: string, initrd: string | null = `/boot/initrd.img-${version}`) => ({ version, initrd });
  test("the newest installed kernel newer than the running one", () => {
    expect(pickLatest([k("6.1.0-57-cloud-amd64"), k("6.12.95+deb12-cloud-amd64"), k("6.1.0-28-cloud-amd64")], "6.1.0-57-cloud-amd64")).toEqual({
      kind: "newer",
      version: "6.12.95+deb12-cloud-amd64",
      running: "6.1.0-57-cloud-amd64",
    });
  });
  test("current when the running kernel is the newest, or nothing else is installed", () => {
    expect(pickLatest([k("6.1.0-57-cloud-amd64"), k("6.12.95+deb12-cloud-amd64")], "6.12.95+deb12-cloud-amd64")).toEqual({
      kind: "current",
      running: "6.12.95+deb12-cloud-amd64",
      newest: "6.12.95+deb12-cloud-amd64",
    });
    expect(pickLatest([], "6.1.0-57-cloud-amd64")).toEqual({ kind: "current", running: "6.1.0-57-cloud-amd64", newest: null });
    // Running a kernel newer than any in /boot (booted from elsewhere) is not a reason to go back.
    expect(pickLatest([k("6.1.0-28-cloud-amd64")], "6.1.0-57-cloud-amd64").kind).toBe("current");
  });
  test("a newest kernel without its initramfs is an error naming it, not a fall-back to an older one", () => {
    let err: unknown;
    try {
      pickLatest([k("6.12.95+deb12-cloud-amd64", null), k("6.6.0"), k("6.1.0-57-cloud-amd64")], "6.1.0-57-cloud-amd64");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NvwaError);
    expect((err as NvwaError).code).toBe("kexec.latest-initrd-missing");
    expect((err as NvwaError).exitCode).toBe(2);
    expect((err as NvwaError).message).toContain("6.12.95+deb12-cloud-amd64");
  });
});

test("releaseOfBootEntry keeps kernels and drops rescue images, .old links and other files", () => {
  expect(releaseOfBootEntry("vmlinuz-6.1.0-57-cloud-amd64")).toBe("6.1.0-57-cloud-amd64");
  expect(releaseOfBootEntry("vmlinuz-0-rescue-0123456789abcdef")).toBeNull();
  expect(releaseOfBootEntry("vmlinuz.old")).toBeNull();
  expect(releaseOfBootEntry("initrd.img-6.1.0-57-cloud-amd64")).toBeNull();
  expect(releaseOfBootEntry("config-6.1.0-57-cloud-amd64")).toBeNull();
});

test("installedKernels reads /boot and /usr/lib/modules with each kernel's initramfs", () => {
  const root = mkdtempSync(join(tmpdir(), "nvwa-latest-"));
  const boot = join(root, "boot");
  const mods = join(root, "usr/lib/modules");
  mkdirSync(boot, { recursive: true });
  mkdirSync(join(mods, "6.18.0-1-amd64"), { recursive: true });
  mkdirSync(join(mods, "6.1.0-57-cloud-amd64"), { recursive: true });
  for (const f of ["vmlinuz-6.1.0-57-cloud-amd64", "initrd.img-6.1.0-57-cloud-amd64", "vmlinuz-6.12.1", "config-6.12.1", "vmlinuz-0-rescue-abc"]) writeFileSync(join(boot, f), "");
  writeFileSync(join(mods, "6.18.0-1-amd64/vmlinuz"), "");
  writeFileSync(join(mods, "6.18.0-1-amd64/initrd"), "");
  const got = installedKernels(boot, mods).sort((a, b) => a.version.localeCompare(b.version));
  expect(got).toEqual([
    { version: "6.1.0-57-cloud-amd64", initrd: join(boot, "initrd.img-6.1.0-57-cloud-amd64") },
    { version: "6.12.1", initrd: null },
    { version: "6.18.0-1-amd64", initrd: join(mods, "6.18.0-1-amd64/initrd") },
  ]);
});
