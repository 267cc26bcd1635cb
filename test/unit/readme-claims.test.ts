/**
 * README.md's Install, Troubleshooting and "Differences from the openEuler guide" sections, checked
 * against the code and files that do what they say: the package's file names and version, the
 * unit, what the daemon tells systemd, the log path, the reports of `nvwa check` and the restore.
 * Claims already covered elsewhere are not repeated here:
 *   `nvwa h` and "help, h" in the main help      test/unit/cli.test.ts
 *   YAML 1.1 booleans, enbale_debug_mode          test/unit/config.test.ts
 *   supported service types, dbus refused        test/unit/systemd-preflight.test.ts, systemd-dropins.test.ts
 *   a disabled unit is a warning, not a failure  test/unit/systemd-preflight.test.ts
 *   SELinux enforcing warns                       test/unit/preflight.test.ts
 *   "(during <step>; everything was rolled back)" test/unit/transaction.test.ts
 *   ns_last_pid moved past the highest saved pid  test/unit/restore-plan.test.ts
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KEY_FILE, REPO_FILE, repoFileText, rpmFileName, rpmVersionOf } from "../../build/rpm-plan.ts";
import { bindDatagram } from "../../ffi/unix.ts";
import { loadConfig } from "../../src/config/load.ts";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS, type NvwaConfig } from "../../src/config/types.ts";
import { DEFAULT_SOCKET_PATH, type ProgressEvent } from "../../src/daemon/protocol.ts";
import { updateLogPath } from "../../src/daemon/update-log.ts";
import { performUpdate } from "../../src/update/run.ts";
import { NvwaError } from "../../src/errors.ts";
import { checkQuickKexec } from "../../src/mem/accel.ts";
import { parseIomem } from "../../src/mem/iomem.ts";
import { pidClash } from "../../src/restore/plan.ts";
import { restoreServicesThroughUnits } from "../../src/restore/service-restore.ts";
import { readManifest, writeManifest } from "../../src/state/manifest-file.ts";
import { newManifest, type Target } from "../../src/state/manifest.ts";
import type { SystemdManager } from "../../src/systemd/manager.ts";
import { redisTarget } from "../lib/targets.ts";

const ROOT = join(import.meta.dir, "../..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const UNIT = readFileSync(join(ROOT, "rpm/nvwa.service"), "utf8");
const SPEC = readFileSync(join(ROOT, "rpm/nvwa.spec"), "utf8");
const VERSION = rpmVersionOf((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version);

/** Every value of `key=` in a unit file (comments and other sections' keys alike are plain lines). */
function unitValues(key: string): string[] {
  return UNIT.split("\n").flatMap((l) => (l.startsWith(`${key}=`) ? [l.slice(key.length + 1)] : []));
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `nvwa-readme-${tag}-`));
  dirs.push(d);
  return d;
}

describe("Install: the repo `bun run package` makes, and what the machine shows", () => {
  test("the shipped nvwa.repo, the key and the ISO are the ones the copy-paste block uses", () => {
    expect(README).toContain(`\`\`\`ini\n${repoFileText()}\`\`\``);
    expect(README).toContain(`cp /mnt/${REPO_FILE} /etc/yum.repos.d/local.repo`);
    expect(README).toContain(`rpm --import /mnt/${KEY_FILE}`);
    expect(README).toContain(`mount -o loop nvwa-${VERSION}.iso /mnt`);
  });

  test("`rpm -qa | grep nvwa` prints name-version-release.arch of the package built (release 1)", () => {
    for (const arch of ["x86_64", "aarch64"] as const) {
      const nevra = rpmFileName(VERSION, "1", arch).replace(/\.rpm$/, "");
      expect(README).toContain(nevra);
      expect(README).toContain(`Packages/${nevra}.rpm`);
    }
    // The spec's default release, when build/package.ts is not told otherwise.
    expect(SPEC).toContain("%{!?nvwa_release: %global nvwa_release 1}");
  });

  test("`systemctl status nvwa`: the unit's path, description, main process and socket", () => {
    expect(SPEC).toContain("/usr/lib/systemd/system/nvwa.service");
    const [description] = unitValues("Description");
    expect(README).toContain(`● nvwa.service - ${description}`);
    expect(README).toContain("Loaded: loaded (/usr/lib/systemd/system/nvwa.service; enabled;");
    expect(unitValues("Type")).toEqual(["notify"]);
    expect(unitValues("ExecStart")).toEqual(["/usr/bin/nvwa server"]);
    expect(README).toContain("└─1234 /usr/bin/nvwa server");
    expect(README).toContain(`listening on ${DEFAULT_SOCKET_PATH}`);
  });

  test('a daemon with nothing to restore tells systemd READY=1 and STATUS=ready (Status: "ready")', async () => {
    expect(README).toContain('Status: "ready"');
    const d = tempDir("server");
    const etc = join(d, "etc");
    mkdirSync(etc, { mode: 0o755 });
    writeFileSync(join(etc, "nvwa-server.yaml"), `criu_dir: ${d}/running/\nlog_dir: ${d}/log/\nsystemd_etc: ${d}/systemd/\n`, { mode: 0o600 });
    const rx = bindDatagram(join(d, "notify"));
    const socket = join(d, "run", "nvwa.socket");
    const server = Bun.spawn([process.execPath, join(ROOT, "src/main.ts"), "server", "--config-dir", etc], {
      env: { ...process.env, NVWA_SOCKET: socket, NOTIFY_SOCKET: join(d, "notify") },
      stdout: "ignore",
      stderr: "pipe",
    });
    try {
      const got = rx.receive(15_000);
      expect(got === undefined ? undefined : Buffer.from(got).toString("utf8")).toBe("READY=1\nSTATUS=ready");
    } finally {
      rx.close();
      server.kill("SIGKILL");
      await server.exited;
    }
  }, 20_000);
});

describe("Troubleshooting", () => {
  test("nvwa.service restarts a daemon that died, and starts before sysinit.target", () => {
    expect(unitValues("Restart")).toEqual(["on-failure"]);
    expect(unitValues("DefaultDependencies")).toEqual(["no"]);
    expect(unitValues("Before").join(" ").split(/\s+/)).toContain("sysinit.target");
  });

  test("the update log is <log_dir>/update-<id>.log, log_dir /etc/nvwa/log/ by default, in the shipped config and the package", () => {
    expect(SERVER_DEFAULTS.logDir).toBe("/etc/nvwa/log/");
    expect(updateLogPath(SERVER_DEFAULTS.logDir, "20260112T101530Z-4f2a")).toBe("/etc/nvwa/log/update-20260112T101530Z-4f2a.log");
    // The files the RPM installs as /etc/nvwa/*.yaml (euid 1000: the ownership rule is not what is tested).
    expect(loadConfig(join(ROOT, "rpm"), { euid: 1000 }).server.logDir).toBe(SERVER_DEFAULTS.logDir);
    expect(SPEC).toContain("%dir %attr(0700,root,root) %{_sysconfdir}/nvwa/log");
    expect(README).toContain("`ls -t /etc/nvwa/log/ \\| head -1`");
  });

  test("nvwa check names a Quick kexec region's overlap with both ranges", () => {
    const iomem = parseIomem(
      ["40000000-13fffffff : System RAM", "  40210000-4184ffff : Kernel code", "  60000000-6fffffff : Quick kexec", "  68000000-77ffffff : Crash kernel", ""].join("\n"),
    );
    const c = checkQuickKexec({
      arch: "arm64",
      cmdline: "root=/dev/vda1 quickkexec=256M crashkernel=256M",
      iomem,
      devPinmem: false,
      quickEnabled: true,
      pinEnabled: false,
      kernelBytes: 33 << 20,
      initrdBytes: 30 << 20,
      pinProcesses: null,
      targetRssBytes: null,
      nrCpus: null,
    });
    expect(c?.status).toBe("fail");
    const shown = 'the "Quick kexec" 0x60000000-0x6fffffff region overlaps "Crash kernel" 0x68000000-0x77ffffff';
    expect(c?.detail).toBe(shown);
    expect(README.replace(/\s+/g, " ")).toContain(shown);
  });

  test('a failed restore is kept until `nvwa init`: the next update is refused with "still in phase"', async () => {
    const d = tempDir("unfinished");
    const etc = join(d, "etc");
    mkdirSync(etc, { mode: 0o755 });
    writeFileSync(join(etc, "nvwa-server.yaml"), `criu_dir: ${d}/running/\nlog_dir: ${d}/log/\nsystemd_etc: ${d}/systemd/\n`, { mode: 0o600 });
    const m = newManifest({
      updateId: "u-failed",
      kernel: { from: "6.1", to: "6.12" },
      criuDir: join(d, "running"),
      options: { debug: false, pinMemory: false, restoreNet: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
    });
    writeManifest({ ...m, phase: "restore-failed" });
    const err = await performUpdate({ version: "6.12.9" }, null, { configDir: etc }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NvwaError);
    expect((err as NvwaError).message).toBe('update u-failed is still in phase "restore-failed"');
    expect((err as NvwaError).hint).toContain("`nvwa init` clears it");
    expect(README).toContain('`update … is still in phase "restore-failed"`');
  });

  test("a taken pid: the target is skipped by name, saying what criu would have said and what to do", () => {
    const redis: Target = {
      kind: "service",
      name: "redis.service",
      unit: "redis.service",
      rootPid: 948,
      pids: [948, 949],
      processes: [948],
      stoppedBefore: [],
      cmdline: ["/usr/bin/redis-server"],
      comm: "redis-server",
      imagesDir: "/var/nvwa/running/redis.service",
      shellJob: false,
      tcpConnections: false,
      phase: "killed",
      timings: {},
    };
    const e = pidClash(redis, new Map([[948, "sshd"]]));
    expect(e?.message).toBe("pid 948 of redis.service is taken by sshd");
    expect(README).toContain(`\`${e?.message}\``);
    expect(e?.hint).toContain("Can't fork for 948: File exists");
    expect(e?.hint).toContain("after nvwa.service");
  });
});

describe("Differences from the openEuler guide", () => {
  test("after the jump the daemon starts each checkpointed service's unit itself: enablement is never asked", async () => {
    const d = tempDir("restore");
    const criuDir = join(d, "running");
    const config: NvwaConfig = {
      restore: { ...RESTORE_DEFAULTS, services: ["redis.service"] },
      server: { ...SERVER_DEFAULTS, criuDir, systemdEtc: join(d, "systemd"), logDir: join(d, "log"), criuExe: "/nonexistent/criu" },
      files: { restore: null, server: null },
    };
    const m = newManifest({
      updateId: "u-enabled",
      kernel: { from: "6.1", to: "6.12" },
      criuDir,
      options: { debug: false, pinMemory: false, restoreNet: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
    });
    const svc: Target = redisTarget({ cmdline: ["/usr/bin/redis-server"], comm: "redis-server", imagesDir: join(criuDir, "redis.service") });
    writeManifest({ ...m, phase: "jumping", targets: [svc] });

    // A systemd that knows nothing of unit file states: it only records the start jobs asked for.
    const started: string[] = [];
    const mgr = {
      startUnitAndWait: async (unit: string) => {
        started.push(unit);
        return { job: "/org/freedesktop/systemd1/job/1", unit, result: "done" };
      },
    } as unknown as SystemdManager;
    const events: ProgressEvent[] = [];
    await restoreServicesThroughUnits(config, [svc], mgr, (e) => events.push(e));

    expect(started).toEqual(["redis.service"]);
    expect(events.map((e) => e.message)).toContain("redis.service: restoring its processes and starting the unit");
    // No images in this test: the target fails by name, which is not what is tested here.
    expect(readManifest(criuDir).targets[0]?.error?.code).toBe("restore.images-missing");
  });
});
