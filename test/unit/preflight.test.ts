/**
 * Preflight: the pure evaluation over fixture facts (a healthy machine, then one thing wrong
 * at a time), and the probes that fill the facts, run for real on this host where they only
 * read (/proc, statfs, a child process of the test, files in a temp dir).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS, type NvwaConfig } from "../../src/config/types.ts";
import { renderError } from "../../src/cli/render.ts";
import { startServer } from "../../src/daemon/socket-server.ts";
import { isNvwaError, type NvwaError } from "../../src/errors.ts";
import { parseIomem } from "../../src/mem/iomem.ts";
import { acquireLock } from "../../src/state/lock.ts";
import type { ServiceProperties } from "../../src/systemd/units.ts";
import type { Facts } from "../../src/update/facts-types.ts";
import {
  nrCpusFromConfig,
  parseLockPid,
  parseVmRss,
  probeCriuDir,
  probeKernel,
  probeLock,
  probePids,
  systemConfFiles,
} from "../../src/update/facts.ts";
import { assertPreflight, evaluatePreflight, MAX_LISTED_FAILURES } from "../../src/update/preflight.ts";
import { checkServices } from "../../src/update/preflight-services.ts";
import type { Check } from "../../src/update/preflight-types.ts";
import { checkKexecWatchdog, mergeWatchdogSettings, watchdogSeconds } from "../../src/update/preflight-watchdog.ts";
import { realKernel } from "../fixtures/kernels/kernels.ts";
import { serviceProps } from "../lib/service-props.ts";

const FIX = join(import.meta.dir, "../fixtures/iomem");
const OE = "arm64-openeuler-derived-accelerations";
const MiB = 1024 * 1024;

function config(over: Partial<NvwaConfig["restore"]> = {}, server: Partial<NvwaConfig["server"]> = {}): NvwaConfig {
  return {
    restore: { ...RESTORE_DEFAULTS, pids: [4242], ...over },
    server: { ...SERVER_DEFAULTS, ...server },
    files: { restore: null, server: null },
  };
}

/** An openEuler arm64 edge box where everything is in order. */
function healthy(): Facts {
  return {
    arch: "arm64",
    runningRelease: "5.10.0-60.oe2203.aarch64",
    uid: 0,
    pid: 100,
    cmdline: readFileSync(join(FIX, `${OE}.cmdline`), "utf8").trim(),
    kexec: { core: true, loaded: false, nvwaUpdate: null, fileLoad: { kind: "available" }, loadDisabled: false, exe: "/usr/sbin/kexec", exeExists: true, firmwareFdt: true },
    lockdown: "none",
    secureBoot: false,
    selinux: null,
    iomem: parseIomem(readFileSync(join(FIX, `${OE}.txt`), "utf8")),
    devPinmem: true,
    nrCpus: 1024,
    kernel: {
      version: "5.10.0-136.oe2203sp1.aarch64",
      versionProblem: null,
      kernelPath: "/boot/vmlinuz-5.10.0-136.oe2203sp1.aarch64",
      initrdPath: "/boot/initramfs-5.10.0-136.oe2203sp1.aarch64.img",
      triedKernels: [],
      triedInitrds: [],
      image: { ok: true, format: "gzip-compressed data → arm64 Image (little-endian, signed)", unwrapped: ["gzip"], bytes: 33 * MiB, signed: true },
      initrdBytes: 30 * MiB,
    },
    criu: { exe: "/usr/sbin/criu", exists: true, exitCode: 0, output: "Looks good.", timedOut: false, memTrack: null },
    pids: [{ pid: 4242, alive: true, zombie: false, kernelThread: false, comm: "redis-server", treePids: [4242, 4243], rssBytes: 200 * MiB }],
    criuDir: { path: "/var/nvwa/running/", probedPath: "/var/nvwa/running/", fsType: "ext4", freeBytes: 20 * 1024 * MiB },
    lock: { path: "/var/nvwa/running/nvwa.lock", exists: false, pid: null, alive: null },
    watchdog: { kexecWatchdogSec: null, runtimeWatchdogSec: null, kexecSource: null, runtimeSource: null },
    watchdogDevices: [],
    capabilities: { journalStdio: false },
  };
}

const statusOf = (checks: Check[], id: string): string | undefined => checks.find((c) => c.id === id)?.status;
const row = (checks: Check[], id: string): Check | undefined => checks.find((c) => c.id === id);

describe("evaluatePreflight", () => {
  test("a loaded kernel is nvwa's only while its update on this boot is in flight; any other is a warning naming the trap (#17)", () => {
    const loaded = (nvwaUpdate: Facts["kexec"]["nvwaUpdate"]): Check | undefined => {
      const f = healthy();
      return row(evaluatePreflight({ ...f, kexec: { ...f.kexec, loaded: true, nvwaUpdate } }, config()), "kexec.support");
    };
    const u = { updateId: "20261206T120000Z-beef", phase: "dumped", loader: "kexec_file_load", sameBoot: true };
    expect(loaded(u)).toMatchObject({ status: "ok", detail: "the loaded kernel is nvwa's: update 20261206T120000Z-beef is dumped" });
    for (const other of [null, { ...u, sameBoot: false }, { ...u, phase: "rolled-back" }, { ...u, phase: "restored" }, { updateId: u.updateId, phase: "jumping", sameBoot: true }]) {
      const c = loaded(other);
      expect(c?.status).toBe("warn");
      expect(c?.detail).toContain("a kernel that nvwa did not load is loaded for kexec");
      expect(c?.detail).toContain("jumps into it with nothing checkpointed");
      expect(c?.fix).toContain("kexec -u");
    }
  });
  test("a healthy machine with every acceleration on passes with no warnings", () => {
    const checks = evaluatePreflight(healthy(), config({ enableQuickKexec: true, enablePinMemory: true }));
    expect(checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(row(checks, "kexec.loader")?.detail).toStartWith("kexec_load: quick kexec is enabled");
    expect(checks.map((c) => c.id)).toEqual([
      "privileges",
      "kernel.image",
      "kernel.initrd",
      "kexec.support",
      "kexec.loader",
      "kexec.lockdown",
      "criu.check",
      "target.pid.4242",
      "criu-dir.fs",
      "criu-dir.space",
      "selinux",
      "accel.quick-kexec",
      "accel.pin-memory.cmdline",
      "accel.pin-memory.region",
      "accel.pin-memory.device",
      "accel.pin-memory.targets",
      "accel.cpu-park",
      "update.lock",
      "systemd.kexec-watchdog",
    ]);
    expect(() => assertPreflight(checks)).not.toThrow();
  });

  test("every fail and warn carries a fix", () => {
    const f = healthy();
    f.uid = 1000;
    f.kexec = { ...f.kexec, core: false, fileLoad: { kind: "missing" } };
    f.criuDir = { ...f.criuDir, fsType: "tmpfs", freeBytes: 1 };
    f.selinux = "enforcing";
    f.lock = { path: "/x/nvwa.lock", exists: true, pid: 99999999, alive: false };
    const checks = evaluatePreflight(f, config({ enableQuickKexec: true, enablePinMemory: true, pids: [4242, 777] }));
    for (const c of checks.filter((x) => x.status !== "ok")) expect(c.fix ?? "").not.toBe("");
  });

  test("the loader row names the loader and why on a kernel without kexec_file_load: native on arm64, kexec-tools on x86_64", () => {
    const f = healthy();
    f.kexec.fileLoad = { kind: "missing" };
    f.kexec.exeExists = false;
    const c = row(evaluatePreflight(f, config()), "kexec.loader");
    expect(c?.status).toBe("ok");
    expect(c?.detail).toStartWith("kexec_load: ");
    expect(c?.detail).toContain("CONFIG_KEXEC_FILE");
    expect(row(evaluatePreflight(f, config({}, { kexecLoader: "kexec_exe" })), "kexec.loader")?.status).toBe("fail");
    f.arch = "x64";
    expect(statusOf(evaluatePreflight(f, config()), "kexec.loader")).toBe("fail");
    f.kexec.exeExists = true;
    const x = row(evaluatePreflight(f, config()), "kexec.loader");
    expect(x?.detail).toContain("kexec_exe -c");
    expect(x?.detail).toContain("CONFIG_KEXEC_FILE");
  });

  test("on a kernel without kexec at all (this host), support and loader fail and say why", () => {
    const f = healthy();
    f.kexec = { ...f.kexec, core: false, loaded: null, fileLoad: { kind: "missing" } };
    const checks = evaluatePreflight(f, config());
    expect(row(checks, "kexec.support")?.detail).toContain("CONFIG_KEXEC_CORE");
    expect(row(checks, "kexec.loader")?.detail).toContain("ENOSYS");
    expect(() => assertPreflight(checks)).toThrow();
  });

  test("lockdown: signed image ok, unsigned fails, unwrapped-and-unsigned fails, kexec_exe fails", () => {
    const f = healthy();
    f.lockdown = "integrity";
    f.secureBoot = true;
    expect(row(evaluatePreflight(f, config()), "kexec.lockdown")?.status).toBe("ok");
    if (f.kernel?.image?.ok) f.kernel.image.signed = false;
    const unwrapped = row(evaluatePreflight(f, config()), "kexec.lockdown");
    expect(unwrapped?.status).toBe("fail");
    expect(unwrapped?.detail).toContain("a wrapper's signature does not cover its payload");
    if (f.kernel?.image?.ok) f.kernel.image.unwrapped = [];
    expect(row(evaluatePreflight(f, config()), "kexec.lockdown")?.detail).toContain("is not signed");
    f.kexec.fileLoad = { kind: "missing" };
    expect(statusOf(evaluatePreflight(f, config()), "kexec.loader")).toBe("fail"); // kexec_load is refused in lockdown
  });

  test("targets: dead pid, kernel thread, pid 1, nvwa itself", () => {
    const f = healthy();
    f.pids.push({ pid: 2, alive: true, zombie: false, kernelThread: true, comm: "kthreadd", treePids: [2], rssBytes: 0 });
    const checks = evaluatePreflight(f, config({ pids: [4242, 777, 2, 100] }));
    expect(row(checks, "target.pid.777")?.detail).toContain("no process with pid 777");
    expect(row(checks, "target.pid.2")?.detail).toContain("kernel thread");
    expect(row(checks, "target.pid.100")?.detail).toContain("nvwa itself");
    expect(statusOf(checks, "target.pid.4242")).toBe("ok");
  });

  test("criu_dir: tmpfs fails; free space below the targets' memory fails; thin margin warns", () => {
    const f = healthy();
    f.criuDir = { path: "/run/nvwa/", probedPath: "/run", fsType: "tmpfs", freeBytes: 100 * MiB };
    const checks = evaluatePreflight(f, config());
    expect(row(checks, "criu-dir.fs")?.detail).toContain("does not survive the jump");
    expect(statusOf(checks, "criu-dir.space")).toBe("fail");
    f.criuDir.freeBytes = 300 * MiB;
    expect(statusOf(evaluatePreflight(f, config()), "criu-dir.space")).toBe("warn");
  });

  test("criu_dir space counts the services' trees too", () => {
    const f = healthy();
    f.criuDir = { path: "/var/nvwa/running/", probedPath: "/var/nvwa/running/", fsType: "ext4", freeBytes: 10_000 * MiB };
    const before = row(evaluatePreflight(f, config()), "criu-dir.space")?.detail ?? "";
    f.serviceTrees = [{ pid: 30002, alive: true, zombie: false, kernelThread: false, comm: "redis-server", treePids: [30002], rssBytes: 20_000 * MiB }];
    const after = row(evaluatePreflight(f, config()), "criu-dir.space");
    expect(after?.status).toBe("fail");
    expect(after?.detail).not.toBe(before);
    expect(after?.detail).not.toContain("not counted");
  });

  test("criu check: missing binary, failure, warnings", () => {
    const f = healthy();
    f.criu = { exe: "/usr/sbin/criu", exists: false, exitCode: null, output: "", timedOut: false, memTrack: null };
    expect(row(evaluatePreflight(f, config()), "criu.check")?.fix).toContain("install criu");
    f.criu = { exe: "/usr/sbin/criu", exists: true, exitCode: 1, output: "Error (criu/vdso.c:1): vdso: Failed to fill self vdso symtable", timedOut: false, memTrack: null };
    expect(row(evaluatePreflight(f, config()), "criu.check")?.detail).toContain("vdso");
    f.criu = { exe: "/usr/sbin/criu", exists: true, exitCode: 0, output: "Looks good but some kernel features are missing\nwhich, depending on your process tree, may cause\ndump or restore failure.", timedOut: false, memTrack: null };
    expect(statusOf(evaluatePreflight(f, config()), "criu.check")).toBe("warn");
    // Seen in the guest: an optional probe's error line above "Looks good." with exit 0.
    f.criu = { exe: "/usr/sbin/criu", exists: true, exitCode: 0, output: "Error (criu/util.c:642): exited, status=1\nLooks good.", timedOut: false, memTrack: null };
    expect(row(evaluatePreflight(f, config()), "criu.check")).toMatchObject({ status: "warn", detail: "/usr/sbin/criu check passed with 1 message(s), first: Error (criu/util.c:642): exited, status=1" });
  });

  test("enable_pre_dump: a row only when asked; ok with soft-dirty, a warning without it (arm64: none), and a quarter more space", () => {
    const f = healthy();
    expect(row(evaluatePreflight(f, config()), "criu.pre-dump")).toBeUndefined();
    const on = config({ enablePreDump: true });
    f.criu = { exe: "/usr/sbin/criu", exists: true, exitCode: 0, output: "Looks good.", timedOut: false, memTrack: true };
    expect(row(evaluatePreflight(f, on), "criu.pre-dump")).toMatchObject({ status: "ok" });
    f.criu = { ...f.criu, memTrack: false };
    const arm = row(evaluatePreflight(f, on), "criu.pre-dump");
    expect(arm?.status).toBe("warn");
    expect(arm?.detail).toContain("arm64 has no soft-dirty page tracking");
    expect(arm?.detail).toContain("dumped in full while frozen");
    f.arch = "x64";
    expect(row(evaluatePreflight(f, on), "criu.pre-dump")?.fix).toContain("CONFIG_MEM_SOFT_DIRTY=y");
    // free space: enough for the memory alone, not for the rounds as well
    f.pids = f.pids.map((p) => ({ ...p, rssBytes: 1 << 30 }));
    f.criuDir = { ...f.criuDir, freeBytes: Math.round(1.1 * (1 << 30)) };
    expect(statusOf(evaluatePreflight(f, config()), "criu-dir.space")).toBe("warn");
    expect(statusOf(evaluatePreflight(f, on), "criu-dir.space")).toBe("fail");
  });

  test("enable_lazy_restore: a row only when asked; ok with uffd-noncoop, a warning without it or with pin memory", () => {
    const f = healthy();
    expect(row(evaluatePreflight(f, config()), "criu.lazy-restore")).toBeUndefined();
    const on = config({ enableLazyRestore: true });
    f.criu = { exe: "/usr/sbin/criu", exists: true, exitCode: 0, output: "Looks good.", timedOut: false, memTrack: null, uffd: true };
    expect(row(evaluatePreflight(f, on), "criu.lazy-restore")).toMatchObject({ status: "ok" });
    expect(row(evaluatePreflight(f, on), "criu.lazy-restore")?.detail).toContain("killed and reported lost");
    f.criu = { ...f.criu, uffd: false };
    expect(row(evaluatePreflight(f, on), "criu.lazy-restore")).toMatchObject({ status: "warn", fix: "boot kernels with CONFIG_USERFAULTFD=y, or set enable_lazy_restore: false to silence this" });
    f.criu = { ...f.criu, uffd: true };
    expect(row(evaluatePreflight(f, config({ enableLazyRestore: true, enablePinMemory: true })), "criu.lazy-restore")?.detail).toStartWith("enable_pin_memory keeps memory in place");
  });

  test("lock: a live update fails, a stale lock warns", () => {
    const f = healthy();
    f.lock = { path: "/var/nvwa/running/nvwa.lock", exists: true, pid: 555, alive: true };
    expect(row(evaluatePreflight(f, config()), "update.lock")?.detail).toContain("already running (pid 555");
    f.lock.alive = false;
    expect(statusOf(evaluatePreflight(f, config()), "update.lock")).toBe("warn");
  });

  test("SELinux enforcing warns; same kernel as running warns", () => {
    const f = healthy();
    f.selinux = "enforcing";
    if (f.kernel) f.kernel.version = f.runningRelease;
    const checks = evaluatePreflight(f, config());
    expect(statusOf(checks, "selinux")).toBe("warn");
    expect(statusOf(checks, "kernel.same")).toBe("warn");
  });

  test("assertPreflight throws preflight.failed with exit code 3 and the failed checks", () => {
    const f = healthy();
    f.devPinmem = false;
    try {
      assertPreflight(evaluatePreflight(f, config({ enablePinMemory: true })));
      throw new Error("did not throw");
    } catch (e) {
      expect(isNvwaError(e) && e.code).toBe("preflight.failed");
      expect(isNvwaError(e) && e.exitCode).toBe(3);
      expect(isNvwaError(e) && (e.details.failed as Check[]).map((c) => c.id)).toEqual(["accel.pin-memory.device"]);
    }
  });
});

describe("services", () => {
  const svc = (over: Partial<ServiceProperties>): ServiceProperties => serviceProps(over);

  test("a checkpointable service is ok", () => {
    expect(checkServices(["redis.service"], [svc({})], "/etc/systemd/system/")[0]?.status).toBe("ok");
  });

  test("journal output and PrivateTmp fail with one drop-in that fixes both", () => {
    const [c] = checkServices(["redis.service"], [svc({ standardOutput: "journal", standardError: "inherit", privateTmp: true })], "/etc/systemd/system/");
    expect(c?.status).toBe("fail");
    expect(c?.detail).toContain("journal");
    expect(c?.detail).toContain("PrivateTmp");
    expect(c?.fix).toContain("mkdir -p /etc/systemd/system/redis.service.d");
    expect(c?.fix).toContain("StandardOutput=append:/var/log/redis.log");
    expect(c?.fix).toContain("PrivateTmp=no");
    expect(c?.fix).toContain("systemctl daemon-reload && systemctl restart redis.service");
  });

  test("inactive and dbus-type services fail; unknown units fail", () => {
    const checks = checkServices(["a.service", "b.service", "c.service"], [svc({ unit: "a.service", activeState: "inactive" }), svc({ unit: "b.service", type: "dbus" }), svc({ unit: "c.service", loadState: "not-found" })], "/etc/systemd/system/");
    expect(checks.map((c) => c.status)).toEqual(["fail", "fail", "fail"]);
  });

  test("services that could not be inspected are a warning, never an ok", () => {
    const [c] = checkServices(["redis.service"], undefined, "/etc/systemd/system/", false, "cannot connect to /run/systemd/private: ENOENT");
    expect(c?.status).toBe("warn");
    expect(c?.detail).toContain("ENOENT");
  });
});

describe("watchdog", () => {
  test("systemd time spans", () => {
    expect(watchdogSeconds("10min")).toBe(600);
    expect(watchdogSeconds("1h 30s")).toBe(3630);
    expect(watchdogSeconds("45")).toBe(45);
    expect(watchdogSeconds("off")).toBeNull();
    expect(watchdogSeconds("0")).toBeNull();
    expect(watchdogSeconds("infinity")).toBe(Infinity);
    expect(Number.isNaN(watchdogSeconds("default"))).toBe(true);
  });

  test("drop-ins override system.conf; armed across kexec warns with the value and its file", () => {
    const s = mergeWatchdogSettings([
      { path: "/etc/systemd/system.conf", text: "[Manager]\n#KExecWatchdogSec=off\nRuntimeWatchdogSec=30s\nKExecWatchdogSec=off\n" },
      { path: "/etc/systemd/system.conf.d/50-wd.conf", text: "[Manager]\nKExecWatchdogSec=2min\n[Other]\nKExecWatchdogSec=9\n" },
    ]);
    expect(s).toEqual({ kexecWatchdogSec: "2min", runtimeWatchdogSec: "30s", kexecSource: "/etc/systemd/system.conf.d/50-wd.conf", runtimeSource: "/etc/systemd/system.conf" });
    const c = checkKexecWatchdog(s, ["/dev/watchdog0"]);
    expect(c.status).toBe("warn");
    expect(c.detail).toContain("120 s");
    expect(c.detail).toContain("50-wd.conf");
  });

  test("runtime watchdog on but disarmed for kexec is ok", () => {
    const c = checkKexecWatchdog({ kexecWatchdogSec: "off", runtimeWatchdogSec: "30s", kexecSource: null, runtimeSource: null }, []);
    expect(c.status).toBe("ok");
    expect(c.detail).toContain("disarms");
  });

  test("systemConfFiles reads system.conf then drop-ins by name, /etc winning over /usr/lib", () => {
    const root = mkdtempSync(join(tmpdir(), "nvwa-sd-"));
    try {
      const etc = join(root, "etc");
      const lib = join(root, "lib");
      mkdirSync(join(etc, "system.conf.d"), { recursive: true });
      mkdirSync(join(lib, "system.conf.d"), { recursive: true });
      writeFileSync(join(etc, "system.conf"), "[Manager]\n");
      writeFileSync(join(lib, "system.conf.d", "10-a.conf"), "[Manager]\nKExecWatchdogSec=1min\n");
      writeFileSync(join(lib, "system.conf.d", "20-b.conf"), "[Manager]\nKExecWatchdogSec=5min\n");
      writeFileSync(join(etc, "system.conf.d", "20-b.conf"), "[Manager]\nKExecWatchdogSec=off\n");
      const files = systemConfFiles(etc, [lib]);
      expect(files.map((f) => f.path.slice(root.length))).toEqual(["/etc/system.conf", "/lib/system.conf.d/10-a.conf", "/etc/system.conf.d/20-b.conf"]);
      expect(mergeWatchdogSettings(files).kexecWatchdogSec).toBe("off");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("probes on this host", () => {
  let child: ReturnType<typeof Bun.spawn>;
  beforeAll(() => {
    // A small process tree of our own: sh → sleep.
    child = Bun.spawn(["sh", "-c", "sleep 60 & wait"], { stdio: ["ignore", "ignore", "ignore"] });
  });
  afterAll(() => {
    child.kill();
  });

  test("probePids sees our child alive with its tree and memory; a free pid is dead", async () => {
    await Bun.sleep(200); // let sh fork sleep
    const [p, gone] = probePids([child.pid, 2 ** 22 + 7]);
    expect(p?.alive).toBe(true);
    expect(p?.comm).toBe("sh");
    expect(p?.treePids.length).toBe(2);
    expect(p?.rssBytes).toBeGreaterThan(0);
    expect(p?.kernelThread).toBe(false);
    expect(gone?.alive).toBe(false);
  });

  test("kthreadd (pid 2) is recognised as a kernel thread", () => {
    expect(probePids([2])[0]?.kernelThread).toBe(true);
  });

  test("parseVmRss reads the resident size in bytes", () => {
    expect(parseVmRss("Name:\tx\nVmRSS:\t   1234 kB\n")).toBe(1234 * 1024);
    expect(parseVmRss("Name:\tkthreadd\n")).toBe(0);
  });

  test("probeCriuDir: /dev/shm is tmpfs, a directory to be created is judged by its parent", () => {
    expect(probeCriuDir("/dev/shm/nvwa-test-x").fsType).toBe("tmpfs");
    const d = probeCriuDir("/var/tmp/nvwa-does-not-exist/sub/");
    expect(d.probedPath).toBe("/var/tmp");
    expect(d.freeBytes).toBeGreaterThan(0);
  });

  test("probeLock: held means flock'ed by another process; a live pid named in a free lock file (reused after a reboot) and our own hold do not count", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nvwa-lock-"));
    const path = join(dir, "nvwa.lock");
    try {
      expect(probeLock(dir).exists).toBe(false);
      // Left over: the file names a live process, but nobody holds the lock.
      writeFileSync(path, JSON.stringify({ pid: process.ppid, update: "u-1" }));
      expect(probeLock(dir)).toMatchObject({ exists: true, pid: process.ppid, alive: false });
      writeFileSync(path, `${2 ** 22 + 7}\n`);
      expect(probeLock(dir)).toMatchObject({ pid: 2 ** 22 + 7, alive: false });
      // Another process holds it: util-linux flock(1) keeps an exclusive flock while its command
      // runs (--close: the command itself does not inherit it, so killing flock frees it).
      const holder = Bun.spawn(["flock", "--close", path, "sh", "-c", "echo locked; exec sleep 30"], { stdout: "pipe" });
      try {
        const reader = holder.stdout.getReader();
        await reader.read(); // "locked": the flock is taken
        reader.releaseLock();
        expect(probeLock(dir)).toMatchObject({ exists: true, pid: 2 ** 22 + 7, alive: true });
      } finally {
        holder.kill();
        await holder.exited;
      }
      // The daemon itself holds it while it runs the checks: not "another update".
      const own = acquireLock(path, "update");
      try {
        expect(probeLock(dir)).toMatchObject({ exists: true, pid: process.pid, alive: false });
      } finally {
        own.release();
      }
      expect(parseLockPid("garbage")).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("nrCpusFromConfig", () => {
    expect(nrCpusFromConfig("CONFIG_SMP=y\nCONFIG_NR_CPUS=4096\n")).toBe(4096);
    expect(nrCpusFromConfig("")).toBeNull();
  });
});

describe("probeKernel on real Debian kernels", () => {
  let boot: string;
  beforeAll(() => {
    boot = mkdtempSync(join(tmpdir(), "nvwa-boot-"));
    const amd = realKernel("bookworm", "amd64");
    const arm = realKernel("bookworm", "arm64");
    copyFileSync(amd.path, join(boot, "vmlinuz-6.1.0-50-amd64"));
    writeFileSync(join(boot, "initrd.img-6.1.0-50-amd64"), new Uint8Array(4096));
    // An Image.gz as other distributions install it, to see the unwrap reported.
    writeFileSync(join(boot, "vmlinuz-6.1.0-50-arm64"), gzipSync(arm.bytes, { level: 1 }));
    writeFileSync(join(boot, "initramfs-6.1.0-50-arm64.img"), new Uint8Array(8192));
  }, 600_000);
  afterAll(() => rmSync(boot, { recursive: true, force: true }));

  test("amd64: signed bzImage, Debian's initrd name", () => {
    const k = probeKernel("6.1.0-50-amd64", "x64", boot, boot);
    expect(k.initrdPath).toBe(join(boot, "initrd.img-6.1.0-50-amd64"));
    expect(k.image).toMatchObject({ ok: true, unwrapped: [], signed: true });
  });

  test("arm64 Image.gz: unwrapped, the seed's initramfs name, the inner Image keeps its own signature", () => {
    const k = probeKernel("6.1.0-50-arm64", "arm64", boot, boot);
    expect(k.initrdPath).toBe(join(boot, "initramfs-6.1.0-50-arm64.img"));
    expect(k.image).toMatchObject({ ok: true, unwrapped: ["gzip"], signed: true });
    expect(k.initrdBytes).toBe(8192);
  });

  test("the wrong architecture and a bad version are facts, not exceptions", () => {
    const k = probeKernel("6.1.0-50-amd64", "arm64", boot, boot);
    expect(k.image?.ok).toBe(false);
    expect(k.image?.ok === false && k.image.message).toContain("x86 bzImage");
    expect(probeKernel("../../etc/passwd", "x64", boot, boot).versionProblem).toContain("'/'");
    expect(probeKernel("6.9.9", "x64", boot, boot)).toMatchObject({ kernelPath: null, image: null });
  });
});

describe("a refused update says why (issue 12: no second command needed)", () => {
  const V = "9.9.9-nonexistent";
  /** The healthy box asked for a kernel that is not installed: /boot is only looked at. */
  const missingKernel = (): Facts => ({ ...healthy(), kernel: probeKernel(V, "arm64") });
  const refusal = (checks: Check[], version?: string): NvwaError => {
    try {
      assertPreflight(checks, version);
    } catch (e) {
      if (isNvwaError(e)) return e;
      throw e;
    }
    throw new Error("assertPreflight did not refuse");
  };

  test("each failed check on a line of its own: title, what was found naming the file, the fix", () => {
    const e = refusal(evaluatePreflight(missingKernel(), config()), V);
    expect(e.code).toBe("preflight.failed");
    expect(e.exitCode).toBe(3);
    expect(e.message.split("\n")).toEqual([
      "preflight failed (2 checks):",
      `  kernel image: no kernel image for ${V}: tried /boot/vmlinuz-${V}, /usr/lib/modules/${V}/vmlinuz — install the kernel package for ${V}`,
      `  initramfs: no initramfs for ${V}: tried /boot/initramfs-${V}.img, /boot/initrd.img-${V}, /usr/lib/modules/${V}/initrd — build it: \`dracut --kver ${V}\` (openEuler/Fedora) or \`update-initramfs -c -k ${V}\` (Debian)`,
    ]);
    expect(e.hint).toBe(`nothing was changed; \`nvwa check ${V}\` shows every check, warnings included`);
    expect((e.details.failed as Check[]).map((c) => c.id)).toEqual(["kernel.image", "kernel.initrd"]);
    // What the person sees (src/cli/render.ts): the same lines, the hint and the code last.
    expect(renderError(e)).toEqual({
      line: [`nvwa: preflight failed (2 checks):`, ...e.message.split("\n").slice(1), `  ${e.hint} [preflight.failed]`].join("\n"),
      exitCode: 3,
    });
  });

  test("one failed check stays one line with its fix as the hint", () => {
    const f = healthy();
    f.devPinmem = false;
    const e = refusal(evaluatePreflight(f, config({ enablePinMemory: true })), "6.6.0-1");
    expect(e.message).toStartWith("preflight failed: ");
    expect(e.message).not.toContain("\n");
    expect(e.hint).toBe(row(evaluatePreflight(f, config({ enablePinMemory: true })), "accel.pin-memory.device")?.fix);
    expect(renderError(e).line).toBe(`nvwa: ${e.message} — ${e.hint} [preflight.failed]`);
  });

  test(`at most ${MAX_LISTED_FAILURES} are listed, then how many more and the command that shows them`, () => {
    const checks: Check[] = Array.from({ length: MAX_LISTED_FAILURES + 3 }, (_, i) => ({
      id: `x.${i}`,
      title: `check ${i}`,
      status: "fail",
      detail: `problem ${i}\nwith a second line`,
      fix: `fix ${i}`,
    }));
    const e = refusal([...checks, { id: "ok", title: "fine", status: "ok", detail: "fine" }], V);
    const lines = e.message.split("\n");
    expect(lines[0]).toBe(`preflight failed (${MAX_LISTED_FAILURES + 3} checks):`);
    expect(lines.slice(1, -1)).toEqual(Array.from({ length: MAX_LISTED_FAILURES }, (_, i) => `  check ${i}: problem ${i} with a second line — fix ${i}`));
    expect(lines.at(-1)).toBe(`  … and 3 more: nvwa check ${V}`);
    expect((e.details.failed as Check[]).length).toBe(MAX_LISTED_FAILURES + 3);
  });

  test("without a version the command names its placeholder", () => {
    const e = refusal(evaluatePreflight(missingKernel(), config()));
    expect(e.hint).toContain("`nvwa check <version>`");
  });

  test("`nvwa update` prints it all: from the daemon, over the socket, to the terminal", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nvwa-refusal-"));
    const socketPath = join(dir, "run", "nvwa.socket");
    const quiet = { debug() {}, info() {}, warn() {}, error() {} } as unknown as NonNullable<Parameters<typeof startServer>[0]["log"]>;
    const asked: string[] = [];
    const server = await startServer({
      socketPath,
      log: quiet,
      allowedUids: [process.getuid?.() ?? 0],
      handlers: {
        // The daemon's update as far as its preflight (src/update/run.ts: requirePreflight).
        update: async (params) => {
          asked.push(params.version);
          return assertPreflight(evaluatePreflight({ ...healthy(), kernel: probeKernel(params.version, "arm64") }, config()), params.version);
        },
        restore: async () => ({ unit: "x.service", mainPid: 2, pids: [2] }),
        status: () => ({}),
      },
    });
    try {
      // Bun.spawn, not spawnSync: this process serves the socket meanwhile.
      const p = Bun.spawn([process.execPath, join(import.meta.dir, "../../src/main.ts"), "update", V], {
        env: { ...process.env, NVWA_SOCKET: socketPath, NVWA_CONFIG_DIR: join(dir, "etc") },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
      expect(asked).toEqual([V]);
      expect(code).toBe(3);
      expect(out).toBe("");
      expect(err.split("\n")).toEqual([
        "nvwa: preflight failed (2 checks):",
        `  kernel image: no kernel image for ${V}: tried /boot/vmlinuz-${V}, /usr/lib/modules/${V}/vmlinuz — install the kernel package for ${V}`,
        `  initramfs: no initramfs for ${V}: tried /boot/initramfs-${V}.img, /boot/initrd.img-${V}, /usr/lib/modules/${V}/initrd — build it: \`dracut --kver ${V}\` (openEuler/Fedora) or \`update-initramfs -c -k ${V}\` (Debian)`,
        `  nothing was changed; \`nvwa check ${V}\` shows every check, warnings included [preflight.failed]`,
        "",
      ]);
    } finally {
      server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
