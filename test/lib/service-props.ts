/** A running, enabled Type=notify redis.service as systemd reports it, with `over` applied: the unit tests' fixture. */
import type { ServiceProperties } from "../../src/systemd/units.ts";

export function serviceProps(over: Partial<ServiceProperties> = {}): ServiceProperties {
  return {
    unit: "redis.service",
    objectPath: "/org/freedesktop/systemd1/unit/redis_2eservice",
    loadState: "loaded",
    activeState: "active",
    subState: "running",
    unitFileState: "enabled",
    fragmentPath: "/lib/systemd/system/redis.service",
    type: "notify",
    mainPid: 812,
    standardOutput: "append",
    standardError: "inherit",
    privateTmp: false,
    notifyAccess: "main",
    pidFile: "",
    restart: "always",
    remainAfterExit: false,
    controlGroup: "/system.slice/redis.service",
    syslogIdentifier: "",
    syslogPriority: 30,
    syslogLevelPrefix: true,
    execStartPath: "/usr/bin/redis-server",
    logNamespace: "",
    sandbox: [],
    ...over,
  };
}
