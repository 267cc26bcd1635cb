/**
 * Which process of a service nvwa checkpoints. Usually systemd's MainPID. A Type=oneshot unit
 * with RemainAfterExit=yes has none: its ExecStart has exited and what it left running (a
 * background process) lives only in the unit's cgroup, reparented to PID 1. nvwa then takes the
 * one process tree in that cgroup; criu dumps one tree per target, so several separate trees or
 * none at all are refused before anything changes.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NvwaError } from "../errors.ts";
import { readProc } from "../criu/proc.ts";
import { parseCgroupMounts } from "./cgroup.ts";
import type { ServiceProperties } from "./units.ts";

/** Pure: the pids of `pids` whose parent is not among them (the roots of their trees), sorted. */
export function treeRoots(pids: readonly number[], ppidOf: (pid: number) => number | undefined): number[] {
  const set = new Set(pids);
  return [...set].filter((p) => !set.has(ppidOf(p) ?? 0)).sort((a, b) => a - b);
}

/** Pure: the root pid to checkpoint for a service, given its cgroup's roots when it has no MainPID. */
export function chooseServiceRoot(p: Pick<ServiceProperties, "unit" | "type" | "mainPid">, cgroupRoots: readonly number[]): number {
  if (p.mainPid > 0 || p.type !== "oneshot") return p.mainPid;
  if (cgroupRoots.length === 1) return cgroupRoots[0] as number;
  if (cgroupRoots.length === 0) {
    throw new NvwaError("service.oneshot-no-process", `${p.unit} is a Type=oneshot unit with no process left running: there is nothing to checkpoint`, {
      hint: `leave ${p.unit} out of services in nvwa-restore.yaml; systemd runs it again at boot`,
      exitCode: 2,
      details: { unit: p.unit },
    });
  }
  throw new NvwaError("service.oneshot-many-trees", `${p.unit} (Type=oneshot) runs ${cgroupRoots.length} separate process trees (pids ${cgroupRoots.join(", ")}); nvwa restores one tree per service`, {
    hint: `start the background work of ${p.unit} from one parent process, or list the pids under pids: instead`,
    exitCode: 2,
    details: { unit: p.unit, roots: cgroupRoots },
  });
}

/** The pids in a cgroup (ControlGroup= path), read from the cgroup v2 or v1 name=systemd mount. */
export function cgroupProcs(controlGroup: string, mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): number[] {
  const mounts = parseCgroupMounts(mountinfo);
  const mount = mounts.find((m) => m.v2 && m.root === "/") ?? mounts.find((m) => !m.v2 && m.controllers.includes("name=systemd") && m.root === "/");
  if (mount === undefined || controlGroup === "") return [];
  let text: string;
  try {
    text = readFileSync(join(mount.mountPoint, controlGroup, "cgroup.procs"), "utf8");
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => l !== "").map(Number).filter((n) => Number.isInteger(n) && n > 0);
}

/** The pid nvwa checkpoints for this service on this machine (see the module comment). */
export function serviceRootPid(p: ServiceProperties): number {
  if (p.mainPid > 0 || p.type !== "oneshot") return p.mainPid;
  return chooseServiceRoot(p, treeRoots(cgroupProcs(p.controlGroup), (pid) => readProc(pid)?.ppid));
}
