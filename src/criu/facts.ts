/**
 * Gathers what planCheckpoint needs from this machine: a /proc snapshot, nvwa's own pid and
 * the criu capabilities. Service main pids come from the caller (systemd over D-Bus is
 * src/systemd's business).
 */
import type { CheckpointFacts } from "./plan.ts";
import type { CriuCapabilities } from "./probe.ts";
import { snapshotProcesses } from "./proc.ts";

export function gatherCheckpointFacts(caps: CriuCapabilities, servicePids: Readonly<Record<string, number>> = {}, hardwareBreakpoints = false): CheckpointFacts {
  return {
    processes: snapshotProcesses(),
    servicePids,
    selfPid: process.pid,
    criu: {
      pinMemory: caps.pinMemory,
      ...(caps.networkLock === undefined ? {} : { networkLock: caps.networkLock }),
      version: caps.version.text,
    },
    hardwareBreakpoints,
  };
}
