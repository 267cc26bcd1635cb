import { describe, expect, test } from "bun:test";
import { checkService } from "../../src/systemd/preflight.ts";
import type { ServiceProperties } from "../../src/systemd/units.ts";
import { serviceProps } from "../lib/service-props.ts";

const svc = (over: Partial<ServiceProperties> = {}): ServiceProperties => serviceProps({ mainPid: 1234, ...over });

const codes = (p: ServiceProperties): string[] => checkService(p).map((i) => `${i.severity}:${i.code}`);

describe("checkService", () => {
  test("a well-configured notify service has no issues", () => {
    expect(checkService(svc())).toEqual([]);
  });

  test("every supported type passes; dbus does not", () => {
    for (const type of ["notify", "notify-reload", "forking", "simple", "exec", "idle"]) expect(codes(svc({ type }))).toEqual([]);
    expect(codes(svc({ type: "oneshot", mainPid: 0, subState: "exited" }))).toEqual([]);
    expect(codes(svc({ type: "dbus" }))).toEqual(["error:service.unsupported-type"]);
  });

  test("not loaded stops the checks there", () => {
    const issues = checkService(svc({ loadState: "not-found", activeState: "inactive", type: "" }));
    expect(issues.map((i) => i.code)).toEqual(["service.not-loaded"]);
    expect(issues[0]?.message).toBe("redis.service is not installed");
  });

  test("inactive, no main pid", () => {
    expect(codes(svc({ activeState: "failed", subState: "failed" }))).toEqual(["error:service.not-active"]);
    expect(codes(svc({ mainPid: 0 }))).toEqual(["error:service.no-main-pid"]);
  });

  test("journal and socket outputs are errors naming the setting; tty warns", () => {
    const j = checkService(svc({ standardOutput: "journal", standardError: "journal+console" }));
    expect(j.map((i) => i.code)).toEqual(["service.journal-output", "service.journal-output"]);
    expect(j[0]?.message).toContain("StandardOutput=journal");
    expect(j[1]?.message).toContain("StandardError=journal+console");
    expect(j[0]?.hint).toContain("StandardOutput=append:/var/log/redis.log");
    expect(codes(svc({ standardOutput: "kmsg" }))).toEqual(["error:service.journal-output"]);
    expect(codes(svc({ standardOutput: "socket" }))).toEqual(["error:service.socket-output"]);
    expect(codes(svc({ standardError: "fd" }))).toEqual(["error:service.socket-output"]);
    expect(codes(svc({ standardOutput: "tty" }))).toEqual(["warning:service.tty-output"]);
    for (const ok of ["null", "file", "append", "truncate"]) expect(codes(svc({ standardOutput: ok, standardError: ok }))).toEqual([]);
  });

  test("PrivateTmp is an error; not enabled warns; transient is an error", () => {
    expect(codes(svc({ privateTmp: true }))).toEqual(["error:service.private-tmp"]);
    expect(codes(svc({ unitFileState: "disabled" }))).toEqual(["warning:service.not-enabled"]);
    expect(codes(svc({ unitFileState: "static" }))).toEqual(["warning:service.not-enabled"]);
    expect(codes(svc({ unitFileState: "transient" }))).toEqual(["error:service.transient"]);
  });

  test("several problems are all reported", () => {
    expect(codes(svc({ activeState: "inactive", standardOutput: "journal", privateTmp: true, unitFileState: "disabled" }))).toEqual([
      "error:service.not-active",
      "error:service.journal-output",
      "error:service.private-tmp",
      "warning:service.not-enabled",
    ]);
  });
});
