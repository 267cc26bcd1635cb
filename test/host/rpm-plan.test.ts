/**
 * The pure half of packaging (build/rpm-plan.ts): names, versions, argv and generated text.
 * No root, no tools; the effects are exercised for real in rpm.test.ts.
 */
import { expect, test } from "bun:test";
import {
  ARCHES,
  archPlan,
  checkRelease,
  checksigOk,
  elfMachineOf,
  fingerprintsOf,
  isoVolumeId,
  repoFileText,
  rpmFileName,
  rpmVersionOf,
  rpmbuildArgv,
  rpmsignArgv,
  specSources,
} from "../../build/rpm-plan.ts";
import { codeOf } from "../lib/error-code.ts";


test("both compile targets map to rpm arches", () => {
  expect(ARCHES.map((a) => [a.bunArch, a.rpmArch, a.binary])).toEqual([
    ["x64", "x86_64", "nvwa-linux-x64"],
    ["arm64", "aarch64", "nvwa-linux-arm64"],
  ]);
  expect(archPlan("aarch64").bunArch).toBe("arm64");
  expect(archPlan("x64").rpmArch).toBe("x86_64");
  expect(codeOf(() => archPlan("riscv64"))).toBe("package.bad-arch");
});

test("semver becomes an rpm Version that sorts pre-releases first", () => {
  expect(rpmVersionOf("0.1.0")).toBe("0.1.0");
  expect(rpmVersionOf("1.2.0-rc.1")).toBe("1.2.0~rc.1");
  expect(rpmVersionOf("1.2.0-beta-2")).toBe("1.2.0~beta_2");
  expect(rpmVersionOf("1.2.0+git.abc")).toBe("1.2.0+git.abc");
  expect(codeOf(() => rpmVersionOf("v1.0"))).toBe("package.bad-version");
  expect(codeOf(() => rpmVersionOf("1.0 beta"))).toBe("package.bad-version");
  expect(codeOf(() => rpmVersionOf(""))).toBe("package.bad-version");
});

test("a Release with a dash or a space is refused", () => {
  expect(checkRelease("2")).toBe("2");
  expect(checkRelease("1.oe2203")).toBe("1.oe2203");
  expect(codeOf(() => checkRelease("1-2"))).toBe("package.bad-release");
  expect(codeOf(() => checkRelease("1 2"))).toBe("package.bad-release");
});

test("rpm file names", () => {
  expect(rpmFileName("0.1.0", "1", "aarch64")).toBe("nvwa-0.1.0-1.aarch64.rpm");
});

test("ELF e_machine is read from the header, little and big endian", () => {
  const h = new Uint8Array(64);
  h.set([0x7f, 0x45, 0x4c, 0x46, 2, 1], 0);
  h[18] = 0xb7;
  expect(elfMachineOf(h)).toBe(0xb7);
  h[5] = 2;
  h[18] = 0;
  h[19] = 0x3e;
  expect(elfMachineOf(h)).toBe(0x3e);
  expect(elfMachineOf(new TextEncoder().encode("#!/bin/sh\necho not an executable\n"))).toBeUndefined();
  expect(elfMachineOf(h.subarray(0, 10))).toBeUndefined();
});

test("every Source of rpm/nvwa.spec is staged, and nothing else", async () => {
  const spec = await Bun.file(`${import.meta.dir}/../../rpm/nvwa.spec`).text();
  const declared = [...spec.matchAll(/^Source\d+:\s+(\S+)$/gm)].map((m) => m[1]);
  expect(specSources().map((s) => s.name).sort()).toEqual(declared.sort() as string[]);
});

test("rpmbuild argv: target, topdir, sources, version; packager only when given", () => {
  const argv = rpmbuildArgv({ spec: "/r/nvwa.spec", topdir: "/t", sourcedir: "/s", arch: "aarch64", version: "0.1.0", release: "3" });
  expect(argv.slice(0, 5)).toEqual(["rpmbuild", "-bb", "--quiet", "--target", "aarch64-linux"]);
  expect(argv).toContain("_topdir /t");
  expect(argv).toContain("_sourcedir /s");
  expect(argv).toContain("nvwa_version 0.1.0");
  expect(argv).toContain("nvwa_release 3");
  expect(argv.at(-1)).toBe("/r/nvwa.spec");
  expect(argv.some((a) => a.startsWith("packager"))).toBe(false);
  expect(rpmbuildArgv({ spec: "s", topdir: "t", sourcedir: "s", arch: "x86_64", version: "1", release: "1", packager: "Ops <ops@example.com>" })).toContain(
    "packager Ops <ops@example.com>",
  );
});

test("rpmsign argv uses the key's GNUPGHOME and a passphrase file only when there is one", () => {
  const plain = rpmsignArgv({ files: ["/a.rpm", "/b.rpm"], keyId: "ABCD", gnupgHome: "/g", gpg: "/usr/bin/gpg" });
  expect(plain).toEqual(["rpmsign", "--addsign", "--define", "_gpg_name ABCD", "--define", "_gpg_path /g", "--define", "__gpg /usr/bin/gpg", "/a.rpm", "/b.rpm"]);
  const locked = rpmsignArgv({ files: ["/a.rpm"], keyId: "ABCD", gnupgHome: "/g", gpg: "gpg", passphraseFile: "/p" });
  expect(locked).toContain("_gpg_sign_cmd_extra_args --pinentry-mode loopback --passphrase-file /p");
});

test("fingerprints of primary keys only, from gpg --with-colons", () => {
  const colons = [
    "sec:u:3072:1:48AE961EE088737E:1700000000:::u:::scESC:::+:::23::0:",
    "fpr:::::::::0C3DF5B6E46691A9D969354748AE961EE088737E:",
    "grp:::::::::AAAA:",
    "uid:u::::1700000000::X::nvwa test key <test@invalid>::::::::::0:",
    "ssb:u:3072:1:1111222233334444:1700000000::::::e:::+:::23:",
    "fpr:::::::::99999999999999999999111122223333444455556:",
    "sec:u:255:22:5555666677778888:1700000000:::u:::scESC:::+:::ed25519:::0:",
    "fpr:::::::::FFFF0000FFFF0000FFFF00005555666677778888:",
  ].join("\n");
  expect(fingerprintsOf(colons)).toEqual(["0C3DF5B6E46691A9D969354748AE961EE088737E", "FFFF0000FFFF0000FFFF00005555666677778888"]);
  expect(fingerprintsOf("")).toEqual([]);
});

test("the guide's repo file: gpgcheck=1 and the key at the repo root", () => {
  expect(repoFileText()).toBe("[nvwa-local]\nname=nvwa local repository\nbaseurl=file:///mnt\nenabled=1\ngpgcheck=1\ngpgkey=file:///mnt/RPM-GPG-KEY-nvwa\n");
  expect(repoFileText("file:///srv/nvwa/", "x")).toContain("gpgkey=file:///srv/nvwa/RPM-GPG-KEY-nvwa\n");
});

test("ISO volume ids are short and upper case", () => {
  expect(isoVolumeId("0.1.0")).toBe("NVWA_0_1_0");
  expect(isoVolumeId("1.2.3~rc.1+build.very.long.suffix.here").length).toBeLessThanOrEqual(32);
});

test("checksig verdicts", () => {
  expect(checksigOk("/x/nvwa-0.1.0-1.x86_64.rpm: digests signatures OK")).toBe(true);
  expect(checksigOk("/x/nvwa.rpm: digests SIGNATURES NOT OK")).toBe(false);
  expect(checksigOk("/x/nvwa.rpm: digests OK")).toBe(false);
  expect(checksigOk("/x/nvwa.rpm: DIGESTS SIGNATURES NOT OK")).toBe(false);
});
