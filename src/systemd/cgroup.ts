/**
 * Which cgroup directories a process is in, on cgroup v2, v1 and hybrid hosts, and moving pids
 * there. The restore helper uses it to put the restored tree (forked by criu under the daemon)
 * into the unit's own cgroup, where systemd expects a service's processes.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface CgroupMembership {
  /** 0 for the v2 hierarchy. */
  hierarchy: number;
  /** v1 controllers ("cpu", "cpuacct", "name=systemd"); empty for v2. */
  controllers: string[];
  path: string;
}

/** Parses /proc/<pid>/cgroup ("hierarchy-ID:controller-list:cgroup-path" per line). */
export function parseProcCgroup(text: string): CgroupMembership[] {
  const out: CgroupMembership[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    out.push({ hierarchy: Number(m[1]), controllers: m[2] === "" ? [] : (m[2] as string).split(","), path: m[3] as string });
  }
  return out;
}

export interface CgroupMount {
  /** The cgroup path this mount shows at its mount point (usually "/"). */
  root: string;
  mountPoint: string;
  v2: boolean;
  /** v1: controllers from the super options ("cpu", "name=systemd", ...). */
  controllers: string[];
}

const unescapeMount = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup mounts in /proc/self/mountinfo (proc(5): fields, " - ", fstype, source, super options). */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    const fstype = right[0];
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    const root = unescapeMount(left[3] ?? "/");
    const mountPoint = unescapeMount(left[4] ?? "");
    const superOpts = (right[2] ?? "").split(",");
    const controllers =
      fstype === "cgroup2" ? [] : superOpts.filter((o) => o !== "rw" && o !== "ro" && !o.startsWith("release_agent=") && o !== "clone_children" && o !== "xattr" && o !== "noprefix" && o !== "cpuset_v2_mode" && o !== "favordynmods");
    out.push({ root, mountPoint, v2: fstype === "cgroup2", controllers });
  }
  return out;
}

/** The directory of each of a process' cgroups that is mounted here. */
export function cgroupDirs(memberships: CgroupMembership[], mounts: CgroupMount[]): string[] {
  const dirs: string[] = [];
  for (const m of memberships) {
    const mount =
      m.hierarchy === 0
        ? mounts.find((x) => x.v2)
        : mounts.find((x) => !x.v2 && m.controllers.length > 0 && m.controllers.every((c) => x.controllers.includes(c)));
    if (!mount) continue;
    // A mount of a sub-tree (cgroup namespaces, bind mounts) shows paths relative to its root.
    let rel = m.path;
    if (mount.root !== "/" && (rel === mount.root || rel.startsWith(`${mount.root}/`))) rel = rel.slice(mount.root.length) || "/";
    dirs.push(join(mount.mountPoint, rel));
  }
  return [...new Set(dirs)];
}

/** The cgroup directories of a process on this host. */
export function cgroupDirsOf(pid: number | "self" = "self"): string[] {
  return cgroupDirs(parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, "utf8")), parseCgroupMounts(readFileSync("/proc/self/mountinfo", "utf8")));
}

/**
 * Moves each pid (a whole thread group) into each directory. Returns the failures, one line
 * each; a pid that exited meanwhile is not a failure.
 */
export function movePidsTo(pids: readonly number[], dirs: readonly string[]): string[] {
  const failures: string[] = [];
  for (const dir of dirs) {
    for (const pid of pids) {
      try {
        writeFileSync(join(dir, "cgroup.procs"), `${pid}\n`);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ESRCH") continue;
        failures.push(`pid ${pid} → ${dir}: ${code ?? String(e)}`);
      }
    }
  }
  return failures;
}
