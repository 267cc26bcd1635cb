/**
 * The restore helper (`nvwa restore <unit>`) against a real daemon socket and a real
 * $NOTIFY_SOCKET bound by the test. Two parts are left out on this host and run in the guest:
 * moving pids into the unit's cgroup (it would reconfigure this machine's cgroups; the path
 * logic is unit-tested) and confirming MainPID with systemd (no systemd here), which is
 * replaced by a recorder.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bindDatagram, type DatagramReceiver } from "../../ffi/unix.ts";
import { runRestoreHelper } from "../../src/daemon/restore-helper.ts";
import { startServer, type DaemonServer } from "../../src/daemon/socket-server.ts";
import type { Handlers } from "../../src/daemon/server-requests.ts";
import { NvwaError } from "../../src/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "nvwa-helper-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let server: DaemonServer | undefined;
let rx: DatagramReceiver | undefined;
afterEach(() => {
  server?.stop();
  server = undefined;
  rx?.close();
  rx = undefined;
});

const quiet = { debug() {}, info() {}, warn() {}, error() {} } as unknown as NonNullable<Parameters<typeof startServer>[0]["log"]>;
let k = 0;

async function daemon(restore: Handlers["restore"]): Promise<string> {
  const socketPath = join(dir, `d${++k}`, "nvwa.socket");
  server = await startServer({ socketPath, log: quiet, handlers: { restore, update: async () => ({}), status: () => ({}) } });
  return socketPath;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof NvwaError ? e.code : `non-nvwa: ${String(e)}`;
  }
  return "no error";
}

describe("restore helper", () => {
  test("notify mode: progress as STATUS, then MAINPID and READY; waits for systemd to take the pid", async () => {
    const socketPath = await daemon(async (p, emit) => {
      emit({ kind: "phase", phase: "restore", message: `restoring ${p.unit}` });
      return { unit: p.unit, mainPid: 4321, pids: [4321, 4322] };
    });
    rx = bindDatagram(join(dir, `notify${k}`));
    const confirmed: [string, number][] = [];
    const r = await runRestoreHelper({
      unit: "redis.service",
      socketPath,
      env: { NVWA_RESTORE_MODE: "notify", NOTIFY_SOCKET: rx.address },
      moveCgroups: false,
      awaitMainPid: async (unit, pid) => {
        confirmed.push([unit, pid]);
      },
    });
    expect(r).toEqual({ unit: "redis.service", mainPid: 4321, pids: [4321, 4322] });
    const got = [rx.receive(2000), rx.receive(2000)].map((b) => Buffer.from(b ?? new Uint8Array()).toString());
    expect(got).toEqual(["STATUS=restoring redis.service", "MAINPID=4321\nREADY=1\nSTATUS=restored by nvwa (pid 4321)"]);
    expect(confirmed).toEqual([["redis.service", 4321]]);
  });

  test("forking mode: the PID file systemd will read, root-owned 0644", async () => {
    const socketPath = await daemon(async (p) => ({ unit: p.unit, mainPid: 777, pids: [777] }));
    const pidFile = join(dir, "run", "pid", "counter.service.pid");
    await runRestoreHelper({ unit: "counter.service", socketPath, env: { NVWA_RESTORE_MODE: "forking", NVWA_PIDFILE: pidFile }, moveCgroups: false });
    expect(readFileSync(pidFile, "utf8")).toBe("777\n");
    const st = statSync(pidFile);
    expect([st.mode & 0o777, st.uid]).toEqual([0o644, 0]);
  });

  test("oneshot mode: nothing beyond the restore itself", async () => {
    const asked: string[] = [];
    const socketPath = await daemon(async (p) => (asked.push(p.unit), { unit: p.unit, mainPid: 55, pids: [55] }));
    expect(await runRestoreHelper({ unit: "job.service", socketPath, env: { NVWA_RESTORE_MODE: "oneshot" }, moveCgroups: false })).toMatchObject({ mainPid: 55 });
    expect(asked).toEqual(["job.service"]);
  });

  test("failures: broken drop-in environment, no NOTIFY_SOCKET, the daemon's error, a bad answer, no daemon", async () => {
    const failing = await daemon(async (p) => {
      throw new NvwaError("restore.failed", `criu restore of ${p.unit} failed: pid 4321 is taken`, { hint: "see restore.log" });
    });
    expect(await codeOf(runRestoreHelper({ unit: "a.service", socketPath: failing, env: {} }))).toBe("restore.helper-env");
    expect(await codeOf(runRestoreHelper({ unit: "a.service", socketPath: failing, env: { NVWA_RESTORE_MODE: "forking" } }))).toBe("restore.helper-env");
    expect(await codeOf(runRestoreHelper({ unit: "a.service", socketPath: failing, env: { NVWA_RESTORE_MODE: "notify" } }))).toBe("restore.no-notify-socket");
    expect(await codeOf(runRestoreHelper({ unit: "a.service", socketPath: failing, env: { NVWA_RESTORE_MODE: "oneshot" }, moveCgroups: false }))).toBe("restore.failed");
    server?.stop();
    const bad = await daemon(async () => ({ mainPid: "x" }));
    expect(await codeOf(runRestoreHelper({ unit: "a.service", socketPath: bad, env: { NVWA_RESTORE_MODE: "oneshot" }, moveCgroups: false }))).toBe("daemon.bad-response");
    expect(await codeOf(runRestoreHelper({ unit: "a.service", socketPath: join(dir, "none.socket"), env: { NVWA_RESTORE_MODE: "oneshot" }, moveCgroups: false }))).toBe("daemon.unreachable");
  });
});
