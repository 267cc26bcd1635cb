/**
 * build/dev.sh installs what the build and test scripts run. The README's `npm test`
 * on a fresh Debian machine failed in the arm64 image build (`E: install arch-test for foreign
 * architecture support`) although CI was green: CI's machine had the images cached and never
 * ran that step. This reads the scripts instead of running them, so the next missing package
 * is caught here, in seconds, without a cold build. The scanning is in dev-deps-scan.ts.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import {
  aptPackagesOf,
  checkDevDeps,
  COMMAND_PACKAGE,
  DEBIAN_BASE,
  PREREQUISITES,
  shellCommandUses,
  tsCommandUses,
  type DepsInput,
} from "./dev-deps-scan.ts";

const ROOT = join(import.meta.dir, "../..");
const read = (f: string): string => readFileSync(join(ROOT, f), "utf8");

/**
 * Shell scripts that run inside the QEMU guest, not on the machine `npm test` runs on: the guest
 * image has its own package list (build-image.sh's include=). Every other *.sh runs on the host.
 */
const GUEST_SIDE: readonly RegExp[] = [/^test\/guest\/scenarios\/[^/]+\/run\.sh$/, /^test\/guest\/workloads\//, /^test\/guest\/image\/rootfs\//];
/** The checker and its own tests hold made-up commands on purpose. */
const NOT_SCANNED_TS = new Set(["test/unit/dev-deps-scan.ts", "test/unit/dev-deps.test.ts"]);

const glob = (pattern: string): string[] =>
  [...new Bun.Glob(pattern).scanSync({ cwd: ROOT })].filter((f) => !f.startsWith("node_modules/") && !f.startsWith("dist/")).sort();
const allShell = glob("**/*.sh");
const hostShell = allShell.filter((f) => !GUEST_SIDE.some((re) => re.test(f)));
const tsFiles = glob("{build,src,ffi,test}/**/*.ts").filter((f) => !NOT_SCANNED_TS.has(f));
const devSh = read("build/dev.sh");
const APT = aptPackagesOf(devSh);

const repoInput: DepsInput = {
  shell: hostShell.map((file) => ({ file, text: read(file) })),
  ts: tsFiles.map((file) => ({ file, text: read(file) })),
  aptPackages: APT,
};
const report = checkDevDeps(repoInput);

describe("build/dev.sh installs what the build and test scripts run", () => {
  test("every command the scripts run comes from a package dev.sh installs or Debian's base", () => {
    expect(report.problems).toEqual([]);
  });

  test("the scan reads every script that runs on the host, and the guest-side exclusions are not stale", () => {
    expect(hostShell).toContain("build/dev.sh");
    expect(hostShell).toContain("test/guest/build-image.sh");
    expect(hostShell).toContain("test/guest/image/customize.sh"); // an mmdebstrap hook: it runs on the host
    expect(hostShell).toContain("test/guest/scenarios/smoke-kexec/check.sh"); // run by run-scenario.sh on the host
    expect(hostShell).toContain("test/host/setup-criu.sh");
    for (const re of GUEST_SIDE) expect({ re: re.source, matches: allShell.some((f) => re.test(f)) }).toEqual({ re: re.source, matches: true });
    expect(tsFiles).toContain("build/package.ts");
    expect(tsFiles).toContain("test/host/rpm.test.ts");
  });

  test("each way a command is met is found in the real tree (the scan is not blind)", () => {
    const found = (cmd: string, file: string, how: string): boolean => report.uses.some((u) => u.cmd === cmd && u.file === file && u.how === how);
    expect({
      needCmds: found("mmdebstrap", "test/guest/build-image.sh", "need_cmds"),
      commandInSubstitution: found("head", "test/guest/build-image.sh", "command"), // [[ $(head -1 …) == enabled ]]
      commandInArithmetic: found("du", "test/guest/run-guest.sh", "command"), // $(( $(du …) + 256 ))
      processSubstitution: found("sort", "test/guest/image/customize.sh", "command"), // mapfile … < <(for …; done | sort -V)
      assignment: found("qemu-system-aarch64", "test/guest/run-guest.sh", "assignment"),
      commandV: found("file", "test/guest/build-image.sh", "command -v"),
      spawn: found("dbus-daemon", "test/host/helpers/dbus-bus.ts", "spawn"),
      spawnThroughConstant: found("python3", "test/host/helpers/criu-env.ts", "spawn"),
      spawnThroughWrapper: found("systemd-analyze", "test/host/rpm.test.ts", "spawn"),
      spawnedArrayVariable: found("bash", "test/guest/scenarios.ts", "spawned array"), // const args = ["bash", …]; Bun.spawn(args, …)
      argvBuilder: found("rpmsign", "build/rpm-plan.ts", "argv builder"),
      requireTools: found("createrepo_c", "build/package.ts", "requireTools"),
      bunWhich: found("dbus-daemon", "test/host/helpers/dbus-bus.ts", "Bun.which"),
    }).toEqual({
      needCmds: true,
      commandInSubstitution: true,
      commandInArithmetic: true,
      processSubstitution: true,
      assignment: true,
      commandV: true,
      spawn: true,
      spawnThroughConstant: true,
      spawnThroughWrapper: true,
      spawnedArrayVariable: true,
      argvBuilder: true,
      requireTools: true,
      bunWhich: true,
    });
  });

  test("mmdebstrap's foreign-architecture build (the arm64 image) has arch-test and qemu-user-static", () => {
    // build-image.sh arm64 runs `mmdebstrap --architectures=arm64` on this x86_64 host: mmdebstrap
    // stops with "E: install arch-test for foreign architecture support" without arch-test, and
    // the arm64 package scripts run under qemu-user-static.
    const script = read("test/guest/build-image.sh");
    expect(script).toMatch(/arm64 \| aarch64\) arch=arm64 debarch=arm64/);
    expect(script).toContain('--architectures="$debarch"');
    expect(report.needed.get("arch-test")).toContain("test/guest/build-image.sh");
    expect(APT).toContain("arch-test");
    expect(APT).toContain("qemu-user-static");
    // Its eatmydata hook runs dpkg-architecture on the host (dpkg-dev).
    expect(script).toContain("--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata");
    expect(APT).toContain("dpkg-dev");
  });

  test("test/guest/setup-host.sh (named by build-image.sh's errors) installs nothing dev.sh does not", () => {
    const m = read("test/guest/setup-host.sh").match(/^packages=\(([^)]*)\)/m);
    const packages = (m?.[1] ?? "").split(/\s+/).filter((p) => p !== "");
    expect(packages.length).toBeGreaterThan(3);
    expect(packages.filter((p) => !APT.includes(p) && !DEBIAN_BASE.includes(p))).toEqual([]);
  });

  test("dev.sh lists each package once", () => {
    expect(APT.filter((p, i) => APT.indexOf(p) !== i)).toEqual([]);
  });
});

describe("the check can fail (self-checks on made-up scripts)", () => {
  const run = (shell: Record<string, string>, ts: Record<string, string> = {}, apt: string[] = []): string[] =>
    checkDevDeps({
      shell: Object.entries(shell).map(([file, text]) => ({ file, text })),
      ts: Object.entries(ts).map(([file, text]) => ({ file, text })),
      aptPackages: apt,
    }).problems;

  test("a command no package is known for", () => {
    expect(run({ "x.sh": "#!/bin/bash\nset -e\nfrobnicate --now\n" })).toEqual([
      'x.sh:3 (command): runs "frobnicate", and no Debian package is known for it: add it to COMMAND_PACKAGE in test/unit/dev-deps-scan.ts (and the package to build/dev.sh)',
    ]);
  });

  test("a known command whose package dev.sh does not install", () => {
    expect(run({ "x.sh": "out=$(xorriso -as mkisofs -o x.iso dir)\n" })).toEqual([
      "build/dev.sh does not install xorriso, needed for xorriso at x.sh:1 (command): add it to APT_PACKAGES",
    ]);
    expect(run({ "x.sh": "out=$(xorriso -as mkisofs -o x.iso dir)\n" }, {}, ["xorriso"])).toEqual([]);
  });

  test("a foreign-architecture mmdebstrap without arch-test", () => {
    const script = 'mm=(mmdebstrap --architectures="$arch" bookworm "$tree")\n"${mm[@]}"\n';
    expect(run({ "b.sh": script }, {}, ["mmdebstrap", "qemu-user-static"])).toEqual([
      "build/dev.sh does not install arch-test, needed for arch-test at b.sh (mmdebstrap --architectures (a foreign architecture: arm64 on x86_64)): add it to APT_PACKAGES",
    ]);
    expect(run({ "b.sh": script }, {}, ["mmdebstrap", "qemu-user-static", "arch-test"])).toEqual([]);
    // The host's own architecture needs neither.
    expect(run({ "b.sh": "mmdebstrap --variant=essential trixie root\n" }, {}, ["mmdebstrap"])).toEqual([]);
  });

  test("TypeScript: Bun.spawn, a wrapper of it, an argv builder", () => {
    const ts = {
      "a.ts": 'const p = Bun.spawnSync(["frobnicate", "-x"], { stdout: "pipe" });\n',
      "b.ts": 'function go(argv: string[]): void {\n  Bun.spawn(argv, {});\n}\n\nfunction twice(argv: string[]): void {\n  go(argv);\n}\ntwice(["/usr/bin/gronk", "y"]);\n',
      "c.ts": 'export function zapArgv(x: string): string[] {\n  return ["zap", x];\n}\n',
    };
    expect(run({}, ts).map((p) => p.replace(/, and no Debian.*/, ""))).toEqual(['a.ts:1 (spawn): runs "frobnicate"', 'b.ts:8 (spawn): runs "gronk"', 'c.ts:2 (argv builder): runs "zap"']);
  });

  test("a file the scripts read by path", () => {
    expect(run({ "k.sh": "[[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] || exit 1\n" })).toEqual([
      "build/dev.sh does not install debian-archive-keyring, needed for /usr/share/keyrings/debian-archive-keyring.gpg at k.sh:1: add it to APT_PACKAGES",
    ]);
  });
});

describe("reading shell: what is a command and what is not", () => {
  const cmds = (text: string): string[] => shellCommandUses("t.sh", text).uses.map((u) => u.cmd);

  test("command positions", () => {
    expect(cmds('a=$(b "$(c x)" | d) && e || f; g & h\nif i; then j; elif k; then l; else m; fi\nwhile n; do o; done\n').sort()).toEqual([..."bcdefghijklmno"]);
    expect(cmds("mapfile -t x < <(p | q)\nexec {fd}> >(r >\"$out\")\ns 2>&1 >/dev/null\n").sort()).toEqual(["mapfile", "p", "q", "r", "s"]);
    expect(cmds("timeout -k 10 5 t1 a\nxargs -0 t2 -c x\nenv -C /x A=1 t3\nsudo -E t4\nexec t5\nflock 9\nflock /l t6 a\ncommand -v t7 >/dev/null\n")).toEqual([
      "timeout", "t1", "xargs", "t2", "env", "t3", "sudo", "t4", "t5", "flock", "flock", "t6", "t7",
    ]);
    expect(cmds("/usr/bin/setsid x\n/opt/tool y\n./local z\n\"$DIR/script.sh\" w\n\"${cmd[@]}\"\n")).toEqual(["setsid", "x"]);
  });

  test("not commands: comments, quotes, heredocs, case patterns, [[ ]], arithmetic, the guest", () => {
    const text = [
      "# cp in a comment",
      "echo 'rm -rf / ; dd' \"mv x\" # and mktemp",
      "cat <<EOF",
      "shred everything",
      "EOF",
      'case $x in',
      "  wipefs | mkswap) a1 ;;",
      "  *) a2 ;;",
      "esac",
      "[[ -n $x && -z $y ]] && a3",
      "((n > 2)) || a4",
      'chroot "$root" apt-get install foo',
      "in_guest() { chroot \"$root\" \"$@\"; }",
      "in_guest systemctl mask x",
      "arr=(not a command) v=plain",
    ].join("\n");
    const r = shellCommandUses("t.sh", text);
    expect(r.uses.map((u) => u.cmd)).toEqual(["echo", "cat", "a1", "a2", "a3", "a4", "chroot", "chroot", "in_guest"]);
    expect([...r.functions]).toEqual(["in_guest"]);
    expect(r.uses.map((u) => u.line)).toEqual([2, 3, 7, 8, 10, 11, 12, 13, 14]);
  });

  test("TypeScript: literal argv only; execPath and variables are not commands", () => {
    const uses = tsCommandUses([{ file: "t.ts", text: 'Bun.spawnSync([process.execPath, "x"]);\nBun.spawn([exe, "check"]);\nBun.spawnSync({ cmd: ["/usr/sbin/ip", "a"] });\n' }]);
    expect(uses.map((u) => [u.cmd, u.line])).toEqual([["ip", 3]]);
  });
});

describe("the tables agree with Debian (where dpkg can tell)", () => {
  const haveDpkg = Bun.which("dpkg-query") !== null && existsSync("/var/lib/dpkg/status");
  /** Every installed package's fields, from one dpkg-query. */
  const installed = (): Map<string, { essential: string; priority: string; depends: string[] }> => {
    const p = Bun.spawnSync(["dpkg-query", "-W", "-f=${Package}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\n"], { stdout: "pipe", stderr: "ignore" });
    const out = new Map<string, { essential: string; priority: string; depends: string[] }>();
    for (const line of p.stdout.toString().split("\n")) {
      const [name, essential = "", priority = "", deps = ""] = line.split("\t");
      if (!name) continue;
      const depends = deps.split(/[,|]/).map((d) => d.trim().split(/[\s:(]/)[0] ?? "").filter((d) => d !== "");
      out.set(name, { essential, priority, depends });
    }
    return out;
  };

  test.skipIf(!haveDpkg)("DEBIAN_BASE is Essential or Priority: required", () => {
    const pkgs = installed();
    expect(DEBIAN_BASE.filter((p) => pkgs.get(p)?.essential !== "yes" && pkgs.get(p)?.priority !== "required")).toEqual([]);
  });

  test.skipIf(!haveDpkg)("each installed command belongs to its package (or to a package it depends on)", () => {
    const pkgs = installed();
    const PATH = "/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/apt";
    // The paths dpkg may have recorded for each command: as found, resolved, with and without /usr (usrmerge).
    const paths = new Map<string, string[]>();
    for (const cmd of Object.keys(COMMAND_PACKAGE)) {
      if (PREREQUISITES[cmd] !== undefined) continue; // Node.js may come from anywhere (nodesource, nvm)
      const path = Bun.which(cmd, { PATH });
      if (path === null) continue;
      const real = realpathSync(path);
      paths.set(cmd, [...new Set([path, real].flatMap((p) => [p, p.replace(/^\/usr(?=\/s?bin\/)/, "")]))]);
    }
    const q = Bun.spawnSync(["dpkg", "-S", ...[...paths.values()].flat()], { stdout: "pipe", stderr: "ignore" });
    const ownerOf = new Map<string, string[]>();
    for (const line of q.stdout.toString().split("\n")) {
      const at = line.lastIndexOf(": ");
      if (at === -1) continue;
      ownerOf.set(line.slice(at + 2), line.slice(0, at).split(", ").map((o) => o.replace(/:.*/, "")));
    }
    const wrong: string[] = [];
    for (const [cmd, candidates] of paths) {
      const owners = new Set(candidates.flatMap((c) => ownerOf.get(c) ?? []));
      if (owners.size === 0) continue; // not from a package (a local install)
      const pkg = COMMAND_PACKAGE[cmd] ?? "";
      // The package itself, or what it pulls in (two levels: gnupg → gpg, python3 → python3-minimal).
      const ok = new Set([pkg]);
      for (let depth = 0; depth < 2; depth++) for (const p of [...ok]) for (const d of pkgs.get(p)?.depends ?? []) ok.add(d);
      if (![...owners].some((o) => ok.has(o))) wrong.push(`${cmd}: ${[...owners].join(", ")} ships ${candidates[0]}, not ${pkg}`);
    }
    expect(wrong).toEqual([]);
    expect(paths.size).toBeGreaterThan(20);
  });

  test.skipIf(!existsSync("/usr/share/mmdebstrap/hooks/eatmydata"))("mmdebstrap's eatmydata hook on this machine needs nothing dev.sh lacks", () => {
    const dir = "/usr/share/mmdebstrap/hooks/eatmydata";
    const hooks = [...new Bun.Glob("*.sh").scanSync({ cwd: dir })].map((f) => ({ file: join(dir, f), text: readFileSync(join(dir, f), "utf8") }));
    expect(hooks.length).toBeGreaterThan(0);
    expect(checkDevDeps({ shell: hooks, ts: [], aptPackages: APT }).problems).toEqual([]);
  });
});
