/**
 * A real dbus-daemon on a socket of the test's own (Debian package "dbus-daemon"), and a stand-in
 * for org.freedesktop.systemd1 on it.
 *
 * systemd cannot run on this host (it is not PID 1 here, and a user instance reconfigures the
 * host's cgroups), so host tests talk to a stand-in that owns systemd's name on that bus and
 * answers the Manager calls nvwa makes. The bus validates every message it routes, so a call
 * that travels through it proves the wire format both ways. The real systemd paths run in the
 * QEMU guest.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { DBusConnection } from "../../../src/systemd/dbus-conn.ts";
import { MessageType, Variant, type DBusValue } from "../../../src/systemd/dbus-wire.ts";
import type { JobMode, JobOutcome, SystemdManager } from "../../../src/systemd/manager.ts";
import { MANAGER_IFACE, MANAGER_PATH, unitObjectPath } from "../../../src/systemd/units.ts";
import { DBusRemoteError, serveMethodCalls, type ServedReply } from "./dbus-service.ts";

export const BUS = { destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus" };

export interface TestBus {
  dir: string;
  path: string;
  /** A connection to the bus, closed by stop(). */
  connect(): Promise<DBusConnection>;
  /** SystemdManager.connect options that reach the stand-in: no private socket, this bus. */
  systemdOptions(): { privateSocket: string; busSocket: string };
  stop(): Promise<void>;
}

export async function startTestBus(): Promise<TestBus> {
  if (!Bun.which("dbus-daemon")) throw new Error("dbus-daemon is not installed: apt-get install -y dbus-daemon");
  const dir = mkdtempSync(join(tmpdir(), "nvwa-dbus-"));
  const path = join(dir, "bus");
  const config = join(dir, "bus.conf");
  writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=${path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`,
  );
  const daemon: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(["dbus-daemon", "--config-file", config, "--nofork", "--print-address"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  // The address line is printed once the socket listens.
  const reader = daemon.stdout.getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`dbus-daemon exited: ${await new Response(daemon.stderr).text()}`);
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  if (!out.includes(`unix:path=${path}`)) throw new Error(`dbus-daemon listens elsewhere: ${out}`);
  const opened: DBusConnection[] = [];
  return {
    dir,
    path,
    async connect() {
      const c = await DBusConnection.connect({ path, bus: true });
      opened.push(c);
      return c;
    },
    systemdOptions: () => ({ privateSocket: join(dir, "missing"), busSocket: path }),
    async stop() {
      for (const c of opened) c.close();
      daemon.kill();
      await daemon.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface StandInOptions {
  /** Send JobRemoved when a job ends (else only polling the job object tells). */
  jobRemovedSignal: boolean;
  /** Leave this many LoadUnit calls unanswered (a fault seen once from PID 1 in the guest). */
  unansweredLoadUnits?: number;
  /** Runs a StartUnit job, standing in for the unit's ExecStart; its result ends the job (default "done" after 20 ms). */
  runStartJob?: (unit: string) => Promise<string>;
}

export interface StandIn {
  /** Every call received, as Member(arg,arg). */
  calls: string[];
  /** When each StartUnit arrived (Date.now()), by unit. */
  startedAt: Map<string, number>;
  release(): Promise<unknown>;
}

/** Plays the parts of org.freedesktop.systemd1 that nvwa uses, on `bus`. */
export async function standInSystemd(bus: TestBus, opts: StandInOptions): Promise<StandIn> {
  const conn = await bus.connect();
  const calls: string[] = [];
  const startedAt = new Map<string, number>();
  let jobId = 0;
  const liveJobs = new Set<string>();
  const units = new Map<string, Record<string, [string, DBusValue]>>([
    [
      "redis.service",
      {
        LoadState: ["s", "loaded"],
        ActiveState: ["s", "active"],
        SubState: ["s", "running"],
        UnitFileState: ["s", "enabled"],
        FragmentPath: ["s", "/lib/systemd/system/redis.service"],
        Type: ["s", "notify"],
        MainPID: ["u", 777],
        StandardOutput: ["s", "append"],
        StandardError: ["s", "inherit"],
        PrivateTmp: ["b", false],
        NotifyAccess: ["s", "main"],
        PIDFile: ["s", ""],
        Restart: ["s", "always"],
        RemainAfterExit: ["b", false],
        ControlGroup: ["s", "/system.slice/redis.service"],
        SyslogIdentifier: ["s", ""],
        SyslogPriority: ["i", 30],
        SyslogLevelPrefix: ["b", true],
        LogNamespace: ["s", ""],
        ExecStart: ["a(sasbttttuii)", [["/usr/bin/redis-server", ["/usr/bin/redis-server", "/etc/redis/redis.conf"], false, 0n, 0n, 0n, 0n, 0, 0, 0]]],
      },
    ],
  ]);
  let unanswered = opts.unansweredLoadUnits ?? 0;
  const endJob = (id: number, job: string, unit: string, result: string): void => {
    liveJobs.delete(job);
    if (opts.jobRemovedSignal) {
      conn.send({ type: MessageType.signal, flags: 0, path: MANAGER_PATH, interface: MANAGER_IFACE, member: "JobRemoved", signature: "uoss", body: [id, job, unit, result] });
    }
  };
  serveMethodCalls(conn, (m): ServedReply | Promise<ServedReply> => {
    calls.push(`${m.member}(${m.body.map((b) => String(b)).join(",")})`);
    // A call PID 1 leaves unanswered: the reply never comes.
    if (m.member === "LoadUnit" && unanswered > 0) {
      unanswered--;
      return new Promise<ServedReply>(() => {});
    }
    if (m.interface === MANAGER_IFACE) {
      switch (m.member) {
        case "Subscribe":
        case "Reload":
          return {};
        case "LoadUnit":
        case "GetUnit": {
          const name = String(m.body[0]);
          if (m.member === "GetUnit" && !units.has(name)) throw new DBusRemoteError("org.freedesktop.systemd1.NoSuchUnit", `Unit ${name} not loaded.`);
          return { signature: "o", body: [unitObjectPath(name)] };
        }
        case "StartUnit":
        case "StopUnit": {
          const id = ++jobId;
          const job = `/org/freedesktop/systemd1/job/${id}`;
          const unit = String(m.body[0]);
          liveJobs.add(job);
          if (m.member === "StartUnit") startedAt.set(unit, Date.now());
          const run = m.member === "StartUnit" && opts.runStartJob ? opts.runStartJob(unit) : Bun.sleep(20).then(() => "done");
          void run.then(
            (result) => endJob(id, job, unit, result),
            () => endJob(id, job, unit, "failed"),
          );
          return { signature: "o", body: [job] };
        }
      }
    }
    if (m.interface === "org.freedesktop.DBus.Properties" && m.member === "Get") {
      const [iface, prop] = m.body as [string, string];
      if (m.path?.startsWith("/org/freedesktop/systemd1/job/")) {
        if (!liveJobs.has(m.path)) throw new DBusRemoteError("org.freedesktop.DBus.Error.UnknownObject", `Unknown object '${m.path}'.`);
        return { signature: "v", body: [new Variant("s", "running")] };
      }
      if (m.path === MANAGER_PATH && prop === "KExecWatchdogUSec") return { signature: "v", body: [new Variant("t", 30_000_000n)] };
      const unit = [...units.entries()].find(([n]) => unitObjectPath(n) === m.path);
      const value = unit?.[1][prop];
      if (!value) throw new DBusRemoteError("org.freedesktop.DBus.Error.UnknownProperty", `Unknown property ${iface}.${prop}`);
      return { signature: "v", body: [new Variant(value[0], value[1])] };
    }
    throw new DBusRemoteError("org.freedesktop.DBus.Error.UnknownMethod", `Unknown method ${m.member}`);
  });
  await conn.call({ ...BUS, member: "RequestName", signature: "su", body: ["org.freedesktop.systemd1", 4] });
  return { calls, startedAt, release: () => conn.call({ ...BUS, member: "ReleaseName", signature: "s", body: ["org.freedesktop.systemd1"] }) };
}

/** Manager calls nvwa does not make, for tests against the stand-in. */
export async function getUnit(mgr: SystemdManager, name: string): Promise<string> {
  return String((await mgr.managerCall("GetUnit", "s", [name]))[0]);
}

export async function stopUnitAndWait(mgr: SystemdManager, name: string, mode: JobMode = "replace"): Promise<JobOutcome> {
  return mgr.waitForJob(String((await mgr.managerCall("StopUnit", "ss", [name, mode]))[0]));
}
