/**
 * Gathers what planCheckpoint needs from this machine: a /proc snapshot, nvwa's own pid and
 * the criu capabilities. Service main pids and properties come from the caller (systemd over
 * D-Bus is src/systemd's business); their journal streams are read here from /proc.
 */
import { readlinkSync } from "node:fs";
import type { ServiceProperties } from "../systemd/units.ts";
import { journalStreamsOf, type JournalStream } from "./journal.ts";
import type { CheckpointFacts } from "./plan.ts";
import type { CriuCapabilities } from "./probe.ts";
import { snapshotProcesses } from "./proc.ts";

function fdLink(pid: number, fd: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return null;
  }
}

/** Each service's journal streams, from its main process's fds 1 and 2 (pid 0: none to read). */
export function readJournalStreams(services: Iterable<ServiceProperties>, servicePids: Readonly<Record<string, number>>): Record<string, JournalStream[]> {
  const out: Record<string, JournalStream[]> = {};
  for (const p of services) {
    const pid = servicePids[p.unit] ?? 0;
    if (pid > 0) out[p.unit] = journalStreamsOf(p, { stdout: fdLink(pid, 1), stderr: fdLink(pid, 2) });
  }
  return out;
}

export function gatherCheckpointFacts(
  caps: CriuCapabilities,
  servicePids: Readonly<Record<string, number>> = {},
  hardwareBreakpoints = false,
  services: Iterable<ServiceProperties> = [],
): CheckpointFacts {
  return {
    processes: snapshotProcesses(),
    servicePids,
    journalStreams: readJournalStreams(services, servicePids),
    selfPid: process.pid,
    criu: {
      pinMemory: caps.pinMemory,
      ...(caps.networkLock === undefined ? {} : { networkLock: caps.networkLock }),
      version: caps.version.text,
      memTrack: caps.memTrack,
    },
    hardwareBreakpoints,
  };
}
