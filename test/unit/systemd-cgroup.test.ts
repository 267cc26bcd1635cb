import { describe, expect, test } from "bun:test";
import { cgroupDirs, parseCgroupMounts, parseProcCgroup } from "../../src/systemd/cgroup.ts";

// A unified (v2-only) host, as on Debian 12 / current systemd.
const V2_CGROUP = "0::/system.slice/redis.service\n";
const V2_MOUNTINFO = [
  "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw",
  "27 21 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot",
  "",
].join("\n");

// A hybrid host: v1 controllers, name=systemd, and the v2 tree at /sys/fs/cgroup/unified.
const HYBRID_CGROUP = [
  "9:name=systemd:/system.slice/redis.service",
  "4:memory:/system.slice/redis.service",
  "2:cpu,cpuacct:/system.slice/redis.service",
  "0::/system.slice/redis.service",
  "",
].join("\n");
const HYBRID_MOUNTINFO = [
  "30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755",
  "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate",
  "32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd",
  "35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct",
  "36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory",
  "",
].join("\n");

describe("cgroup membership to directories", () => {
  test("parse /proc/<pid>/cgroup", () => {
    expect(parseProcCgroup(HYBRID_CGROUP)).toEqual([
      { hierarchy: 9, controllers: ["name=systemd"], path: "/system.slice/redis.service" },
      { hierarchy: 4, controllers: ["memory"], path: "/system.slice/redis.service" },
      { hierarchy: 2, controllers: ["cpu", "cpuacct"], path: "/system.slice/redis.service" },
      { hierarchy: 0, controllers: [], path: "/system.slice/redis.service" },
    ]);
  });

  test("unified host: one directory", () => {
    expect(cgroupDirs(parseProcCgroup(V2_CGROUP), parseCgroupMounts(V2_MOUNTINFO))).toEqual(["/sys/fs/cgroup/system.slice/redis.service"]);
  });

  test("hybrid host: each hierarchy's directory", () => {
    expect(cgroupDirs(parseProcCgroup(HYBRID_CGROUP), parseCgroupMounts(HYBRID_MOUNTINFO))).toEqual([
      "/sys/fs/cgroup/systemd/system.slice/redis.service",
      "/sys/fs/cgroup/memory/system.slice/redis.service",
      "/sys/fs/cgroup/cpu,cpuacct/system.slice/redis.service",
      "/sys/fs/cgroup/unified/system.slice/redis.service",
    ]);
  });

  test("a mount of a sub-tree shows paths relative to its root; unmounted hierarchies are skipped", () => {
    const mounts = parseCgroupMounts("40 30 0:40 /system.slice /mnt/cg rw - cgroup2 cgroup2 rw\n");
    expect(mounts).toEqual([{ root: "/system.slice", mountPoint: "/mnt/cg", v2: true, controllers: [] }]);
    expect(cgroupDirs(parseProcCgroup("0::/system.slice/a.service\n7:pids:/x\n"), mounts)).toEqual(["/mnt/cg/a.service"]);
  });

  test("octal escapes in mount points", () => {
    const mounts = parseCgroupMounts("40 30 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,pids\n");
    expect(mounts[0]?.mountPoint).toBe("/mnt/with space");
    expect(mounts[0]?.controllers).toEqual(["pids"]);
  });
});
