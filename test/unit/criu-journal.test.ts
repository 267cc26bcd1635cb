/**
 * A service's journal streams before the dump (src/criu/journal.ts), the plan's criu externals
 * for them, and preflight's verdict on journal output now that it is kept.
 */
import { describe, expect, test } from "bun:test";
import { headerFor, journalStreamsOf, socketInode } from "../../src/criu/journal.ts";
import { checkService } from "../../src/systemd/preflight.ts";
import type { ServiceProperties } from "../../src/systemd/units.ts";
import { serviceProps } from "../lib/service-props.ts";

/** A Type=simple counter whose output goes to the journal (systemd's default). */
const svc = (over: Partial<ServiceProperties> = {}): ServiceProperties =>
  serviceProps({
    unit: "counter.service",
    objectPath: "/org/freedesktop/systemd1/unit/counter_2eservice",
    fragmentPath: "/etc/systemd/system/counter.service",
    type: "simple",
    mainPid: 4242,
    standardOutput: "journal",
    notifyAccess: "none",
    restart: "no",
    controlGroup: "/system.slice/counter.service",
    execStartPath: "/usr/bin/python3",
    ...over,
  });

describe("journalStreamsOf", () => {
  test("the default (StandardOutput=journal, StandardError=inherit): one stream on fds 1 and 2", () => {
    expect(journalStreamsOf(svc(), { stdout: "socket:[900]", stderr: "socket:[900]" })).toEqual([
      { ino: 900, fds: [1, 2], header: { identifier: "python3", unit: "counter.service", priority: 30, levelPrefix: true, forwardToKmsg: false, forwardToConsole: false } },
    ]);
  });
  test("two journal settings: two streams, each with its own forwarding", () => {
    const s = journalStreamsOf(svc({ standardError: "kmsg+console", syslogIdentifier: "ctr" }), { stdout: "socket:[900]", stderr: "socket:[901]" });
    expect(s.map((x) => [x.ino, x.fds, x.header.identifier, x.header.forwardToKmsg, x.header.forwardToConsole])).toEqual([
      [900, [1], "ctr", false, false],
      [901, [2], "ctr", true, true],
    ]);
  });
  test("file output, or a process that closed its journal fd: nothing to keep", () => {
    expect(journalStreamsOf(svc({ standardOutput: "append", standardError: "inherit" }), { stdout: "/var/log/x.log", stderr: "/var/log/x.log" })).toEqual([]);
    expect(journalStreamsOf(svc(), { stdout: "/dev/null", stderr: null })).toEqual([]);
    // stdout to a file, stderr to the journal
    expect(journalStreamsOf(svc({ standardOutput: "file", standardError: "journal" }), { stdout: "/var/log/x", stderr: "socket:[77]" }).map((x) => [x.ino, x.fds])).toEqual([[77, [2]]]);
  });
  test("socketInode and headerFor details", () => {
    expect(socketInode("socket:[12]")).toBe(12);
    expect(socketInode("pipe:[12]")).toBeNull();
    expect(socketInode(null)).toBeNull();
    expect(headerFor(svc({ execStartPath: "" }), "journal").identifier).toBe("");
    expect(headerFor(svc({ syslogPriority: 27, syslogLevelPrefix: false }), "journal+console")).toMatchObject({ priority: 27, levelPrefix: false, forwardToConsole: true, forwardToKmsg: false });
  });
});

describe("preflight of journal output", () => {
  const codes = (p: ServiceProperties, journalStdio: boolean): string[] => checkService(p, { journalStdio }).map((i) => i.code);
  test("kept when journal streams are supported: journal, journal+console, kmsg, kmsg+console", () => {
    for (const o of ["journal", "journal+console", "kmsg", "kmsg+console"]) expect(codes(svc({ standardOutput: o }), true)).toEqual([]);
  });
  test("refused as before without support, and with a LogNamespace= even with it", () => {
    expect(codes(svc(), false)).toEqual(["service.journal-output"]);
    const ns = checkService(svc({ logNamespace: "edge" }), { journalStdio: true });
    expect(ns.map((i) => i.code)).toEqual(["service.log-namespace"]);
    expect(ns[0]?.message).toContain("LogNamespace=edge");
  });
  test("a socket or fd output is still refused", () => {
    expect(codes(svc({ standardOutput: "socket" }), true)).toEqual(["service.socket-output"]);
  });
});

describe("a service in namespaces of its own (Debian's sandboxed units)", () => {
  test("refused before anything is frozen, naming the namespaces and the settings that made them", () => {
    const p = svc({ unit: "redis-server.service", privateTmp: true, sandbox: ["PrivateTmp=yes", "PrivateDevices=yes", "ProtectSystem=strict", "ReadWritePaths=-/var/lib/redis"] });
    const issues = checkService(p, { journalStdio: true, ownNamespaces: ["mnt"] });
    expect(issues.map((i) => i.code)).toEqual(["service.own-namespace"]);
    expect(issues[0]?.message).toBe(
      "redis-server.service runs in a namespace of its own (mnt, set up by PrivateTmp=yes, PrivateDevices=yes, ProtectSystem=strict, ReadWritePaths=-/var/lib/redis): criu would save it with the process, and the restore after the jump cannot rebuild what systemd built for the unit",
    );
    expect(issues[0]?.hint).toContain("systemctl edit redis-server.service");
  });
  test("no namespace of its own: PrivateTmp= alone (a unit not running yet) is still refused by its own rule", () => {
    expect(checkService(svc({ privateTmp: true }), { journalStdio: true, ownNamespaces: [] }).map((i) => i.code)).toEqual(["service.private-tmp"]);
  });
});
