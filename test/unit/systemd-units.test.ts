import { sandboxSettings } from "../../src/systemd/units.ts";
import { describe, expect, test } from "bun:test";
import { Variant, type DBusValue } from "../../src/systemd/dbus-wire.ts";
import { parseServiceProperties, unitObjectPath } from "../../src/systemd/units.ts";
import { NvwaError } from "../../src/errors.ts";

describe("unitObjectPath", () => {
  // Paths as systemd publishes them (busctl tree org.freedesktop.systemd1).
  test.each([
    ["dbus.service", "/org/freedesktop/systemd1/unit/dbus_2eservice"],
    ["-.mount", "/org/freedesktop/systemd1/unit/_2d_2emount"],
    ["getty@tty1.service", "/org/freedesktop/systemd1/unit/getty_40tty1_2eservice"],
    ["systemd-journald.service", "/org/freedesktop/systemd1/unit/systemd_2djournald_2eservice"],
    ["1abc.service", "/org/freedesktop/systemd1/unit/_31abc_2eservice"],
    ["a1.service", "/org/freedesktop/systemd1/unit/a1_2eservice"],
  ])("%s → %s", (unit, path) => {
    expect(unitObjectPath(unit)).toBe(path);
  });
});

function props(over: Record<string, DBusValue> = {}): [Map<string, DBusValue>, Map<string, DBusValue>] {
  const unit = new Map<string, DBusValue>([
    ["LoadState", new Variant("s", "loaded")],
    ["ActiveState", new Variant("s", "active")],
    ["SubState", new Variant("s", "running")],
    ["UnitFileState", new Variant("s", "enabled")],
    ["FragmentPath", new Variant("s", "/lib/systemd/system/redis-server.service")],
  ]);
  const service = new Map<string, DBusValue>([
    ["Type", new Variant("s", "notify")],
    ["MainPID", new Variant("u", 4242)],
    ["StandardOutput", new Variant("s", "append")],
    ["StandardError", new Variant("s", "inherit")],
    ["PrivateTmp", new Variant("b", false)],
    ["NotifyAccess", new Variant("s", "main")],
    ["PIDFile", new Variant("s", "")],
    ["Restart", new Variant("s", "always")],
    ["RemainAfterExit", new Variant("b", false)],
    ["ControlGroup", new Variant("s", "/system.slice/redis-server.service")],
  ]);
  for (const [k, v] of Object.entries(over)) (unit.has(k) ? unit : service).set(k, v);
  return [unit, service];
}

describe("parseServiceProperties", () => {
  test("the journal stream's header values and ExecStart's binary", () => {
    const [u, s] = props({
      SyslogIdentifier: new Variant("s", "kv"),
      SyslogPriority: new Variant("i", 27),
      SyslogLevelPrefix: new Variant("b", false),
      LogNamespace: new Variant("s", "edge"),
      ExecStart: new Variant("a(sasbttttuii)", [["/usr/bin/redis-server", ["redis-server", "/etc/redis.conf"], false, 0n, 0n, 0n, 0n, 0, 0, 0]]),
    });
    expect(parseServiceProperties("redis-server.service", "/p", u, s)).toMatchObject({ syslogIdentifier: "kv", syslogPriority: 27, syslogLevelPrefix: false, logNamespace: "edge", execStartPath: "/usr/bin/redis-server" });
  });
  test("reads the values out of their variants", () => {
    const [u, s] = props();
    expect(parseServiceProperties("redis-server.service", "/p", u, s)).toEqual({
      unit: "redis-server.service",
      objectPath: "/p",
      loadState: "loaded",
      activeState: "active",
      subState: "running",
      unitFileState: "enabled",
      fragmentPath: "/lib/systemd/system/redis-server.service",
      type: "notify",
      mainPid: 4242,
      standardOutput: "append",
      standardError: "inherit",
      privateTmp: false,
      notifyAccess: "main",
      pidFile: "",
      restart: "always",
      remainAfterExit: false,
      controlGroup: "/system.slice/redis-server.service",
      syslogIdentifier: "",
      syslogPriority: 30,
      syslogLevelPrefix: true,
      execStartPath: "",
      logNamespace: "",
      sandbox: [],
    });
  });

  test("a value of the wrong type is dbus.unexpected-type naming the property", () => {
    const [u, s] = props({ MainPID: new Variant("s", "4242") });
    let err: unknown;
    try {
      parseServiceProperties("x.service", "/p", u, s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NvwaError);
    expect((err as NvwaError).code).toBe("dbus.unexpected-type");
    expect((err as NvwaError).message).toContain("MainPID");
  });

  test("a missing required property is refused, optional ones default", () => {
    const [u, s] = props();
    s.delete("Type");
    expect(() => parseServiceProperties("x.service", "/p", u, s)).toThrow(/Type/);
    const [u2, s2] = props();
    s2.delete("PIDFile");
    s2.delete("RemainAfterExit");
    const p = parseServiceProperties("x.service", "/p", u2, s2);
    expect(p.pidFile).toBe("");
    expect(p.remainAfterExit).toBe(false);
  });
});

test("sandboxSettings: the settings that are on, as Name=value", () => {
  const m = new Map<string, DBusValue>([
    ["PrivateTmp", new Variant("b", true)],
    ["PrivateNetwork", new Variant("b", false)],
    ["ProtectSystem", new Variant("s", "full")],
    ["ProtectHome", new Variant("s", "no")],
    ["ProtectProc", new Variant("s", "default")],
    ["ProcSubset", new Variant("s", "all")],
    ["ReadWritePaths", new Variant("as", ["-/var/lib/redis", "-/var/log/redis"])],
    ["ReadOnlyPaths", new Variant("as", [])],
    ["BindPaths", new Variant("a(ssbt)", [["/srv/a", "/a", false, 0n]])],
  ]);
  expect(sandboxSettings(m)).toEqual(["PrivateTmp=yes", "ProtectSystem=full", "ReadWritePaths=-/var/lib/redis -/var/log/redis", "BindPaths=/srv/a"]);
});
