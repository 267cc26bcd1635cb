/**
 * The D-Bus client against a real peer: a dbus-daemon started by this test on a socket of its
 * own, and on it a stand-in for systemd (helpers/dbus-bus.ts says why a stand-in).
 */
import { orderlyJump } from "../../src/update/jump.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DBusConnection } from "../../src/systemd/dbus-conn.ts";
import { MessageType, Variant, type DBusValue, type Message } from "../../src/systemd/dbus-wire.ts";
import { connectSystemd, SystemdManager } from "../../src/systemd/manager.ts";
import { probeServicesOverDbus } from "../../src/update/facts.ts";
import { MANAGER_IFACE, MANAGER_PATH, unitObjectPath } from "../../src/systemd/units.ts";
import { NvwaError } from "../../src/errors.ts";
import { BUS, getUnit, standInSystemd, startTestBus, stopUnitAndWait, type TestBus } from "./helpers/dbus-bus.ts";
import { DBusRemoteError, serveMethodCalls, type ServedReply } from "./helpers/dbus-service.ts";

let bus: TestBus;
/** Connections made outside bus.connect(), closed at the end. */
const opened: DBusConnection[] = [];

async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof NvwaError ? e.code : `non-nvwa: ${String(e)}`;
  }
  return "no error";
}

beforeAll(async () => {
  bus = await startTestBus();
});

afterAll(async () => {
  for (const c of opened) c.close();
  await bus.stop();
});

describe("a real dbus-daemon", () => {
  test("Hello, GetId, ListNames, NameHasOwner", async () => {
    const c = await bus.connect();
    expect(c.uniqueName).toMatch(/^:1\.\d+$/);
    expect(c.guid).toMatch(/^[0-9a-f]{32}$/);
    const id = await c.call({ ...BUS, member: "GetId" });
    expect(id.signature).toBe("s");
    // The bus' id, not the listening address' GUID from the SASL OK line: both are 32 hex digits.
    expect(id.body[0]).toMatch(/^[0-9a-f]{32}$/);
    const names = await c.call({ ...BUS, member: "ListNames" });
    expect(names.body[0]).toEqual(expect.arrayContaining(["org.freedesktop.DBus", c.uniqueName]));
    const has = await c.call({ ...BUS, member: "NameHasOwner", signature: "s", body: [c.uniqueName as string] });
    expect(has.body).toEqual([true]);
  });

  test("Properties.Get and GetAll: variants and dicts from a real peer", async () => {
    const c = await bus.connect();
    const r = await c.call({ ...BUS, interface: "org.freedesktop.DBus.Properties", member: "Get", signature: "ss", body: ["org.freedesktop.DBus", "Features"] });
    expect(r.signature).toBe("v");
    const v = r.body[0] as Variant;
    expect(v).toBeInstanceOf(Variant);
    expect(v.signature).toBe("as");
    const all = await c.call({ ...BUS, interface: "org.freedesktop.DBus.Properties", member: "GetAll", signature: "s", body: ["org.freedesktop.DBus"] });
    expect(all.signature).toBe("a{sv}");
    expect((all.body[0] as Map<string, DBusValue>).get("Features")).toEqual(v);
  });

  test("error replies become NvwaError dbus.<ErrorName> with the peer's message", async () => {
    const c = await bus.connect();
    let caught: unknown;
    try {
      await c.call({ ...BUS, member: "NoSuchMethod" });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(NvwaError);
    const e = caught as NvwaError;
    expect(e.code).toBe("dbus.org.freedesktop.DBus.Error.UnknownMethod");
    expect(e.message).toContain("NoSuchMethod");
    expect(e.hint).toBeTruthy();
    expect(await errorCode(c.call({ destination: "org.nvwa.Nobody", path: "/", member: "X" }))).toBe("dbus.org.freedesktop.DBus.Error.ServiceUnknown");
    // the connection is still usable afterwards
    expect((await c.call({ ...BUS, member: "GetId" })).body[0]).toMatch(/^[0-9a-f]{32}$/);
  });

  test("100 pipelined calls: each reply matched to its own call by serial", async () => {
    const c = await bus.connect();
    const other = await bus.connect();
    const asks = Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? (other.uniqueName as string) : `:9.${i}`));
    const answers = await Promise.all(asks.map((n) => c.call({ ...BUS, member: "NameHasOwner", signature: "s", body: [n] })));
    expect(answers.map((a) => a.body[0])).toEqual(asks.map((_, i) => i % 3 === 0));
  });

  test("a service on the bus: complex values travel through dbus-daemon's validation both ways", async () => {
    const server = await bus.connect();
    const served: Message[] = [];
    serveMethodCalls(server, (m): ServedReply => {
      served.push(m);
      if (m.member === "Fail") throw new DBusRemoteError("org.nvwa.Test.Error.Nope", "nope, on purpose");
      return { signature: m.signature, body: m.body };
    });
    const own = await server.call({ ...BUS, member: "RequestName", signature: "su", body: ["org.nvwa.Test", 4] });
    expect(own.body).toEqual([1]); // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
    const client = await bus.connect();
    const echo = (signature: string, body: DBusValue[]) =>
      client.call({ destination: "org.nvwa.Test", path: "/org/nvwa/Test", interface: "org.nvwa.Test", member: "Echo", signature, body });

    const dict = new Map<string, DBusValue>([
      ["Type", new Variant("s", "notify")],
      ["MainPID", new Variant("u", 4242)],
      ["ExecStart", new Variant("a(sasbttttuii)", [["/usr/bin/redis-server", ["redis-server", "--port", "0"], false, 1n, 2n, 3n, 4n, 99, 0, 0]])],
      ["Nested", new Variant("v", new Variant("ax", [-1n, 0n, 1n << 62n]))],
    ]);
    expect((await echo("a{sv}", [dict])).body).toEqual([dict]);
    const row: DBusValue[] = [255, false, -7, 7, -70000, 70000, -(1n << 40n), 1n << 63n, 2.5, "ünïcode ✓", "/a/b", "(ii)"];
    expect((await echo("(ybnqiuxtdsog)", [row])).body).toEqual([row]);
    // ~1 MiB in one message: arrives in many chunks
    const big = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
    const bigReply = await echo("aysaay", [big, "tail", [new Uint8Array([1]), new Uint8Array(0)]]);
    expect(bigReply.body).toEqual([big, "tail", [new Uint8Array([1]), new Uint8Array(0)]]);
    expect(served[0]?.sender).toBe(client.uniqueName);

    let caught: unknown;
    try {
      await client.call({ destination: "org.nvwa.Test", path: "/org/nvwa/Test", interface: "org.nvwa.Test", member: "Fail" });
    } catch (e) {
      caught = e;
    }
    expect((caught as NvwaError).code).toBe("dbus.org.nvwa.Test.Error.Nope");
    expect((caught as NvwaError).message).toContain("nope, on purpose");
  });

  test("signals reach onSignal handlers", async () => {
    const watcher = await bus.connect();
    const seen: Message[] = [];
    watcher.onSignal((m) => seen.push(m));
    await watcher.call({ ...BUS, member: "AddMatch", signature: "s", body: ["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"] });
    const newcomer = await bus.connect();
    const name = newcomer.uniqueName as string;
    // The bus emits the signal while handling the newcomer's Hello, which is done by now; the
    // reply to a later call of ours therefore arrives after it.
    await watcher.call({ ...BUS, member: "GetId" });
    const change = seen.find((m) => m.member === "NameOwnerChanged" && m.body[0] === name);
    expect(change?.type).toBe(MessageType.signal);
    expect(change?.body).toEqual([name, "", name]);
  });

  test("authentication as a uid we are not is rejected by the bus", async () => {
    expect(await errorCode(DBusConnection.connect({ path: bus.path, bus: true, uid: 12345 }))).toBe("dbus.auth-rejected");
  });

  test("no socket: dbus.unreachable; systemd's private socket missing falls back to the bus", async () => {
    expect(await errorCode(DBusConnection.connect({ path: join(bus.dir, "missing"), bus: false }))).toBe("dbus.unreachable");
    expect(await errorCode(connectSystemd({ privateSocket: join(bus.dir, "missing"), busSocket: null }))).toBe("dbus.unreachable");
    expect(await errorCode(connectSystemd({ privateSocket: join(bus.dir, "missing"), busSocket: join(bus.dir, "missing2") }))).toBe("dbus.unreachable");
    const c = await connectSystemd(bus.systemdOptions());
    opened.push(c);
    expect(c.bus).toBe(true);
    expect(c.uniqueName).toMatch(/^:1\./);
  });

  test("a call that gets no reply times out with dbus.timeout and the connection stays usable", async () => {
    const server = await bus.connect();
    serveMethodCalls(server, () => new Promise<ServedReply>(() => {})); // never answers
    await server.call({ ...BUS, member: "RequestName", signature: "su", body: ["org.nvwa.Silent", 4] });
    const client = await bus.connect();
    expect(await errorCode(client.call({ destination: "org.nvwa.Silent", path: "/", member: "Wait", timeoutMs: 300 }))).toBe("dbus.timeout");
    expect((await client.call({ ...BUS, member: "GetId" })).body[0]).toMatch(/^[0-9a-f]{32}$/);
  });

  test("SystemdManager over the bus with no systemd there: the bus' answer, as a typed error", async () => {
    expect(await errorCode(SystemdManager.connect(bus.systemdOptions()))).toBe(
      "dbus.org.freedesktop.DBus.Error.ServiceUnknown",
    );
  });
});

describe("SystemdManager against a stand-in on the bus", () => {
  test("properties, start/stop with JobRemoved, reload, watchdog, kexec guard", async () => {
    const fake = await standInSystemd(bus, { jobRemovedSignal: true });
    try {
      const mgr = await SystemdManager.connect(bus.systemdOptions());
      opened.push(mgr.conn);
      expect(fake.calls).toContain("Subscribe()");
      const p = await mgr.serviceProperties("redis.service");
      expect(p).toMatchObject({ unit: "redis.service", objectPath: unitObjectPath("redis.service"), type: "notify", mainPid: 777, activeState: "active", privateTmp: false });
      expect(await errorCode(getUnit(mgr, "nope.service"))).toBe("dbus.org.freedesktop.systemd1.NoSuchUnit");

      const started = await mgr.startUnitAndWait("redis.service");
      expect(started).toEqual({ job: "/org/freedesktop/systemd1/job/1", unit: "redis.service", result: "done" });
      const stopped = await stopUnitAndWait(mgr, "redis.service", "replace");
      expect(stopped.result).toBe("done");
      await mgr.reload();
      expect(fake.calls).toContain("Reload()");
      expect(await mgr.getProperty(MANAGER_PATH, MANAGER_IFACE, "KExecWatchdogUSec")).toBe(30_000_000n);

      const flag = join(bus.dir, "kexec_loaded");
      writeFileSync(flag, "0\n");
      expect(await errorCode(orderlyJump(mgr, { kexecLoadedPath: flag }))).toBe("kexec.not-loaded");
      expect(fake.calls.some((c) => c.startsWith("StartUnit(kexec.target"))).toBe(false);
      writeFileSync(flag, "1\n");
      expect(await orderlyJump(mgr, { kexecLoadedPath: flag })).toMatch(/^\/org\/freedesktop\/systemd1\/job\/\d+$/);
      expect(fake.calls).toContain("StartUnit(kexec.target,replace-irreversibly)");
    } finally {
      await fake.release();
    }
  });

  test("a job whose JobRemoved never comes is seen finished by polling", async () => {
    const fake = await standInSystemd(bus, { jobRemovedSignal: false });
    try {
      const mgr = await SystemdManager.connect(bus.systemdOptions());
      opened.push(mgr.conn);
      const outcome = await mgr.startUnitAndWait("redis.service");
      expect(outcome).toEqual({ job: "/org/freedesktop/systemd1/job/1", unit: "", result: "unknown" });
      expect(fake.calls.filter((c) => c.startsWith("Get(org.freedesktop.systemd1.Job")).length).toBeGreaterThan(0);
    } finally {
      await fake.release();
    }
  });

  test("preflight's service probe asks once: a call left unanswered reaches the caller as dbus.timeout", async () => {
    const stuck = await standInSystemd(bus, { jobRemovedSignal: true, unansweredLoadUnits: 1 });
    try {
      expect(await errorCode(probeServicesOverDbus(["redis.service"], { ...bus.systemdOptions(), callTimeoutMs: 300 }))).toBe("dbus.timeout");
      expect(stuck.calls.filter((c) => c === "LoadUnit(redis.service)").length).toBe(1);
    } finally {
      await stuck.release();
    }
  });
});
