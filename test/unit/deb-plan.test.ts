/**
 * The pure half of the Debian packaging (build/deb-plan.ts): the payload read from
 * rpm/nvwa.spec, versions, the control file, the maintainer scripts (run for real by sh against
 * a stand-in systemctl), the Packages and Release texts. No root, no dpkg; the .debs and the apt
 * repository themselves are checked in test/host/deb.test.ts.
 */
import { expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  aptSignArgv,
  buildEpoch,
  conffilesText,
  controlText,
  debArchOf,
  debDependsOf,
  debFileName,
  debVersionOf,
  installedSizeKiB,
  maintainerScripts,
  md5sumsText,
  packagesStanza,
  parentDirsOf,
  parseSpec,
  payloadOf,
  poolPath,
  releaseDate,
  releaseText,
  sourcesText,
  unitsOf,
  validSigOf,
} from "../../build/deb-plan.ts";
import { ARCHES, archPlan, rpmVersionOf, specSources } from "../../build/rpm-plan.ts";
import { codeOf } from "../lib/error-code.ts";

const ROOT = join(import.meta.dir, "../..");
const SPEC_TEXT = readFileSync(join(ROOT, "rpm/nvwa.spec"), "utf8");
const SPEC = parseSpec(SPEC_TEXT);
const X64 = archPlan("x64");
const ARM = archPlan("arm64");


test("arches: x64 is amd64, arm64 is arm64", () => {
  expect(ARCHES.map((a) => debArchOf(a.bunArch))).toEqual(["amd64", "arm64"]);
});

test("semver becomes a Debian version that sorts pre-releases first; bad versions and revisions are refused", () => {
  expect(debVersionOf("0.1.0", "1")).toBe("0.1.0-1");
  expect(debVersionOf("1.2.0-rc.1", "2")).toBe("1.2.0~rc.1-2");
  expect(debVersionOf("1.2.0-beta-2", "1")).toBe("1.2.0~beta.2-1");
  expect(debVersionOf("1.2.0+git.abc", "1")).toBe("1.2.0+git.abc-1");
  expect(codeOf(() => debVersionOf("v1.0", "1"))).toBe("package.bad-version");
  expect(codeOf(() => debVersionOf("1.0_1", "1"))).toBe("package.bad-version");
  // rpm takes '_' in a Release; dpkg does not in a revision.
  expect(codeOf(() => debVersionOf("1.0.0", "1_oe"))).toBe("package.bad-release");
  expect(codeOf(() => debVersionOf("1.0.0", "1-2"))).toBe("package.bad-release");
  expect(debFileName("0.1.0-1", "arm64")).toBe("nvwa_0.1.0-1_arm64.deb");
  expect(poolPath("nvwa_0.1.0-1_amd64.deb")).toBe("pool/main/n/nvwa/nvwa_0.1.0-1_amd64.deb");
});

test("the spec's header, description and changelog author are read", () => {
  expect(SPEC.name).toBe("nvwa");
  expect(SPEC.summary).toBe("Kernel hot upgrade: checkpoint, kexec into a new kernel, restore");
  expect(SPEC.url).toBe("https://gitee.com/openeuler/nvwa");
  expect(SPEC.requires).toEqual(["criu"]);
  expect(SPEC.description[0]).toStartWith("nvwa moves a Linux machine");
  expect(SPEC.description.at(-1)).toBe("`nvwa update <kernel-version>`.");
  expect(SPEC.changelogAuthor).toBe("nvwa maintainers <nvwa-maintainers@invalid>");
  // The Sources are those package.ts stages for rpmbuild.
  expect(SPEC.sources.filter((s) => s !== undefined).sort()).toEqual(specSources().map((s) => s.name).sort());
});

/** Every path the spec's %files names, with its mode, as this test reads the spec on its own. */
function filesOfSpec(): Map<string, number> {
  const macros: Record<string, string> = { _bindir: "/usr/bin", _sysconfdir: "/etc", _datadir: "/usr/share", _localstatedir: "/var" };
  const body = SPEC_TEXT.slice(SPEC_TEXT.indexOf("\n%files\n"), SPEC_TEXT.indexOf("\n%changelog"));
  const out = new Map<string, number>();
  for (const m of body.matchAll(/%attr\((\d+),root,root\)\s+(\S+)$/gm)) {
    out.set((m[2] ?? "").replace(/%\{(\w+)\}/g, (_, n: string) => macros[n] ?? "?"), Number.parseInt(m[1] ?? "", 8));
  }
  return out;
}

test("the payload is the spec's %files with their modes; only the documentation moves", () => {
  const v = rpmVersionOf("0.1.0");
  const payload = payloadOf(SPEC, X64, v);
  expect(payload.map((e) => [e.path, e.type, e.mode.toString(8), e.conffile, e.source ?? "-"])).toEqual([
    ["/etc/nvwa", "dir", "755", false, "-"],
    ["/etc/nvwa/log", "dir", "700", false, "-"],
    ["/etc/nvwa/nvwa-restore.yaml", "file", "640", true, "nvwa-restore.yaml"],
    ["/etc/nvwa/nvwa-server.yaml", "file", "640", true, "nvwa-server.yaml"],
    ["/usr/bin/nvwa", "file", "755", false, "nvwa-linux-x64"],
    ["/usr/lib/systemd/system/nvwa.service", "file", "644", false, "nvwa.service"],
    ["/usr/share/bash-completion/completions/nvwa", "file", "644", false, "nvwa.bash-completion"],
    ["/usr/share/doc/nvwa", "dir", "755", false, "-"],
    ["/usr/share/doc/nvwa/README.md", "file", "644", false, "README.md"],
    ["/usr/share/doc/nvwa/copyright", "file", "644", false, "LICENSE"],
    ["/var/nvwa", "dir", "755", false, "-"],
    ["/var/nvwa/running", "dir", "700", false, "-"],
  ]);
  // Against the spec read independently: every %attr line is in the payload with its mode.
  const spec = filesOfSpec();
  expect(spec.size).toBe(9);
  for (const [path, mode] of spec) expect({ path, mode: payload.find((e) => e.path === path)?.mode }).toEqual({ path, mode });
  // What the RPM calls the moved entries.
  expect(payload.find((e) => e.path === "/usr/share/doc/nvwa/copyright")?.rpmPaths).toEqual(["/usr/share/licenses/nvwa-0.1.0/LICENSE"]);
  expect(payload.find((e) => e.path === "/usr/share/doc/nvwa")?.rpmPaths).toEqual(["/usr/share/doc/nvwa-0.1.0", "/usr/share/licenses/nvwa-0.1.0"]);
  // The arm64 payload differs only in the executable's source (the spec's %ifarch).
  const arm = payloadOf(SPEC, ARM, v);
  expect(arm.find((e) => e.path === "/usr/bin/nvwa")?.source).toBe("nvwa-linux-arm64");
  expect(arm.filter((e) => e.path !== "/usr/bin/nvwa")).toEqual(payload.filter((e) => e.path !== "/usr/bin/nvwa"));
  expect(parentDirsOf(payload)).toEqual([
    "/etc", "/usr", "/usr/bin", "/usr/lib", "/usr/lib/systemd", "/usr/lib/systemd/system", "/usr/share", "/usr/share/bash-completion",
    "/usr/share/bash-completion/completions", "/usr/share/doc", "/var",
  ]);
  expect(unitsOf(payload)).toEqual(["nvwa.service"]);
  expect(conffilesText(payload)).toBe("/etc/nvwa/nvwa-restore.yaml\n/etc/nvwa/nvwa-server.yaml\n");
});

test("a spec the reader does not understand is refused, not guessed", () => {
  const without = (re: RegExp, by = ""): string => SPEC_TEXT.replace(re, by);
  // A %files line without %attr: the mode would depend on the build host.
  expect(codeOf(() => parseSpec(without(/%attr\(0644,root,root\) \/usr\/lib\/systemd/, "/usr/lib/systemd")))).toBe("package.spec-unsupported");
  // An unknown macro.
  expect(codeOf(() => parseSpec(without(/%\{_bindir\}\/nvwa$/m, "%{_libexecdir}/nvwa")))).toBe("package.spec-unsupported");
  // A file no %install line puts there.
  expect(codeOf(() => payloadOf(parseSpec(without(/^install -D -p -m 0644 %\{SOURCE5\}.*$/m)), X64, "0.1.0"))).toBe("package.spec-unsupported");
  // The executable of no arch (%ifarch for the other one only).
  expect(codeOf(() => payloadOf(parseSpec(without(/%ifarch x86_64\n.*\n%endif\n/)), X64, "0.1.0"))).toBe("package.spec-unsupported");
  expect(codeOf(() => payloadOf(parseSpec(without(/%attr\(0755,root,root\) %\{_bindir\}/, "%attr(0755,root,nvwa) %{_bindir}")), X64, "0.1.0"))).toBe(
    "package.spec-unsupported",
  );
});

test("control: fields from the spec, Depends from Requires", () => {
  const text = controlText({ spec: SPEC, version: "0.1.0-1", arch: "amd64", installedSizeKiB: 96593, maintainer: "Ops <ops@example.com>" });
  const lines = text.split("\n");
  expect(lines.slice(0, 10)).toEqual([
    "Package: nvwa",
    "Version: 0.1.0-1",
    "Architecture: amd64",
    "Maintainer: Ops <ops@example.com>",
    "Installed-Size: 96593",
    "Depends: criu",
    "Section: admin",
    "Priority: optional",
    "Homepage: https://gitee.com/openeuler/nvwa",
    "Description: Kernel hot upgrade: checkpoint, kexec into a new kernel, restore",
  ]);
  // The long description: every line indented, ends with one newline.
  expect(lines.slice(10, -1).every((l) => l.startsWith(" "))).toBe(true);
  expect(text.endsWith(".\n")).toBe(true);
  expect(controlText({ spec: { ...SPEC, description: ["a", "", "b"] }, version: "1-1", arch: "arm64", installedSizeKiB: 1, maintainer: "m" })).toEndWith(
    "Description: Kernel hot upgrade: checkpoint, kexec into a new kernel, restore\n a\n .\n b\n",
  );
  expect(debDependsOf(["criu >= 3.15", "kexec-tools", "x < 2"])).toBe("criu (>= 3.15), kexec-tools, x (<< 2)");
  expect(codeOf(() => debDependsOf(["criu or else"]))).toBe("package.spec-unsupported");
});

test("Installed-Size and md5sums as dpkg writes them", () => {
  expect(installedSizeKiB([{ type: "file", bytes: 1 }, { type: "file", bytes: 1024 }, { type: "file", bytes: 1025 }, { type: "dir", bytes: 0 }])).toBe(5);
  expect(md5sumsText([{ path: "/usr/bin/nvwa", md5: "d41d8cd98f00b204e9800998ecf8427e" }])).toBe("d41d8cd98f00b204e9800998ecf8427e  usr/bin/nvwa\n");
});

/**
 * Runs one maintainer script with sh, /usr/bin/systemctl and /run/systemd/system replaced
 * inside the script by paths of a scratch directory (the scripts name them absolutely).
 */
function runScript(script: string, args: string[], opts: { systemd: boolean; systemctl: boolean }): { code: number; calls: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-deb-script-"));
  try {
    const calls = join(dir, "calls");
    writeFileSync(calls, "");
    if (opts.systemctl) {
      mkdirSync(join(dir, "bin"));
      writeFileSync(join(dir, "bin/systemctl"), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${calls}'\n`);
      chmodSync(join(dir, "bin/systemctl"), 0o755);
    }
    if (opts.systemd) mkdirSync(join(dir, "run/systemd/system"), { recursive: true });
    const text = script.replaceAll("/usr/bin/systemctl", join(dir, "bin/systemctl")).replaceAll("/run/systemd/system", join(dir, "run/systemd/system"));
    const p = Bun.spawnSync(["sh", "-c", text, "script", ...args], { env: { PATH: `${join(dir, "bin")}:/usr/bin:/bin` }, stdout: "pipe", stderr: "pipe" });
    return { code: p.exitCode ?? -1, calls: readFileSync(calls, "utf8").split("\n").filter((l) => l !== "") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("maintainer scripts: preset on first install only, reload when systemd runs, never start or restart", () => {
  const s = maintainerScripts(["nvwa.service"]);
  const up = { systemd: true, systemctl: true };
  const offline = { systemd: false, systemctl: true };
  // Install (no version configured before).
  expect(runScript(s.postinst, ["configure", ""], up)).toEqual({ code: 0, calls: ["--no-reload preset nvwa.service", "daemon-reload"] });
  expect(runScript(s.postinst, ["configure", ""], offline)).toEqual({ code: 0, calls: ["--no-reload preset nvwa.service"] });
  // Upgrade, or reinstall with the configuration kept: the enablement is left as it is.
  expect(runScript(s.postinst, ["configure", "0.1.0-1"], up)).toEqual({ code: 0, calls: ["daemon-reload"] });
  expect(runScript(s.postinst, ["configure", "0.1.0-1"], offline)).toEqual({ code: 0, calls: [] });
  expect(runScript(s.postinst, ["abort-upgrade", "0.1.0-2"], up)).toEqual({ code: 0, calls: ["daemon-reload"] });
  // The old package's prerm on upgrade: nothing, nvwa keeps running.
  expect(runScript(s.prerm, ["upgrade", "0.1.0-2"], up)).toEqual({ code: 0, calls: [] });
  expect(runScript(s.postrm, ["upgrade", "0.1.0-2"], up)).toEqual({ code: 0, calls: [] });
  // Removal: stop; the unit file is gone, so reload.
  expect(runScript(s.prerm, ["remove"], up)).toEqual({ code: 0, calls: ["stop nvwa.service"] });
  expect(runScript(s.prerm, ["remove"], offline)).toEqual({ code: 0, calls: [] });
  expect(runScript(s.postrm, ["remove"], up)).toEqual({ code: 0, calls: ["daemon-reload"] });
  expect(runScript(s.postrm, ["remove"], offline)).toEqual({ code: 0, calls: [] });
  // Purge: the enablement goes too.
  expect(runScript(s.postrm, ["purge"], up)).toEqual({ code: 0, calls: ["--no-reload disable nvwa.service", "daemon-reload"] });
  expect(runScript(s.postrm, ["purge"], offline)).toEqual({ code: 0, calls: ["--no-reload disable nvwa.service"] });
  // No systemctl at all (a container, an image without systemd): nothing fails.
  for (const [script, args] of [[s.postinst, ["configure", ""]], [s.prerm, ["remove"]], [s.postrm, ["purge"]]] as const) {
    expect(runScript(script, [...args], { systemd: true, systemctl: false })).toEqual({ code: 0, calls: [] });
  }
  for (const text of Object.values(s)) {
    expect(text).toStartWith("#!/bin/sh\n");
    expect(text).not.toMatch(/systemctl[^\n]*\b(start|restart|try-restart|reload-or-restart)\b/);
  }
});

test("a failing systemctl never fails the package operation", () => {
  const s = maintainerScripts(["nvwa.service"]);
  const dir = mkdtempSync(join(tmpdir(), "nvwa-deb-script-"));
  try {
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, "bin/systemctl"), "#!/bin/sh\nexit 1\n");
    chmodSync(join(dir, "bin/systemctl"), 0o755);
    mkdirSync(join(dir, "run/systemd/system"), { recursive: true });
    for (const [script, args] of [[s.postinst, ["configure", ""]], [s.prerm, ["remove"]], [s.postrm, ["purge"]]] as const) {
      const text = script.replaceAll("/usr/bin/systemctl", join(dir, "bin/systemctl")).replaceAll("/run/systemd/system", join(dir, "run/systemd/system"));
      const p = Bun.spawnSync(["sh", "-c", text, "script", ...args], { env: { PATH: `${join(dir, "bin")}:/usr/bin:/bin` } });
      expect({ args, code: p.exitCode }).toEqual({ args: [...args], code: 0 });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("Packages stanza: the control fields, then where the file is and its digests, before Description", () => {
  const control = "Package: nvwa\nVersion: 0.1.0-1\nArchitecture: amd64\nDescription: x\n long\n";
  expect(packagesStanza(control, { filename: "pool/main/n/nvwa/a.deb", size: 12, md5: "m", sha256: "s" })).toBe(
    "Package: nvwa\nVersion: 0.1.0-1\nArchitecture: amd64\nFilename: pool/main/n/nvwa/a.deb\nSize: 12\nMD5sum: m\nSHA256: s\nDescription: x\n long\n",
  );
});

test("Release: suite, date in UTC, architectures, and both digest sections over every index", () => {
  const date = new Date(Date.UTC(2026, 11, 1, 8, 5, 9));
  expect(releaseDate(date)).toBe("Tue, 01 Dec 2026 08:05:09 UTC");
  const text = releaseText({
    date,
    architectures: ["arm64", "amd64"],
    indexes: [
      { path: "main/binary-amd64/Packages", size: 827, md5: "a".repeat(32), sha256: "b".repeat(64) },
      { path: "main/binary-amd64/Packages.gz", size: 54, md5: "c".repeat(32), sha256: "d".repeat(64) },
    ],
  });
  expect(text).toBe(
    [
      "Origin: nvwa",
      "Label: nvwa",
      "Suite: stable",
      "Codename: stable",
      "Date: Tue, 01 Dec 2026 08:05:09 UTC",
      "Architectures: amd64 arm64",
      "Components: main",
      "Description: nvwa, kernel hot upgrade",
      "MD5Sum:",
      ` ${"a".repeat(32)} 827 main/binary-amd64/Packages`,
      ` ${"c".repeat(32)}  54 main/binary-amd64/Packages.gz`,
      "SHA256:",
      ` ${"b".repeat(64)} 827 main/binary-amd64/Packages`,
      ` ${"d".repeat(64)}  54 main/binary-amd64/Packages.gz`,
      "",
    ].join("\n"),
  );
});

test("the guide's nvwa.sources trusts only the nvwa key", () => {
  expect(sourcesText()).toBe("Types: deb\nURIs: file:///mnt\nSuites: stable\nComponents: main\nSigned-By: /etc/apt/keyrings/nvwa-archive-keyring.asc\n");
  expect(sourcesText("file:///srv/apt/", "/srv/apt/k.asc")).toContain("URIs: file:///srv/apt\n");
});

test("signing argv: SHA-512, armored, the key's home and passphrase file only when it has one", () => {
  const key = { fingerprint: "ABCD", gnupgHome: "/g", passphraseFile: undefined };
  expect(aptSignArgv(key, "clearsign", "/r/Release", "/r/InRelease")).toEqual([
    "gpg", "--homedir", "/g", "--batch", "--yes", "--local-user", "ABCD", "--digest-algo", "SHA512", "--armor", "--clearsign", "--output", "/r/InRelease", "/r/Release",
  ]);
  const locked = aptSignArgv({ ...key, passphraseFile: "/p" }, "detach", "/r/Release", "/r/Release.gpg");
  expect(locked).toContain("--detach-sign");
  expect(locked.join(" ")).toContain("--pinentry-mode loopback --passphrase-file /p");
});

test("gpg --status-fd verdicts: a good signature's fingerprint, nothing for a bad one", () => {
  const good = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG D70F51F5C50A33B9 nvwa\n[GNUPG:] VALIDSIG 568AA6029DF1E03069D4576ED70F51F5C50A33B9 2026-12-06 1 0 4 0 1 10 00 568AA6029DF1E03069D4576ED70F51F5C50A33B9\n";
  expect(validSigOf(good)).toBe("568AA6029DF1E03069D4576ED70F51F5C50A33B9");
  expect(validSigOf("[GNUPG:] BADSIG D70F51F5C50A33B9 nvwa\n")).toBeUndefined();
  expect(validSigOf("[GNUPG:] ERRSIG D70F51F5C50A33B9 1 10 00 1 9\n[GNUPG:] NO_PUBKEY D70F51F5C50A33B9\n")).toBeUndefined();
});

test("build epoch: SOURCE_DATE_EPOCH, else the newest input", () => {
  expect(buildEpoch({ SOURCE_DATE_EPOCH: "1700000000" }, [5_000_000_000_000])).toBe(1700000000);
  expect(buildEpoch({}, [1_700_000_000_999, 1_600_000_000_000])).toBe(1_700_000_000);
  expect(buildEpoch({ SOURCE_DATE_EPOCH: "" }, [])).toBe(0);
  expect(codeOf(() => buildEpoch({ SOURCE_DATE_EPOCH: "yesterday" }, []))).toBe("package.bad-epoch");
});
