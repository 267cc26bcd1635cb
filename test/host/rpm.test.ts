/**
 * The RPMs as users get them (issue 8): `bun run package` builds and signs both, then the
 * x86_64 one is installed the way the install guide says — a file:// repo, gpgcheck=1, the key
 * imported with `rpm --import`, `dnf install nvwa -y` — into dnf --installroot directories, and
 * upgraded, erased and fed tampered copies of itself.
 *
 * An empty installroot has no glibc and no criu, and only npm and Debian are reachable from
 * here, so the test builds two TEST-ONLY packages into a separate, also signed, repo (never
 * shipped, never in dist/): nvwa-test-base, which packages this host's own dynamic loader,
 * libc, libm, libdl, libpthread and dash as /bin/sh and owns the standard directories (the part
 * of a real OS nvwa's package relies on), and nvwa-test-criu-stub, which Provides: criu with a
 * /usr/sbin/criu that only says it is not criu. Nothing of nvwa's packaging is mocked.
 *
 * systemd is not PID 1 here, so to see what the scriptlets do, the roots get a stand-in
 * /usr/bin/systemctl that records its arguments (a fault that cannot be caused for real on
 * this machine; the guest runs the real thing), and /run/systemd/system where a test plays
 * "systemd is running".
 *
 * Each test builds on the state the previous ones left (one root is installed, upgraded, then
 * erased), in file order.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import {
  chmodSync, copyFileSync, cpSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS } from "../../src/config/types.ts";
import { packageAll } from "../../build/package.ts";
import { KEY_FILE, fingerprintsOf, repoFileText } from "../../build/rpm-plan.ts";
import { snapshot as treeSnapshot } from "../lib/tree-snapshot.ts";
import { ok as okCmd, run as runCmd, sha256, versionInRoot, type Result } from "../lib/commands.ts";

const ROOT = join(import.meta.dir, "../..");
const BUN = process.execPath;
const VERSION = ((await Bun.file(join(ROOT, "package.json")).json()) as { version: string }).version;
const X64 = `nvwa-${VERSION}-1.x86_64.rpm`;
const ARM = `nvwa-${VERSION}-1.aarch64.rpm`;

/** Everything the package owns, and nothing else. */
const PACKAGED = [
  "/etc/nvwa", "/etc/nvwa/log", "/etc/nvwa/nvwa-restore.yaml", "/etc/nvwa/nvwa-server.yaml", "/usr/bin/nvwa",
  "/usr/lib/systemd/system/nvwa.service", "/usr/share/bash-completion/completions/nvwa", `/usr/share/doc/nvwa-${VERSION}`,
  `/usr/share/doc/nvwa-${VERSION}/README.md`, `/usr/share/licenses/nvwa-${VERSION}`, `/usr/share/licenses/nvwa-${VERSION}/LICENSE`,
  "/var/nvwa", "/var/nvwa/running",
].sort();

let work: string;
/** HOME for rpm/dnf: its .rpmmacros puts the rpm database where RPM distros have it. */
let home: string;
let repo1: string; // bun run package, throw-away key, both arches, release 1
let repo2: string; // NVWA_GPG_KEY_ID path, x86_64, release 2, a changed default nvwa-restore.yaml
let baseRepo: string; // the test-only packages
let testKey: { home: string; fpr: string; passFile: string };
let packageSeconds = 0;

/** The default 5 s is for unit tests; these run rpm, dnf and rpmlint (seconds each). */
const SLOW = 120_000;

/**
 * dnf and rpm report a failed scriptlet as a warning and go on: the transaction must succeed
 * with exactly the warnings expected (rpm's notes about .rpmnew/.rpmsave files) and no other.
 */
function expectClean(r: Result, what: string, warnings: string[] = []): void {
  const said = r.out.split("\n").filter((l) => /scriptlet|lua|error|warning/i.test(l) && !/Running scriptlet/.test(l));
  expect({ what, code: r.code, said }).toEqual({ what, code: 0, said: warnings });
}

/** Commands run with this test's own HOME (rpm and gpg read ~/.rpmmacros and ~/.gnupg). */
const run = (argv: string[], env: Record<string, string> = {}, cwd?: string): Result => runCmd(argv, { HOME: home, ...env }, cwd);

const ok = (argv: string[], env: Record<string, string> = {}, cwd?: string): string => okCmd(argv, { HOME: home, ...env }, cwd);


/** The repo definitions a root's dnf sees: the test base, and the given nvwa repos. */
function writeRepos(dir: string, nvwaRepos: { id: string; path: string }[]): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "nvwa-test-base.repo"), repoFileText(`file://${baseRepo}`, "nvwa-test-base"));
  // The guide's local.repo, as the package ships it, with the mount point replaced.
  for (const r of nvwaRepos) writeFileSync(join(dir, `${r.id}.repo`), repoFileText(`file://${r.path}`, r.id));
}

function dnf(root: string, reposDir: string, args: string[]): Result {
  return run([
    "dnf", "-y", `--installroot=${root}`, `--config=${join(work, "dnf.conf")}`, `--setopt=reposdir=${reposDir}`,
    `--setopt=cachedir=${join(work, "dnf-cache")}`, "--setopt=metadata_expire=0", "--setopt=install_weak_deps=False",
    "--setopt=clean_requirements_on_remove=False", "--releasever=0", "--noplugins", ...args,
  ]);
}

function installed(root: string): string[] {
  return ok(["rpm", "--root", root, "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n"]).split("\n").filter((l) => l !== "" && !l.startsWith("gpg-pubkey")).sort();
}

/**
 * A root with the test base installed (the "OS"), the stand-in systemctl and, when
 * `systemdRunning`, /run/systemd/system.
 */
function makeRoot(name: string, opts: { systemdRunning: boolean; withCriuStub: boolean }): { root: string; repos: string } {
  const root = join(work, name);
  const repos = join(work, `${name}.repos.d`);
  mkdirSync(root, { recursive: true });
  writeRepos(repos, []);
  const r = dnf(root, repos, ["install", "nvwa-test-base", ...(opts.withCriuStub ? ["nvwa-test-criu-stub"] : [])]);
  expect({ name, code: r.code, out: r.code === 0 ? "" : r.out }).toEqual({ name, code: 0, out: "" });
  writeFileSync(join(root, "usr/bin/systemctl"), '#!/bin/sh\nprintf \'%s\\n\' "$*" >> /systemctl.calls\n', { mode: 0o755 });
  writeFileSync(join(root, "systemctl.calls"), "");
  if (opts.systemdRunning) mkdirSync(join(root, "run/systemd/system"), { recursive: true });
  return { root, repos };
}

/** What the stand-in systemctl was asked since the last call (and forget it). */
function systemctlCalls(root: string): string[] {
  const f = join(root, "systemctl.calls");
  const calls = readFileSync(f, "utf8").split("\n").filter((l) => l !== "");
  writeFileSync(f, "");
  return calls;
}

/** Every path under root with its type, mode and owner, minus the package managers' own state. */
const snapshot = (root: string): Map<string, string> => treeSnapshot(root, new Set(["var/lib/rpm", "var/lib/dnf", "var/log", "var/cache", "tmp", "systemctl.calls"]));

function addedPaths(before: Map<string, string>, after: Map<string, string>): string[] {
  return [...after.keys()].filter((k) => before.get(k) !== after.get(k)).sort();
}

function removedPaths(before: Map<string, string>, after: Map<string, string>): string[] {
  return [...before.keys()].filter((k) => !after.has(k)).sort();
}

async function genKey(dir: string, uid: string, passFile?: string): Promise<string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pass = passFile === undefined ? ["--passphrase", ""] : ["--pinentry-mode", "loopback", "--passphrase-file", passFile];
  ok(["gpg", "--homedir", dir, "--batch", ...pass, "--quick-gen-key", uid, "rsa3072", "sign", "never"]);
  const [fpr] = fingerprintsOf(ok(["gpg", "--homedir", dir, "--batch", "--with-colons", "--list-secret-keys"]));
  if (fpr === undefined) throw new Error(`no key in ${dir}`);
  return fpr;
}

function sign(files: string[], gnupgHome: string, fpr: string, passFile?: string): void {
  ok([
    "rpmsign", "--addsign", "--define", `_gpg_name ${fpr}`, "--define", `_gpg_path ${gnupgHome}`, "--define", "__gpg /usr/bin/gpg",
    ...(passFile === undefined ? [] : ["--define", `_gpg_sign_cmd_extra_args --pinentry-mode loopback --passphrase-file ${passFile}`]),
    ...files,
  ]);
}

/** The TEST-ONLY base packages (see the header). */
function buildBaseRepo(): void {
  const top = join(work, "base-build");
  const spec = join(top, "nvwa-test-base.spec");
  mkdirSync(top, { recursive: true });
  const dirs = [
    "/etc", "/run", "/var", "/bin", "/lib", "/lib64", "/lib/x86_64-linux-gnu", "/usr", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib/systemd",
    "/usr/lib/systemd/system", "/usr/share", "/usr/share/doc", "/usr/share/licenses", "/usr/share/bash-completion",
    "/usr/share/bash-completion/completions",
  ];
  writeFileSync(spec, `# TEST ONLY (test/host/rpm.test.ts): never shipped.
Name: nvwa-test-base
Version: 1
Release: 1
Summary: TEST ONLY: this host's glibc and dash, and the standard directories, for nvwa's install test
License: LGPL-2.1-or-later AND GPL-2.0-or-later
# What a real glibc provides besides its sonames (rpm generates those from the files).
Provides: rtld(GNU_HASH)
%description
Test fixture for nvwa's RPM install test. Not a real operating system package.
%package -n nvwa-test-criu-stub
Summary: TEST ONLY: provides criu without being criu
Provides: criu = 0.test
%description -n nvwa-test-criu-stub
Satisfies nvwa's Requires: criu in the install test. /usr/sbin/criu only fails.
%install
install -D -m 0755 /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 %{buildroot}/lib64/ld-linux-x86-64.so.2
for l in libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0; do install -D -m 0755 /lib/x86_64-linux-gnu/$l %{buildroot}/lib/x86_64-linux-gnu/$l; done
install -D -m 0755 /usr/bin/dash %{buildroot}/bin/sh
${dirs.map((d) => `mkdir -p %{buildroot}${d}`).join("\n")}
printf '#!/bin/sh\\necho "nvwa-test-criu-stub: this is not criu" >&2\\nexit 1\\n' > %{buildroot}/usr/sbin/criu
chmod 0755 %{buildroot}/usr/sbin/criu
%files
/lib64/ld-linux-x86-64.so.2
/lib/x86_64-linux-gnu/*.so.*
/bin/sh
${dirs.map((d) => `%dir ${d}`).join("\n")}
%files -n nvwa-test-criu-stub
/usr/sbin/criu
`);
  ok([
    "rpmbuild", "-bb", "--quiet", "--target", "x86_64-linux", "--define", `_topdir ${top}`, "--define", "__os_install_post %{nil}",
    "--define", "debug_package %{nil}", "--define", "_build_id_links none", spec,
  ]);
  mkdirSync(baseRepo, { recursive: true });
  for (const f of readdirSync(join(top, "RPMS/x86_64"))) copyFileSync(join(top, "RPMS/x86_64", f), join(baseRepo, f));
  sign(readdirSync(baseRepo).map((f) => join(baseRepo, f)), testKey.home, testKey.fpr, testKey.passFile);
  writeFileSync(join(baseRepo, KEY_FILE), ok(["gpg", "--homedir", testKey.home, "--armor", "--export", testKey.fpr]));
  ok(["createrepo_c", "--quiet", baseRepo]);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "nvwa-rpm-"));
  home = join(work, "home");
  mkdirSync(home);
  // Debian's rpm keeps its database in ~/.rpmdb; RPM distros in /var/lib/rpm.
  writeFileSync(join(home, ".rpmmacros"), "%_dbpath /var/lib/rpm\n");
  writeFileSync(join(work, "dnf.conf"), "[main]\ngpgcheck=1\nrepo_gpgcheck=0\ninstall_weak_deps=False\nkeepcache=False\n");
  repo1 = join(work, "repo1");
  repo2 = join(work, "repo2");
  baseRepo = join(work, "base-repo");

  if (!existsSync(join(ROOT, "dist/nvwa-linux-x64")) || !existsSync(join(ROOT, "dist/nvwa-linux-arm64"))) {
    ok([BUN, "run", "build"], {}, ROOT);
  }

  // The distributor's key, with a passphrase, as NVWA_GPG_KEY_ID would name it in CI.
  const passFile = join(work, "passphrase");
  writeFileSync(join(work, "passphrase"), "correct horse battery staple", { mode: 0o600 });
  testKey = { home: join(work, "gnupg-test"), fpr: "", passFile };
  testKey.fpr = await genKey(testKey.home, "nvwa install test key <nvwa-test@invalid>", passFile);
  buildBaseRepo();

  // 1. What users get: `bun run package`, throw-away key, both arches, an ISO too.
  const started = performance.now();
  // Its own TMPDIR, to see afterwards that the throw-away key and the staging are gone.
  mkdirSync(join(work, "package-tmp"));
  const cli = run([BUN, join(ROOT, "build/package.ts"), "--out", repo1, "--iso-path", join(work, "nvwa.iso")], { NVWA_GPG_KEY_ID: "", TMPDIR: join(work, "package-tmp") }, ROOT);
  packageSeconds = (performance.now() - started) / 1000;
  if (cli.code !== 0) throw new Error(`bun build/package.ts failed:\n${cli.out}`);
  console.log(`measured: bun build/package.ts (2 arches + ISO) took ${packageSeconds.toFixed(1)} s\n${cli.out}`);

  // 2. The next release, signed with the distributor's key, with a changed default config.
  const rpmDir = join(work, "rpm-r2");
  cpSync(join(ROOT, "rpm"), rpmDir, { recursive: true });
  writeFileSync(join(rpmDir, "nvwa-restore.yaml"), `${readFileSync(join(ROOT, "rpm/nvwa-restore.yaml"), "utf8")}\n# (changed in release 2)\n`);
  await packageAll({
    rpmDir,
    out: repo2,
    release: "2",
    arches: ["x64"],
    env: { NVWA_GPG_KEY_ID: testKey.fpr, GNUPGHOME: testKey.home, NVWA_GPG_PASSPHRASE_FILE: passFile },
  });
}, 600_000);

afterAll(() => {
  for (const d of readdirSync(work)) {
    if (d.startsWith("gnupg")) run(["gpgconf", "--homedir", join(work, d), "--kill", "all"]);
  }
  rmSync(work, { recursive: true, force: true });
});

test("bun run package: an ISO-like signed repo with the key at its root", () => {
  const top = readdirSync(repo1).sort();
  expect(top).toEqual(["Packages", KEY_FILE, "nvwa.repo", "repodata"].sort());
  expect(readdirSync(join(repo1, "Packages")).sort()).toEqual([ARM, X64].sort());
  expect(readFileSync(join(repo1, KEY_FILE), "utf8")).toContain("-----BEGIN PGP PUBLIC KEY BLOCK-----");
  expect(readFileSync(join(repo1, "nvwa.repo"), "utf8")).toBe(repoFileText("file:///mnt"));
  // createrepo_c saw both packages.
  const repomd = readFileSync(join(repo1, "repodata/repomd.xml"), "utf8");
  const primary = readdirSync(join(repo1, "repodata")).find((f) => f.endsWith("primary.xml.gz"));
  expect(repomd).toContain("primary");
  expect(primary).toBeDefined();
  const xml = new TextDecoder().decode(Bun.gunzipSync(readFileSync(join(repo1, "repodata", primary ?? ""))));
  expect(xml).toContain('packages="2"');
  expect(xml).toContain(`<location href="Packages/${X64}"/>`);
  expect(xml).toContain(`<location href="Packages/${ARM}"/>`);
  // repomd.xml is signed by the same key (for repo_gpgcheck=1).
  const g = join(work, "gnupg-verify");
  mkdirSync(g, { mode: 0o700 });
  ok(["gpg", "--homedir", g, "--batch", "--import", join(repo1, KEY_FILE)]);
  expect(run(["gpg", "--homedir", g, "--batch", "--verify", join(repo1, "repodata/repomd.xml.asc"), join(repo1, "repodata/repomd.xml")]).code).toBe(0);
  // The throw-away key is gone with its temporary GNUPGHOME, and no gpg-agent was left behind.
  expect(readdirSync(join(work, "package-tmp"))).toEqual([]);
  const leftover = readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(join(work, "package-tmp"));
    } catch {
      return false; // the process ended while we looked
    }
  });
  expect(leftover).toEqual([]);
  // The ISO holds the same tree.
  const iso = ok(["xorriso", "-indev", join(work, "nvwa.iso"), "-find", "/", "-type", "f"]);
  for (const f of [`/${KEY_FILE}`, "/nvwa.repo", "/repodata/repomd.xml", `/Packages/${X64}`, `/Packages/${ARM}`]) expect(iso).toContain(`'${f}'`);
  console.log(`RPM sizes: x86_64 ${lstatSync(join(repo1, "Packages", X64)).size} B, aarch64 ${lstatSync(join(repo1, "Packages", ARM)).size} B; ISO ${lstatSync(join(work, "nvwa.iso")).size} B`);
}, SLOW);

test("each RPM: its arch, Requires criu, the executable byte for byte, modes, owners, noreplace configs", () => {
  for (const [file, arch, binary] of [[X64, "x86_64", "nvwa-linux-x64"], [ARM, "aarch64", "nvwa-linux-arm64"]] as const) {
    const rpm = join(repo1, "Packages", file);
    expect(ok(["rpm", "-qp", "--nosignature", "--qf", "%{ARCH} %{LICENSE} %{FILEDIGESTALGO}", rpm])).toBe(`${arch} MulanPSL-2.0 8`);
    const requires = ok(["rpm", "-qpR", "--nosignature", rpm]).split("\n").map((l) => l.trim());
    expect(requires).toContain("criu");
    const files = ok(["rpm", "-qp", "--nosignature", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILEDIGESTS} %{FILENAMES}\n]", rpm])
      .split("\n")
      .filter((l) => / \//.test(l) && !l.startsWith("warning"));
    const byPath = new Map(files.map((l) => {
      const [perms, owner, ...rest] = l.split(" ");
      const path = rest.at(-1) ?? "";
      const digest = rest.at(-2) ?? "";
      const flags = rest.length === 3 ? rest[0] : "";
      return [path, { perms, owner, flags, digest }] as const;
    }));
    // SHA-256 of the packaged file equals the executable build/compile.ts made: nothing stripped it.
    expect(byPath.get("/usr/bin/nvwa")).toEqual({ perms: "-rwxr-xr-x", owner: "root:root", flags: "", digest: sha256(join(ROOT, "dist", binary)) });
    expect(byPath.get("/etc/nvwa/nvwa-restore.yaml")).toMatchObject({ perms: "-rw-r-----", owner: "root:root", flags: "cn" });
    expect(byPath.get("/etc/nvwa/nvwa-server.yaml")).toMatchObject({ perms: "-rw-r-----", owner: "root:root", flags: "cn" });
    expect(byPath.get("/var/nvwa/running")).toMatchObject({ perms: "drwx------", owner: "root:root" });
    expect(byPath.get("/usr/lib/systemd/system/nvwa.service")).toMatchObject({ perms: "-rw-r--r--", digest: sha256(join(ROOT, "rpm/nvwa.service")) });
    expect(byPath.get(`/usr/share/licenses/nvwa-${VERSION}/LICENSE`)).toMatchObject({ flags: "l" });
    // No /usr/lib/.build-id links, no debuginfo.
    expect([...byPath.keys()].filter((p) => p.includes(".build-id") || p.includes("debug"))).toEqual([]);
    expect([...byPath.keys()].sort()).toEqual(PACKAGED);
  }
}, SLOW);

test("rpmlint: every finding on the signed RPMs and the spec is one rpm/nvwa.spec justifies, and no justification is stale", () => {
  // rpmlint checks the signature against the rpm database of ~/.rpmmacros' %_dbpath.
  const lintHome = join(work, "lint-home");
  mkdirSync(join(lintHome, "db"), { recursive: true });
  writeFileSync(join(lintHome, ".rpmmacros"), `%_dbpath ${join(lintHome, "db")}\n`);
  ok(["rpmkeys", "--dbpath", join(lintHome, "db"), "--import", join(repo1, KEY_FILE)]);
  // rpmlint parses the spec with rpm, which needs the version build/package.ts passes.
  const spec = readFileSync(join(ROOT, "rpm/nvwa.spec"), "utf8");
  writeFileSync(join(lintHome, "nvwa.spec"), `%global nvwa_version ${VERSION}\n${spec}`);
  const r = run(["rpmlint", join(repo1, "Packages", X64), join(repo1, "Packages", ARM), join(lintHome, "nvwa.spec")], { HOME: lintHome });
  const findings = [...r.out.matchAll(/^nvwa[.\w]*?(?::\d+)?: ([WE]): (\S+)/gm)].map((m) => m[2] ?? "");
  const justified = [...spec.matchAll(/^# rpmlint: ([\w-]+):/gm)].map((m) => m[1] ?? "");
  expect(r.out).toContain("2 packages and 1 specfiles checked");
  expect([...new Set(findings)].filter((f) => !justified.includes(f))).toEqual([]);
  expect(justified.filter((j) => !findings.includes(j))).toEqual([]);
}, SLOW);

let A: { root: string; repos: string };

test("install as the guide says: rpm --import, dnf install nvwa -y with gpgcheck=1, rpm -qa | grep nvwa", () => {
  A = makeRoot("root-a", { systemdRunning: true, withCriuStub: false });
  writeRepos(A.repos, [{ id: "nvwa-local", path: repo1 }]);
  ok(["rpm", "--root", A.root, "--import", join(repo1, KEY_FILE)]);
  expectClean(dnf(A.root, A.repos, ["install", "nvwa"]), "install");
  // criu came from the test stub, as the dependency it is.
  expect(installed(A.root)).toEqual([`nvwa-${VERSION}-1.x86_64`, "nvwa-test-base-1-1.x86_64", "nvwa-test-criu-stub-1-1.x86_64"]);
  expect(ok(["rpm", "--root", A.root, "-qa"]).split("\n").filter((l) => l.includes("nvwa-"))).toContain(`nvwa-${VERSION}-1.x86_64`);
  // rpm -V: every file as the package says (digest, mode, owner, size).
  expect(run(["rpm", "--root", A.root, "-V", "nvwa"])).toEqual({ code: 0, out: "" });
  // First install with systemd running: enable per preset, nothing else (no start, no reload).
  expect(systemctlCalls(A.root)).toEqual(["--no-reload preset nvwa.service"]);
}, SLOW);

test("installed files, owners and modes; the executable runs in the root; the configs load to the defaults", () => {
  const expectStat = (rel: string, type: "f" | "d", mode: number): void => {
    const st = lstatSync(join(A.root, rel));
    expect({ rel, type: st.isDirectory() ? "d" : st.isFile() ? "f" : "?", mode: (st.mode & 0o7777).toString(8), owner: `${st.uid}:${st.gid}` }).toEqual({
      rel, type, mode: mode.toString(8), owner: "0:0",
    });
  };
  expectStat("usr/bin/nvwa", "f", 0o755);
  expectStat("usr/lib/systemd/system/nvwa.service", "f", 0o644);
  expectStat("etc/nvwa", "d", 0o755);
  expectStat("etc/nvwa/nvwa-restore.yaml", "f", 0o640);
  expectStat("etc/nvwa/nvwa-server.yaml", "f", 0o640);
  expectStat("etc/nvwa/log", "d", 0o700);
  expectStat("var/nvwa", "d", 0o755);
  expectStat("var/nvwa/running", "d", 0o700);
  expectStat("usr/share/bash-completion/completions/nvwa", "f", 0o644);
  expectStat(`usr/share/licenses/nvwa-${VERSION}/LICENSE`, "f", 0o644);
  expectStat(`usr/share/doc/nvwa-${VERSION}/README.md`, "f", 0o644);
  expect(sha256(join(A.root, "usr/bin/nvwa"))).toBe(sha256(join(ROOT, "dist/nvwa-linux-x64")));
  expect(ok(["rpm", "--root", A.root, "-ql", "nvwa"]).split("\n").filter((l) => l !== "").sort()).toEqual(PACKAGED);

  // Only what the package's automatic Requires pulled in (ld.so, libc, libm, libdl, libpthread)
  // is in the root, and the executable runs there. Bun needs /proc and /dev, as on any system.
  mkdirSync(join(A.root, "proc"), { recursive: true });
  mkdirSync(join(A.root, "dev"), { recursive: true });
  const v = versionInRoot(A.root);
  expect(v).toEqual({ code: 0, out: `nvwa ${VERSION}\n` });

  const c = loadConfig(join(A.root, "etc/nvwa"));
  expect(c.restore).toEqual(RESTORE_DEFAULTS);
  expect(c.server).toEqual(SERVER_DEFAULTS);
}, SLOW);

test("systemd-analyze verify passes on the installed unit", () => {
  // A root with this host's systemd units (sysinit.target, local-fs.target, ...) and the
  // installed executable, so verify checks ExecStart= and every dependency for real.
  const s = join(work, "verify-root");
  mkdirSync(join(s, "usr/bin"), { recursive: true });
  mkdirSync(join(s, "usr/lib/systemd"), { recursive: true });
  cpSync("/usr/lib/systemd/system", join(s, "usr/lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
  copyFileSync(join(A.root, "usr/lib/systemd/system/nvwa.service"), join(s, "usr/lib/systemd/system/nvwa.service"));
  linkSync(join(A.root, "usr/bin/nvwa"), join(s, "usr/bin/nvwa"));
  expect(run(["systemd-analyze", "verify", `--root=${s}`, "nvwa.service"])).toEqual({ code: 0, out: "" });
  // The same check does catch a broken unit: without the executable it fails.
  rmSync(join(s, "usr/bin/nvwa"));
  const broken = run(["systemd-analyze", "verify", `--root=${s}`, "nvwa.service"]);
  expect(broken.code).not.toBe(0);
  expect(broken.out).toContain("/usr/bin/nvwa");
}, SLOW);

test("upgrade keeps an edited config (noreplace), leaves the new default beside it, and does not restart nvwa", () => {
  const restore = join(A.root, "etc/nvwa/nvwa-restore.yaml");
  const edited = "# edited by the operator\npids: [4242]\nservices: [redis]\n";
  writeFileSync(restore, edited);
  chmodSync(restore, 0o640);
  writeRepos(A.repos, [{ id: "nvwa-local", path: repo1 }, { id: "nvwa-next", path: repo2 }]);
  // repo2 is signed with another key; the guide's step again for it.
  ok(["rpm", "--root", A.root, "--import", join(repo2, KEY_FILE)]);
  expectClean(dnf(A.root, A.repos, ["upgrade", "nvwa"]), "upgrade", [
    "warning: /etc/nvwa/nvwa-restore.yaml created as /etc/nvwa/nvwa-restore.yaml.rpmnew",
  ]);
  expect(installed(A.root)).toContain(`nvwa-${VERSION}-2.x86_64`);
  expect(readFileSync(restore, "utf8")).toBe(edited);
  expect((lstatSync(restore).mode & 0o777).toString(8)).toBe("640");
  expect(readFileSync(`${restore}.rpmnew`, "utf8")).toContain("(changed in release 2)");
  // The untouched config was simply replaced: no .rpmnew for it.
  expect(existsSync(join(A.root, "etc/nvwa/nvwa-server.yaml.rpmnew"))).toBe(false);
  // Upgrade with systemd running: reload the unit files, never stop, restart or try-restart.
  expect(systemctlCalls(A.root)).toEqual(["daemon-reload"]);
  // nvwa itself reads the edited file.
  expect(loadConfig(join(A.root, "etc/nvwa")).restore.pids).toEqual([4242]);
}, SLOW);

test("erase with systemd running stops and disables nvwa, then reloads", () => {
  expectClean(dnf(A.root, A.repos, ["remove", "nvwa"]), "erase", [
    "warning: /etc/nvwa/nvwa-restore.yaml saved as /etc/nvwa/nvwa-restore.yaml.rpmsave",
  ]);
  expect(installed(A.root)).not.toContain(`nvwa-${VERSION}-2.x86_64`);
  expect(systemctlCalls(A.root)).toEqual(["--no-reload disable --now nvwa.service", "daemon-reload"]);
  expect(readFileSync(join(A.root, "etc/nvwa/nvwa-restore.yaml.rpmsave"), "utf8")).toContain("pids: [4242]");
}, SLOW);

test("erase leaves nothing but the edited config (systemd not running, as in an image build)", () => {
  const B = makeRoot("root-b", { systemdRunning: false, withCriuStub: true });
  writeRepos(B.repos, [{ id: "nvwa-local", path: repo1 }]);
  ok(["rpm", "--root", B.root, "--import", join(repo1, KEY_FILE)]);
  const before = snapshot(B.root);
  expectClean(dnf(B.root, B.repos, ["install", "nvwa"]), "install");
  const server = join(B.root, "etc/nvwa/nvwa-server.yaml");
  writeFileSync(server, "criu_dir: /data/nvwa/\n");
  expectClean(dnf(B.root, B.repos, ["remove", "nvwa"]), "erase", [
    "warning: /etc/nvwa/nvwa-server.yaml saved as /etc/nvwa/nvwa-server.yaml.rpmsave",
  ]);
  const after = snapshot(B.root);
  expect(removedPaths(before, after)).toEqual([]);
  expect(addedPaths(before, after)).toEqual(["etc/nvwa", "etc/nvwa/nvwa-server.yaml.rpmsave"]);
  expect(readFileSync(`${server}.rpmsave`, "utf8")).toBe("criu_dir: /data/nvwa/\n");
  // Offline: preset and disable work on the symlinks alone; nothing to stop, nothing to reload.
  expect(systemctlCalls(B.root)).toEqual(["--no-reload preset nvwa.service", "--no-reload disable nvwa.service"]);
}, SLOW);

test("a tampered or foreign-signed RPM is refused by the signature check", async () => {
  const C = makeRoot("root-c", { systemdRunning: false, withCriuStub: true });
  ok(["rpm", "--root", C.root, "--import", join(repo1, KEY_FILE)]);
  const good = readFileSync(join(repo1, "Packages", X64));

  // Header: one letter of the Summary (covered by the header signature).
  const header = Buffer.from(good);
  const at = header.indexOf("Kernel hot upgrade");
  expect(at).toBeGreaterThan(0);
  header[at] = "k".charCodeAt(0);
  // Payload: one byte near the end of the compressed archive (covered by the payload digest
  // in the signed header).
  const payload = Buffer.from(good);
  const pos = payload.length - 4096;
  payload[pos] = (payload[pos] ?? 0) ^ 0xff;
  // Foreign: intact, but signed by a key the repo does not publish.
  const foreignHome = join(work, "gnupg-foreign");
  const foreignFpr = await genKey(foreignHome, "someone else <mallory@invalid>");
  const foreignFile = join(work, "foreign.rpm");
  writeFileSync(foreignFile, good);
  ok(["rpmsign", "--delsign", foreignFile]);
  sign([foreignFile], foreignHome, foreignFpr);

  const variants: [string, Buffer][] = [["header", header], ["payload", payload], ["foreign", readFileSync(foreignFile)]];
  for (const [name, bytes] of variants) {
    // A repo whose metadata matches the altered file, so only the signature can tell.
    const dir = join(work, `repo-${name}`);
    mkdirSync(join(dir, "Packages"), { recursive: true });
    writeFileSync(join(dir, "Packages", X64), bytes);
    copyFileSync(join(repo1, KEY_FILE), join(dir, KEY_FILE));
    ok(["createrepo_c", "--quiet", dir]);
    writeRepos(C.repos, [{ id: `nvwa-${name}`, path: dir }]);

    const check = run(["rpmkeys", "--root", C.root, "--checksig", join(dir, "Packages", X64)]);
    expect({ name, checksig: check.code }).toEqual({ name, checksig: 1 });
    const r = dnf(C.root, C.repos, ["install", "nvwa"]);
    const says = /GPG|signature|digest|not signed|public key/i.test(r.out);
    expect({ name, refused: r.code !== 0, says, out: says ? "" : r.out }).toEqual({ name, refused: true, says: true, out: "" });
    console.log(`dnf refused the ${name}-tampered RPM:\n${r.out.split("\n").filter((l) => /GPG|signature|digest|key|Error|error/i.test(l)).join("\n")}`);
    expect(installed(C.root).filter((p) => p.startsWith("nvwa-0") || p.startsWith(`nvwa-${VERSION}`))).toEqual([]);
    expect(existsSync(join(C.root, "usr/bin/nvwa"))).toBe(false);
  }
  expect(systemctlCalls(C.root)).toEqual([]);
}, SLOW);
