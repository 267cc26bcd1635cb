/**
 * The .debs, the apt repository and the tarballs as users get them: `packageAll` builds all of
 * it with the RPMs, and each is checked against the RPM of the same build (files, modes, owners,
 * conffiles), then the apt repo is read by the real apt of this machine and nvwa installed from
 * it with `apt-get install nvwa` into scratch roots, upgraded, removed and purged.
 *
 * apt never sees this machine's configuration and never touches it: every apt call runs with
 * APT_CONFIG naming a file of the test's own that points Dir::Etc (no apt.conf.d, no
 * sources.list, no trusted keys), Dir::State, Dir::Cache and Dir::Log into the test's directory,
 * and dpkg gets --root, --admindir and --log inside the scratch root.
 *
 * An empty root has no /bin/sh and no criu, so, as in rpm.test.ts, a TEST-ONLY repo (never
 * shipped) holds nvwa-test-base (this host's dash as /bin/sh, its loader and libc, the standard
 * directories) and a criu that only says it is not criu; it is signed with a second key, which
 * also signs the release-2 repo built through NVWA_GPG_KEY_ID. systemd is not PID 1 here: the
 * roots get a stand-in /usr/bin/systemctl that records its arguments, and /run/systemd/system
 * where a test plays "systemd is running".
 *
 * Tests build on the state the previous ones left (root A is installed, upgraded, removed,
 * purged), in file order.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS } from "../../src/config/types.ts";
import { packageAll, type PackageResult } from "../../build/package.ts";
import { buildAptRepo, writeAptRepo, type AptRepoResult } from "../../build/apt-repo.ts";
import { APT_KEY_FILE, APT_SOURCES_FILE, maintainerScripts, sourcesText } from "../../build/deb-plan.ts";
import { KEY_FILE, fingerprintsOf } from "../../build/rpm-plan.ts";
import type { SigningKey } from "../../build/rpm-gpg.ts";
import { snapshot as treeSnapshot } from "../lib/tree-snapshot.ts";
import { ok, run, sha256, versionInRoot, type Result } from "../lib/commands.ts";

const ROOT = join(import.meta.dir, "../..");
const BUN = process.execPath;
const VERSION = ((await Bun.file(join(ROOT, "package.json")).json()) as { version: string }).version;
const DEB_VERSION = `${VERSION}-1`;
const DEBS = { amd64: `nvwa_${DEB_VERSION}_amd64.deb`, arm64: `nvwa_${DEB_VERSION}_arm64.deb` } as const;
const RPMS = { amd64: `nvwa-${VERSION}-1.x86_64.rpm`, arm64: `nvwa-${VERSION}-1.aarch64.rpm` } as const;
const BINARY = { amd64: "nvwa-linux-x64", arm64: "nvwa-linux-arm64" } as const;
const TARBALLS = { amd64: `nvwa-${VERSION}-linux-x64.tar.gz`, arm64: `nvwa-${VERSION}-linux-arm64.tar.gz` } as const;
type Arch = keyof typeof DEBS;
const ARCHS: Arch[] = ["amd64", "arm64"];

/** Where the RPM puts what the .deb puts in /usr/share/doc/nvwa (Debian policy vs rpm's %doc/%license). */
const DOC_AS_RPM: Record<string, string[]> = {
  "/usr/share/doc/nvwa": [`/usr/share/doc/nvwa-${VERSION}`, `/usr/share/licenses/nvwa-${VERSION}`],
  "/usr/share/doc/nvwa/README.md": [`/usr/share/doc/nvwa-${VERSION}/README.md`],
  "/usr/share/doc/nvwa/copyright": [`/usr/share/licenses/nvwa-${VERSION}/LICENSE`],
};


let work: string;
let pkg: PackageResult;
let apt1: string; // packageAll's apt repo: throw-away key, both arches, revision 1
let next: AptRepoResult; // buildAptRepo: the test key through NVWA_GPG_KEY_ID, amd64, revision 2, a changed default config
let baseRepo: string; // the test-only packages
let testKey: { home: string; fpr: string; passFile: string; keyFile: string };
const SLOW = 120_000;




/** `perms owner` per path, from `dpkg-deb -c` or `tar -tvzf` ("./usr/" and "usr/" are both "/usr"). */
function tarListing(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n").filter((l) => l !== "")) {
    const [perms, owner, , , , ...name] = line.split(/\s+/);
    const path = `/${name.join(" ").replace(/^\.?\//, "").replace(/\/$/, "")}`;
    if (path === "/") continue;
    out.set(path.replace(/\/$/, ""), `${perms} ${(owner ?? "").replace("/", ":")}`);
  }
  return out;
}

function rpmListing(rpm: string): Map<string, string> {
  const text = ok(["rpm", "-qp", "--nosignature", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]", rpm]);
  return new Map(text.split("\n").filter((l) => / \//.test(l)).map((l) => {
    const [perms, owner, path] = l.split(" ");
    return [path ?? "", `${perms} ${owner}`] as const;
  }));
}

/**
 * The listing as the RPM names things: the documentation mapped, and the directories the RPM
 * does not own (/usr, /usr/bin, ...) set aside as `parents`.
 */
function asRpm(listing: Map<string, string>, rpm: Map<string, string>): { owned: Map<string, string>; parents: Map<string, string> } {
  const owned = new Map<string, string>();
  const parents = new Map<string, string>();
  for (const [path, attrs] of listing) {
    const names = DOC_AS_RPM[path] ?? [path];
    if (names.every((n) => rpm.has(n))) for (const n of names) owned.set(n, attrs);
    else parents.set(path, attrs);
  }
  return { owned, parents };
}

// --- apt, isolated ---------------------------------------------------------------------------------

interface AptSetup {
  /** The APT_CONFIG file. */
  conf: string;
  sources: string;
}

/**
 * An apt of the test's own: its apt.conf, sources, lists, cache and logs under work/<name>.apt;
 * with `root`, dpkg installs there (its own admindir and log).
 */
function aptSetup(name: string, sources: string, opts: { root?: string; arches?: string[] } = {}): AptSetup {
  const d = join(work, `${name}.apt`);
  rmSync(d, { recursive: true, force: true });
  for (const sub of ["parts", "empty", "state/lists/partial", "cache/archives/partial", "log"]) mkdirSync(join(d, sub), { recursive: true });
  const status = opts.root === undefined ? join(d, "status") : join(opts.root, "var/lib/dpkg/status");
  if (opts.root === undefined) writeFileSync(status, "");
  const sourcesFile = join(d, "test.sources");
  writeFileSync(sourcesFile, sources);
  const conf = join(d, "apt.conf");
  const q = (s: string): string => JSON.stringify(s);
  writeFileSync(conf, [
    `Dir::Etc::main "/dev/null";`,
    `Dir::Etc::parts ${q(join(d, "parts"))};`,
    `Dir::Etc::sourcelist ${q(sourcesFile)};`,
    `Dir::Etc::sourceparts ${q(join(d, "empty"))};`,
    `Dir::Etc::preferences "/dev/null";`,
    `Dir::Etc::preferencesparts ${q(join(d, "empty"))};`,
    // No key of this machine is trusted: only Signed-By.
    `Dir::Etc::trusted "/dev/null";`,
    `Dir::Etc::trustedparts ${q(join(d, "empty"))};`,
    `Dir::State ${q(join(d, "state"))};`,
    `Dir::State::status ${q(status)};`,
    `Dir::Cache ${q(join(d, "cache"))};`,
    `Dir::Log ${q(join(d, "log"))};`,
    // The test's directories are root-only; apt's _apt user could not read them.
    `APT::Sandbox::User "root";`,
    `APT::Architectures { ${(opts.arches ?? ["amd64"]).map((a) => `${q(a)};`).join(" ")} };`,
    ...(opts.root === undefined
      ? []
      : [`DPkg::Options { ${q(`--root=${opts.root}`)}; ${q(`--admindir=${join(opts.root, "var/lib/dpkg")}`)}; ${q(`--log=${join(opts.root, "var/log/dpkg.log")}`)}; };`]),
    "",
  ].join("\n"));
  return { conf, sources: sourcesFile };
}

function apt(s: AptSetup, argv: string[]): Result {
  return run(argv, { APT_CONFIG: s.conf, DEBIAN_FRONTEND: "noninteractive" });
}

/** A deb822 source for a repo at `dir` trusting only `keyFile`: the shipped nvwa.sources, re-pointed. */
function sourceFor(dir: string, keyFile: string): string {
  return sourcesText(`file://${dir}`, keyFile);
}

function candidate(s: AptSetup, pkgName: string): string {
  const m = /Candidate: (\S+)/.exec(apt(s, ["apt-cache", "policy", pkgName]).out);
  return m?.[1] ?? "(unknown)";
}

// --- scratch roots ------------------------------------------------------------------------------

interface TestRoot {
  root: string;
  apt: AptSetup;
}

/** What the stand-in systemctl was asked since the last call (and forget it). */
function systemctlCalls(root: string): string[] {
  const f = join(root, "systemctl.calls");
  const calls = readFileSync(f, "utf8").split("\n").filter((l) => l !== "");
  writeFileSync(f, "");
  return calls;
}

/** dpkg and apt must succeed and say nothing alarming (dpkg's conffile notes aside). */
function expectClean(r: Result, what: string, allowed: RegExp[] = []): void {
  const said = r.out.split("\n").filter((l) => /^(E|W):|error|warning|fail/i.test(l) && !allowed.some((a) => a.test(l)));
  expect({ what, code: r.code, said, out: r.code === 0 ? "" : r.out }).toEqual({ what, code: 0, said: [], out: "" });
}

function makeRoot(name: string, systemdRunning: boolean): TestRoot {
  const root = join(work, name);
  for (const d of ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "var/lib/dpkg/status"), "");
  const sources = `${sourceFor(apt1, join(apt1, APT_KEY_FILE))}\n${sourceFor(baseRepo, testKey.keyFile)}`;
  const a = aptSetup(name, sources, { root });
  expectClean(apt(a, ["apt-get", "update"]), `${name}: apt-get update`);
  expectClean(apt(a, ["apt-get", "install", "-y", "nvwa-test-base"]), `${name}: the test base`);
  writeFileSync(join(root, "usr/bin/systemctl"), '#!/bin/sh\nprintf \'%s\\n\' "$*" >> /systemctl.calls\n', { mode: 0o755 });
  writeFileSync(join(root, "systemctl.calls"), "");
  if (systemdRunning) mkdirSync(join(root, "run/systemd/system"), { recursive: true });
  return { root, apt: a };
}

function installedVersion(r: TestRoot, name: string): string {
  const p = run(["dpkg-query", `--admindir=${join(r.root, "var/lib/dpkg")}`, "-W", "-f=${Status} ${Version}", name]);
  return p.code === 0 ? p.out.trim() : "not-installed";
}

/** Every path under root with its type, mode and owner, minus the package managers' own state. */
const snapshot = (root: string): Map<string, string> => treeSnapshot(root, new Set(["var/lib/dpkg", "var/log", "var/cache", "tmp", "proc", "dev", "systemctl.calls"]));

function changedPaths(before: Map<string, string>, after: Map<string, string>): { added: string[]; removed: string[] } {
  return {
    added: [...after.keys()].filter((k) => before.get(k) !== after.get(k)).sort(),
    removed: [...before.keys()].filter((k) => !after.has(k)).sort(),
  };
}

// --- fixtures ----------------------------------------------------------------------------------

async function genKey(dir: string, uid: string, passFile?: string): Promise<string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pass = passFile === undefined ? ["--passphrase", ""] : ["--pinentry-mode", "loopback", "--passphrase-file", passFile];
  ok(["gpg", "--homedir", dir, "--batch", ...pass, "--quick-gen-key", uid, "rsa3072", "sign", "never"]);
  const [fpr] = fingerprintsOf(ok(["gpg", "--homedir", dir, "--batch", "--with-colons", "--list-secret-keys"]));
  if (fpr === undefined) throw new Error(`no key in ${dir}`);
  return fpr;
}

function buildDebFrom(tree: string, control: string, out: string): string {
  mkdirSync(join(tree, "DEBIAN"), { recursive: true });
  writeFileSync(join(tree, "DEBIAN/control"), control);
  ok(["dpkg-deb", "--root-owner-group", "--build", tree, out]);
  return out;
}

/** The TEST-ONLY packages (see the header), in a repo signed with the test key. */
async function buildBaseRepo(): Promise<void> {
  const b = join(work, "base-build");
  const base = join(b, "base");
  const dirs = [
    "etc", "run", "var", "var/lib", "usr", "usr/bin", "usr/sbin", "usr/lib", "usr/lib/systemd", "usr/lib/systemd/system", "usr/share",
    "usr/share/doc", "usr/share/bash-completion", "usr/share/bash-completion/completions", "lib64", "lib/x86_64-linux-gnu", "bin", "proc", "dev",
  ];
  for (const d of dirs) mkdirSync(join(base, d), { recursive: true });
  copyFileSync("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", join(base, "lib64/ld-linux-x86-64.so.2"));
  for (const l of ["libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0"]) copyFileSync(`/lib/x86_64-linux-gnu/${l}`, join(base, "lib/x86_64-linux-gnu", l));
  copyFileSync("/usr/bin/dash", join(base, "bin/sh"));
  chmodSync(join(base, "bin/sh"), 0o755);
  const control = (name: string, version: string, what: string): string =>
    `Package: ${name}\nVersion: ${version}\nArchitecture: amd64\nMaintainer: nvwa tests <nvwa-test@invalid>\nDescription: TEST ONLY: ${what}\n Test fixture for nvwa's apt install test. Never shipped.\n`;
  const baseDeb = buildDebFrom(base, control("nvwa-test-base", "1", "this host's dash, loader and libc, and the standard directories"), join(b, "nvwa-test-base_1_amd64.deb"));
  const criu = join(b, "criu");
  mkdirSync(join(criu, "usr/sbin"), { recursive: true });
  writeFileSync(join(criu, "usr/sbin/criu"), '#!/bin/sh\necho "criu stub: this is not criu" >&2\nexit 1\n', { mode: 0o755 });
  const criuDeb = buildDebFrom(criu, control("criu", "0.test", "provides criu without being criu"), join(b, "criu_0.test_amd64.deb"));

  const key: SigningKey = { fingerprint: testKey.fpr, gnupgHome: testKey.home, passphraseFile: testKey.passFile, throwaway: false, dispose: async () => undefined };
  const publicKey = ok(["gpg", "--homedir", testKey.home, "--armor", "--export", testKey.fpr]);
  await writeAptRepo({ dir: baseRepo, debs: [{ arch: "amd64", path: baseDeb }, { arch: "amd64", path: criuDeb }], key, publicKey, date: new Date() });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "nvwa-deb-"));
  apt1 = join(work, "apt");
  baseRepo = join(work, "base-repo");
  if (!existsSync(join(ROOT, "dist/nvwa-linux-x64")) || !existsSync(join(ROOT, "dist/nvwa-linux-arm64"))) ok([BUN, "run", "build"], {}, ROOT);

  const passFile = join(work, "passphrase");
  writeFileSync(passFile, "correct horse battery staple", { mode: 0o600 });
  testKey = { home: join(work, "gnupg-test"), fpr: "", passFile, keyFile: join(baseRepo, APT_KEY_FILE) };
  testKey.fpr = await genKey(testKey.home, "nvwa apt test key <nvwa-test@invalid>", passFile);
  await buildBaseRepo();

  // 1. What users get: everything, both arches, one throw-away key.
  const started = performance.now();
  pkg = await packageAll({ out: join(work, "repo"), aptOut: apt1, tarballOut: join(work, "tarballs"), env: { NVWA_GPG_KEY_ID: "" } });
  console.log(`measured: packageAll (RPMs, .debs, tarballs, 2 arches) took ${((performance.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(pkg.seconds)}`);

  // 2. The next revision, amd64 only, signed with the distributor's key, a changed default config.
  const rpmDir = join(work, "rpm-r2");
  cpSync(join(ROOT, "rpm"), rpmDir, { recursive: true });
  writeFileSync(join(rpmDir, "nvwa-restore.yaml"), `${readFileSync(join(ROOT, "rpm/nvwa-restore.yaml"), "utf8")}\n# (changed in revision 2)\n`);
  next = await buildAptRepo({
    rpmDir,
    out: join(work, "apt2"),
    release: "2",
    arches: ["x64"],
    env: { NVWA_GPG_KEY_ID: testKey.fpr, GNUPGHOME: testKey.home, NVWA_GPG_PASSPHRASE_FILE: passFile },
  });
}, 600_000);

afterAll(() => {
  for (const d of readdirSync(work)) if (d.startsWith("gnupg")) run(["gpgconf", "--homedir", join(work, d), "--kill", "all"]);
  rmSync(work, { recursive: true, force: true });
});

// --- the artifacts -------------------------------------------------------------------------------

test("packageAll: the apt repo in the dists/ layout, both .debs in the pool, signed by the RPMs' key", () => {
  expect(pkg.apt?.out).toBe(apt1);
  expect(readdirSync(apt1).sort()).toEqual(["dists", "nvwa-archive-keyring.asc", "nvwa.sources", "pool"]);
  expect(readdirSync(join(apt1, "pool/main/n/nvwa")).sort()).toEqual([DEBS.amd64, DEBS.arm64]);
  expect(readdirSync(join(apt1, "dists/stable")).sort()).toEqual(["InRelease", "Release", "Release.gpg", "main"]);
  for (const a of ARCHS) expect(readdirSync(join(apt1, "dists/stable/main", `binary-${a}`)).sort()).toEqual(["Packages", "Packages.gz"]);
  expect(readFileSync(join(apt1, APT_SOURCES_FILE), "utf8")).toBe(sourcesText());
  expect(pkg.apt?.debs.map((d) => [d.arch, d.path])).toEqual(ARCHS.map((a) => [a, join(apt1, "pool/main/n/nvwa", DEBS[a])]));

  // Release names every index with its real size and digests.
  const release = readFileSync(join(apt1, "dists/stable/Release"), "utf8");
  expect(release).toContain("Architectures: amd64 arm64\n");
  expect(Math.abs(Date.parse((/^Date: (.*)$/m.exec(release)?.[1] ?? "").replace(/ UTC$/, " GMT")) - Date.now())).toBeLessThan(3_600_000);
  for (const a of ARCHS) {
    for (const f of ["Packages", "Packages.gz"]) {
      const p = join(apt1, "dists/stable/main", `binary-${a}`, f);
      expect(release).toContain(` ${sha256(p)} ${lstatSync(p).size} main/binary-${a}/${f}\n`);
    }
    // Packages: the .deb's size and SHA-256 where it really is.
    const deb = join(apt1, "pool/main/n/nvwa", DEBS[a]);
    const packages = readFileSync(join(apt1, "dists/stable/main", `binary-${a}`, "Packages"), "utf8");
    expect(packages).toContain(`Filename: pool/main/n/nvwa/${DEBS[a]}\nSize: ${lstatSync(deb).size}\n`);
    expect(packages).toContain(`SHA256: ${sha256(deb)}\n`);
    expect(new TextDecoder().decode(Bun.gunzipSync(readFileSync(join(apt1, "dists/stable/main", `binary-${a}`, "Packages.gz"))))).toBe(packages);
  }

  // InRelease and Release.gpg verify with the shipped key alone, and it is the RPMs' key.
  const g = join(work, "gnupg-verify");
  mkdirSync(g, { mode: 0o700 });
  ok(["gpg", "--homedir", g, "--batch", "--import", join(apt1, APT_KEY_FILE)]);
  const good = (args: string[]): string | undefined => /VALIDSIG ([0-9A-F]+)/.exec(run(["gpg", "--homedir", g, "--batch", "--status-fd", "1", "--verify", ...args]).out)?.[1];
  expect(good([join(apt1, "dists/stable/InRelease")])).toBe(pkg.keyFingerprint);
  expect(good([join(apt1, "dists/stable/Release.gpg"), join(apt1, "dists/stable/Release")])).toBe(pkg.keyFingerprint);
  const keyOf = (file: string): string[] => fingerprintsOf(ok(["gpg", "--batch", "--with-colons", "--show-keys", file]));
  expect(keyOf(join(apt1, APT_KEY_FILE))).toEqual([pkg.keyFingerprint]);
  expect(keyOf(join(work, "repo", KEY_FILE))).toEqual([pkg.keyFingerprint]);
  // InRelease is Release, clear-signed.
  expect(readFileSync(join(apt1, "dists/stable/InRelease"), "utf8")).toContain(release.trimEnd());
}, SLOW);

test("each .deb: Package, Version, Architecture, Depends: criu, conffiles, the maintainer scripts; the executable byte for byte", () => {
  for (const a of ARCHS) {
    const deb = join(apt1, "pool/main/n/nvwa", DEBS[a]);
    const field = (f: string): string => ok(["dpkg-deb", "--field", deb, f]).trim();
    expect({ a, Package: field("Package"), Version: field("Version"), Architecture: field("Architecture"), Depends: field("Depends") }).toEqual({
      a, Package: "nvwa", Version: DEB_VERSION, Architecture: a, Depends: "criu",
    });
    expect(field("Maintainer")).toBe("nvwa maintainers <nvwa-maintainers@invalid>");
    // The RPM's requirements, apart from what rpm generates (rpmlib(...), /bin/sh, sonames).
    const rpm = join(work, "repo/Packages", RPMS[a]);
    const rpmRequires = ok(["rpm", "-qpR", "--nosignature", rpm]).split("\n").map((l) => l.trim()).filter((l) => /^[a-z][\w.+-]*$/.test(l));
    expect(rpmRequires).toEqual(["criu"]);
    // conffiles are exactly the RPM's %config files.
    const rpmConfig = ok(["rpm", "-qp", "--nosignature", "--configfiles", rpm]).split("\n").filter((l) => l.startsWith("/")).sort();
    expect(ok(["dpkg-deb", "--info", deb, "conffiles"]).split("\n").filter((l) => l !== "").sort()).toEqual(rpmConfig);
    expect(rpmConfig).toEqual(["/etc/nvwa/nvwa-restore.yaml", "/etc/nvwa/nvwa-server.yaml"]);
    const scripts = maintainerScripts(["nvwa.service"]);
    for (const s of ["postinst", "prerm", "postrm"] as const) expect(ok(["dpkg-deb", "--info", deb, s])).toBe(scripts[s]);
    expect(run(["dpkg-deb", "--info", deb, "preinst"]).code).not.toBe(0);
    // Unpacked: the executable is the one build/compile.ts made, and md5sums covers it.
    const x = join(work, `x-${a}`);
    ok(["dpkg-deb", "--extract", deb, x]);
    expect(sha256(join(x, "usr/bin/nvwa"))).toBe(sha256(join(ROOT, "dist", BINARY[a])));
    const md5sums = ok(["dpkg-deb", "--info", deb, "md5sums"]);
    expect(md5sums).toContain("  usr/bin/nvwa\n");
    const wrong = md5sums.split("\n").filter((l) => l !== "").filter((l) => {
      const [sum, path] = l.split("  ");
      return createHash("md5").update(readFileSync(join(x, path ?? ""))).digest("hex") !== sum;
    });
    expect(wrong).toEqual([]);
    rmSync(x, { recursive: true, force: true });
  }
}, SLOW);

test("each .deb holds the RPM's files with the RPM's modes and owners; only the documentation moves", () => {
  for (const a of ARCHS) {
    const rpm = rpmListing(join(work, "repo/Packages", RPMS[a]));
    const deb = tarListing(ok(["dpkg-deb", "--contents", join(apt1, "pool/main/n/nvwa", DEBS[a])]));
    const { owned, parents } = asRpm(deb, rpm);
    expect({ a, files: owned }).toEqual({ a, files: rpm });
    // The rest are the directories above them, as in every .deb: 0755 root:root.
    for (const [path, attrs] of parents) {
      expect({ path, attrs, above: [...rpm.keys()].some((p) => p.startsWith(`${path}/`)) }).toEqual({ path, attrs: "drwxr-xr-x root:root", above: true });
    }
    expect([...parents.keys()]).toContain("/usr/lib/systemd/system");
  }
}, SLOW);

test("each tarball: the .deb's payload without the directories above it, root:root, SHA256SUMS and its signature check", () => {
  const dir = join(work, "tarballs");
  expect(readdirSync(dir).sort()).toEqual([TARBALLS.arm64, TARBALLS.amd64, "SHA256SUMS", "SHA256SUMS.asc"].sort());
  expect(pkg.tarballs?.sums).toBe(join(dir, "SHA256SUMS"));
  expect(run(["sha256sum", "-c", "SHA256SUMS"], {}, dir)).toEqual({ code: 0, out: `${TARBALLS.arm64}: OK\n${TARBALLS.amd64}: OK\n` });
  const g = join(work, "gnupg-verify-sums");
  mkdirSync(g, { mode: 0o700 });
  ok(["gpg", "--homedir", g, "--batch", "--import", join(apt1, APT_KEY_FILE)]);
  expect(run(["gpg", "--homedir", g, "--batch", "--verify", join(dir, "SHA256SUMS.asc"), join(dir, "SHA256SUMS")]).code).toBe(0);

  for (const a of ARCHS) {
    const tgz = join(dir, TARBALLS[a]);
    const listing = tarListing(ok(["tar", "-tvzf", tgz]));
    const rpm = rpmListing(join(work, "repo/Packages", RPMS[a]));
    const { owned, parents } = asRpm(listing, rpm);
    expect({ a, files: owned }).toEqual({ a, files: rpm });
    expect({ a, parents: [...parents.keys()] }).toEqual({ a, parents: [] });
    expect(ok(["tar", "-tvzf", tgz, "--numeric-owner"]).split("\n").filter((l) => l !== "").every((l) => l.split(/\s+/)[1] === "0/0")).toBe(true);
    const x = join(work, `t-${a}`);
    mkdirSync(x);
    ok(["tar", "-xzpf", tgz, "-C", x]);
    expect(sha256(join(x, "usr/bin/nvwa"))).toBe(sha256(join(ROOT, "dist", BINARY[a])));
    expect(readFileSync(join(x, "usr/lib/systemd/system/nvwa.service"), "utf8")).toBe(readFileSync(join(ROOT, "rpm/nvwa.service"), "utf8"));
    expect(loadConfig(join(x, "etc/nvwa")).restore).toEqual(RESTORE_DEFAULTS);
    rmSync(x, { recursive: true, force: true });
  }

  // A changed byte is caught.
  const bad = join(work, "tarballs-bad");
  cpSync(dir, bad, { recursive: true });
  const f = join(bad, TARBALLS.amd64);
  const bytes = readFileSync(f);
  bytes[bytes.length - 100] = (bytes[bytes.length - 100] ?? 0) ^ 0xff;
  writeFileSync(f, bytes);
  const r = run(["sha256sum", "-c", "SHA256SUMS"], {}, bad);
  expect(r.code).toBe(1);
  expect(r.out).toContain(`${TARBALLS.amd64}: FAILED`);
  rmSync(bad, { recursive: true, force: true });
}, SLOW);

test("buildAptRepo: one arch, the distributor's key, its key file and its time", () => {
  expect(next.out).toBe(join(work, "apt2"));
  expect(next.keyFile).toBe(join(work, "apt2", APT_KEY_FILE));
  expect(next.keyFingerprint).toBe(testKey.fpr);
  expect(fingerprintsOf(ok(["gpg", "--batch", "--with-colons", "--show-keys", next.keyFile]))).toEqual([testKey.fpr]);
  expect(readdirSync(join(next.out, "pool/main/n/nvwa"))).toEqual([`nvwa_${VERSION}-2_amd64.deb`]);
  expect(readdirSync(join(next.out, "dists/stable/main"))).toEqual(["binary-amd64"]);
  expect(readFileSync(join(next.out, "dists/stable/Release"), "utf8")).toContain("Architectures: amd64\n");
  expect(next.seconds).toBeGreaterThan(0);
  // The distributor's keyring is theirs: the key is still there, nothing was added.
  expect(fingerprintsOf(ok(["gpg", "--homedir", testKey.home, "--batch", "--with-colons", "--list-secret-keys"]))).toEqual([testKey.fpr]);
}, SLOW);

// --- apt reads the repo -----------------------------------------------------------------------------

test("apt-get update takes the repo with Signed-By the shipped key, and apt-cache policy shows nvwa for both arches", () => {
  const s = aptSetup("policy", sourceFor(apt1, join(apt1, APT_KEY_FILE)), { arches: ["amd64", "arm64"] });
  expectClean(apt(s, ["apt-get", "update"]), "apt-get update");
  const policy = apt(s, ["apt-cache", "policy", "nvwa:amd64", "nvwa:arm64"]).out;
  expect(policy).toContain(`nvwa:\n  Installed: (none)\n  Candidate: ${DEB_VERSION}\n`);
  expect(policy).toContain(`nvwa:arm64:\n  Installed: (none)\n  Candidate: ${DEB_VERSION}\n`);
  expect(policy).toContain(`500 file:${apt1} stable/main amd64 Packages`);
  const show = apt(s, ["apt-cache", "show", "nvwa:amd64"]).out;
  expect(show).toContain("Depends: criu\n");
  expect(show).toContain(`Filename: pool/main/n/nvwa/${DEBS.amd64}\n`);
}, SLOW);

test("a tampered, unsigned or foreign-signed repo is refused by apt", () => {
  /** A copy of the repo's metadata (the pool linked), altered by `change`. */
  const variant = (name: string, change: (suite: string) => void): string => {
    const dir = join(work, `apt-${name}`);
    cpSync(join(apt1, "dists"), join(dir, "dists"), { recursive: true });
    copyFileSync(join(apt1, APT_KEY_FILE), join(dir, APT_KEY_FILE));
    symlinkSync(join(apt1, "pool"), join(dir, "pool"));
    change(join(dir, "dists/stable"));
    return dir;
  };
  const edit = (file: string, f: (s: string) => string): void => {
    const before = readFileSync(file, "utf8");
    const after = f(before);
    expect(after).not.toBe(before);
    writeFileSync(file, after);
  };
  /** One hex digit of the first SHA256 line. */
  const flipDigest = (text: string): string => text.replace(/(SHA256:\n )([0-9a-f])/, (_, pre: string, d: string) => `${pre}${d === "0" ? "1" : "0"}`);
  const variants: [string, string, (suite: string) => void, string | undefined][] = [
    ["untouched", "", () => undefined, undefined],
    ["inrelease", "", (s) => edit(join(s, "InRelease"), flipDigest), undefined],
    ["release", "", (s) => {
      rmSync(join(s, "InRelease"));
      edit(join(s, "Release"), flipDigest);
    }, undefined],
    ["unsigned", "", (s) => {
      rmSync(join(s, "InRelease"));
      rmSync(join(s, "Release.gpg"));
    }, undefined],
    ["packages", "", (s) => {
      // Both index files say version 9.9: only Release's digests can tell.
      for (const a of ARCHS) {
        const p = join(s, "main", `binary-${a}`, "Packages");
        edit(p, (t) => t.replace(`Version: ${DEB_VERSION}`, "Version: 9.9-1"));
        writeFileSync(`${p}.gz`, Bun.gzipSync(readFileSync(p)));
      }
    }, undefined],
    ["foreign", "", () => undefined, testKey.keyFile],
  ];
  for (const [name, , change, otherKey] of variants) {
    const dir = variant(name, change);
    const s = aptSetup(`tamper-${name}`, sourceFor(dir, otherKey ?? join(dir, APT_KEY_FILE)));
    const r = apt(s, ["apt-get", "update"]);
    const cand = candidate(s, "nvwa");
    if (name === "untouched") {
      // The copy itself is sound: whatever the others fail on is their alteration.
      expect({ name, code: r.code, cand }).toEqual({ name, code: 0, cand: DEB_VERSION });
      continue;
    }
    const says = /BADSIG|NO_PUBKEY|not signed|Hash Sum mismatch|File has unexpected size|signature/i.test(r.out);
    expect({ name, refused: r.code !== 0, says, cand, out: says ? "" : r.out }).toEqual({ name, refused: true, says: true, cand: "(unknown)", out: "" });
    console.log(`apt refused the ${name} variant: ${r.out.split("\n").filter((l) => /^(E|W):/.test(l)).join(" | ")}`);
  }
}, SLOW);

// --- apt-get install, upgrade, remove, purge ------------------------------------------------------

let A: TestRoot;

test("apt-get install nvwa: criu comes in as a dependency; preset and reload, nothing started", () => {
  A = makeRoot("root-a", true);
  expect(installedVersion(A, "criu")).toBe("not-installed");
  const r = apt(A.apt, ["apt-get", "install", "-y", "nvwa"]);
  expectClean(r, "install");
  expect(r.out).toContain("The following NEW packages will be installed:\n  criu nvwa\n");
  expect(installedVersion(A, "nvwa")).toBe(`install ok installed ${DEB_VERSION}`);
  expect(installedVersion(A, "criu")).toBe("install ok installed 0.test");
  expect(systemctlCalls(A.root)).toEqual(["--no-reload preset nvwa.service", "daemon-reload"]);
  // dpkg --verify: every file as the package says (md5sums).
  expect(run(["dpkg", `--root=${A.root}`, "--verify", "nvwa"])).toEqual({ code: 0, out: "" });
  // Nothing of this machine's apt or dpkg state was used: the logs are the test's.
  expect(readFileSync(join(A.root, "var/log/dpkg.log"), "utf8")).toContain(`status installed nvwa:amd64 ${DEB_VERSION}`);
  expect(readFileSync(join(work, "root-a.apt/log/history.log"), "utf8")).toContain("Install: ");
}, SLOW);

test("installed files, owners and modes; the executable runs in the root; the configs load to the defaults", () => {
  const stat = (rel: string): string => {
    const st = lstatSync(join(A.root, rel));
    return `${st.isDirectory() ? "d" : st.isFile() ? "f" : "?"} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
  };
  expect({
    exe: stat("usr/bin/nvwa"), unit: stat("usr/lib/systemd/system/nvwa.service"), etc: stat("etc/nvwa"), restore: stat("etc/nvwa/nvwa-restore.yaml"),
    server: stat("etc/nvwa/nvwa-server.yaml"), log: stat("etc/nvwa/log"), varNvwa: stat("var/nvwa"), running: stat("var/nvwa/running"),
    completion: stat("usr/share/bash-completion/completions/nvwa"), copyright: stat("usr/share/doc/nvwa/copyright"),
  }).toEqual({
    exe: "f 755 0:0", unit: "f 644 0:0", etc: "d 755 0:0", restore: "f 640 0:0", server: "f 640 0:0", log: "d 700 0:0", varNvwa: "d 755 0:0",
    running: "d 700 0:0", completion: "f 644 0:0", copyright: "f 644 0:0",
  });
  expect(sha256(join(A.root, "usr/bin/nvwa"))).toBe(sha256(join(ROOT, "dist/nvwa-linux-x64")));
  const v = versionInRoot(A.root);
  expect(v).toEqual({ code: 0, out: `nvwa ${VERSION}\n` });
  const c = loadConfig(join(A.root, "etc/nvwa"));
  expect(c.restore).toEqual(RESTORE_DEFAULTS);
  expect(c.server).toEqual(SERVER_DEFAULTS);
}, SLOW);

test("upgrade keeps an edited conffile, leaves the new default beside it, and only reloads systemd", () => {
  const restore = join(A.root, "etc/nvwa/nvwa-restore.yaml");
  const edited = "# edited by the operator\npids: [4242]\nservices: [redis]\n";
  writeFileSync(restore, edited);
  chmodSync(restore, 0o640);
  writeFileSync(A.apt.sources, `${readFileSync(A.apt.sources, "utf8")}\n${sourceFor(next.out, next.keyFile)}`);
  expectClean(apt(A.apt, ["apt-get", "update"]), "update");
  expect(candidate(A.apt, "nvwa")).toBe(`${VERSION}-2`);
  // --force-confold: what unattended upgrades answer to dpkg's question about an edited conffile.
  expectClean(apt(A.apt, ["apt-get", "install", "-y", "-o", "DPkg::Options::=--force-confold", "nvwa"]), "upgrade");
  expect(installedVersion(A, "nvwa")).toBe(`install ok installed ${VERSION}-2`);
  expect(readFileSync(restore, "utf8")).toBe(edited);
  expect((lstatSync(restore).mode & 0o777).toString(8)).toBe("640");
  expect(readFileSync(`${restore}.dpkg-dist`, "utf8")).toContain("(changed in revision 2)");
  expect(existsSync(join(A.root, "etc/nvwa/nvwa-server.yaml.dpkg-dist"))).toBe(false);
  expect(systemctlCalls(A.root)).toEqual(["daemon-reload"]);
  expect(loadConfig(join(A.root, "etc/nvwa")).restore.pids).toEqual([4242]);
}, SLOW);

test("remove stops nvwa and reloads, keeping the conffiles; purge disables it and takes them too", () => {
  expectClean(apt(A.apt, ["apt-get", "remove", "-y", "nvwa"]), "remove");
  expect(installedVersion(A, "nvwa")).toBe(`deinstall ok config-files ${VERSION}-2`);
  expect(systemctlCalls(A.root)).toEqual(["stop nvwa.service", "daemon-reload"]);
  expect(existsSync(join(A.root, "usr/bin/nvwa"))).toBe(false);
  expect(readFileSync(join(A.root, "etc/nvwa/nvwa-restore.yaml"), "utf8")).toContain("pids: [4242]");
  // criu stays: apt does not remove what nvwa pulled in unless asked (autoremove).
  expect(installedVersion(A, "criu")).toBe("install ok installed 0.test");

  expectClean(apt(A.apt, ["apt-get", "purge", "-y", "nvwa"]), "purge");
  expect(installedVersion(A, "nvwa")).toBe("not-installed");
  expect(systemctlCalls(A.root)).toEqual(["--no-reload disable nvwa.service", "daemon-reload"]);
  expect(existsSync(join(A.root, "etc/nvwa"))).toBe(false);
  expect(existsSync(join(A.root, "var/nvwa"))).toBe(false);
}, SLOW);

test("systemd not running (an image build): install presets only; remove, reinstall and purge leave nothing behind", () => {
  const B = makeRoot("root-b", false);
  expectClean(apt(B.apt, ["apt-get", "install", "-y", "criu"]), "criu");
  const before = snapshot(B.root);
  expectClean(apt(B.apt, ["apt-get", "install", "-y", "nvwa"]), "install");
  expect(systemctlCalls(B.root)).toEqual(["--no-reload preset nvwa.service"]);
  writeFileSync(join(B.root, "etc/nvwa/nvwa-server.yaml"), "criu_dir: /data/nvwa/\n");
  expectClean(apt(B.apt, ["apt-get", "remove", "-y", "nvwa"]), "remove");
  expect(systemctlCalls(B.root)).toEqual([]);
  // Back from config-files: dpkg names the kept version, so the enablement is left as it was.
  expectClean(apt(B.apt, ["apt-get", "install", "-y", "nvwa"]), "reinstall");
  expect(systemctlCalls(B.root)).toEqual([]);
  expect(readFileSync(join(B.root, "etc/nvwa/nvwa-server.yaml"), "utf8")).toBe("criu_dir: /data/nvwa/\n");
  expectClean(apt(B.apt, ["apt-get", "purge", "-y", "nvwa"]), "purge");
  expect(systemctlCalls(B.root)).toEqual(["--no-reload disable nvwa.service"]);
  expect(changedPaths(before, snapshot(B.root))).toEqual({ added: [], removed: [] });
}, SLOW);
