/** criu command lines and environment: every flag nvwa passes, and when it does not. */
import { describe, expect, test } from "bun:test";
import { checkArgv, criuEnv, dumpArgv, formatArgv, restoreArgv, type SharedCriuOptions } from "../../src/criu/argv.ts";
import { restoreArgvFor, targetLabel } from "../../src/criu/restore-run.ts";
import type { ManifestOptions, Target } from "../../src/state/manifest.ts";
import { redisTarget } from "../lib/targets.ts";

const base: SharedCriuOptions = {
  shellJob: false,
  tcpEstablished: true,
  extUnixSk: true,
  fileLocks: true,
  pinMemory: false,
  displayStats: true,
};

describe("dumpArgv", () => {
  test("a daemon: leave-stopped, tcp, external unix sockets, file locks, log in the images dir", () => {
    const a = dumpArgv({ ...base, pid: 948, imagesDir: "/var/nvwa/running/redis.service" });
    expect(a).toEqual([
      "dump", "--tree", "948", "--images-dir", "/var/nvwa/running/redis.service", "--log-file", "dump.log",
      "--leave-stopped", "--tcp-established", "--ext-unix-sk", "--file-locks", "--display-stats",
    ]);
    expect(a).not.toContain("--shell-job");
    expect(a).not.toContain("--pin-memory");
  });

  test("a shell job, nftables lock, pin memory and debug verbosity", () => {
    const a = dumpArgv({ ...base, pid: 7, imagesDir: "/d/7", shellJob: true, networkLock: "nftables", pinMemory: true, verbosity: 4 });
    expect(a).toContain("--shell-job");
    expect(a.slice(a.indexOf("--network-lock"), a.indexOf("--network-lock") + 2)).toEqual(["--network-lock", "nftables"]);
    expect(a).toContain("--pin-memory");
    expect(a).toContain("-v4");
  });

  test("leave-stopped can be turned off only explicitly; externals and timeout", () => {
    const a = dumpArgv({ ...base, pid: 7, imagesDir: "/d", leaveStopped: false, externals: ["unix[123]"], collectTimeoutS: 30 });
    expect(a).not.toContain("--leave-stopped");
    expect(a.join(" ")).toContain("--external unix[123]");
    expect(a.join(" ")).toContain("--timeout 30");
  });

  test("verbosity is clamped to criu's 0-4", () => {
    expect(dumpArgv({ ...base, pid: 1, imagesDir: "/d", verbosity: 9 })).toContain("-v4");
  });

  test("a bad pid is a programming error", () => {
    expect(() => dumpArgv({ ...base, pid: 0, imagesDir: "/d" })).toThrow(RangeError);
  });
});

describe("restoreArgv", () => {
  test("detached by default, same shared options as the dump, restore.log", () => {
    const a = restoreArgv({ ...base, imagesDir: "/d/x", shellJob: true, networkLock: "nftables" });
    expect(a.slice(0, 6)).toEqual(["restore", "--images-dir", "/d/x", "--log-file", "restore.log", "--restore-detached"]);
    for (const f of ["--shell-job", "--tcp-established", "--ext-unix-sk", "--file-locks", "--display-stats"]) expect(a).toContain(f);
  });

  test("service options: pidfile, manage-cgroups=ignore, inherited fds", () => {
    const a = restoreArgv({
      ...base,
      imagesDir: "/d/redis.service",
      pidfile: "/run/redis.pid",
      manageCgroups: "ignore",
      inheritFds: [{ fd: 3, resource: "socket:[4242]" }],
    });
    expect(a.join(" ")).toContain("--pidfile /run/redis.pid");
    expect(a).toContain("--manage-cgroups=ignore");
    // criu keys a unix socket as socket:[INO] (sk-unix.c socket_d_name); its 3.17 help text says socket[INO], which never matches.
    expect(a.join(" ")).toContain("--inherit-fd fd[3]:socket:[4242]");
  });

  test("not detached when asked", () => {
    expect(restoreArgv({ ...base, imagesDir: "/d", detached: false })).not.toContain("--restore-detached");
  });
});

test("criuEnv: no hardware breakpoints unless they are known to work", () => {
  expect(criuEnv({ hardwareBreakpoints: false })).toEqual({ CRIU_FAULT: "130" });
  expect(criuEnv({ hardwareBreakpoints: true })).toEqual({});
});

test("checkArgv", () => {
  expect(checkArgv()).toEqual(["check"]);
  expect(checkArgv("network_lock_nftables")).toEqual(["check", "--feature", "network_lock_nftables"]);
});

test("formatArgv quotes what a shell would split", () => {
  expect(formatArgv("/usr/sbin/criu", ["dump", "--images-dir", "/a b/it's"])).toBe(`/usr/sbin/criu dump --images-dir '/a b/it'\\''s'`);
});

describe("restoreArgvFor: a restore repeats what the dump recorded", () => {
  const target: Target = redisTarget({ shellJob: true, tcpConnections: true });
  const options: ManifestOptions = { debug: true, pinMemory: false, restoreNet: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, networkLock: "nftables", hardwareBreakpoints: false, rehearsal: false, lazyRestore: false };

  test("shell job from the target, lock method and debug from the options, service extras", () => {
    const a = restoreArgvFor(target, { criuExe: "/usr/sbin/criu", options, pidfile: "/run/nvwa/redis.pid", manageCgroups: "ignore" });
    expect(a.slice(0, 3)).toEqual(["restore", "--images-dir", "/var/nvwa/running/redis.service"]);
    for (const f of ["--restore-detached", "--shell-job", "--tcp-established", "--ext-unix-sk", "--file-locks", "-v4", "--manage-cgroups=ignore"]) expect(a).toContain(f);
    expect(a.join(" ")).toContain("--network-lock nftables");
    expect(a.join(" ")).toContain("--pidfile /run/nvwa/redis.pid");
  });

  test("targetLabel", () => {
    expect(targetLabel(target)).toBe("redis.service (pid 948)");
    expect(targetLabel({ ...target, kind: "pid", name: "948" })).toBe("pid 948");
  });
});
