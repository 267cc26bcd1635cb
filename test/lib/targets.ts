/** A killed (checkpointed) redis.service target as the manifest records it, with `over` applied: the unit tests' fixture. */
import type { Target } from "../../src/state/manifest.ts";

export function redisTarget(over: Partial<Target> = {}): Target {
  return {
    kind: "service",
    name: "redis.service",
    unit: "redis.service",
    rootPid: 948,
    pids: [948],
    processes: [948],
    stoppedBefore: [],
    cmdline: [],
    imagesDir: "/var/nvwa/running/redis.service",
    shellJob: false,
    tcpConnections: false,
    phase: "killed",
    timings: {},
    ...over,
  };
}
