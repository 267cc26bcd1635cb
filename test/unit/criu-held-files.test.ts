import { expect, test } from "bun:test";
import { onVolatileFs, parseMounts } from "../../src/criu/held-files.ts";

const MOUNTINFO = [
  "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "23 22 0:21 / /run rw,nosuid,nodev,noexec,relatime shared:2 - tmpfs tmpfs rw,size=401928k,mode=755",
  "24 23 0:22 / /run/lock rw,nosuid,nodev,noexec,relatime shared:3 - tmpfs tmpfs rw,size=5120k",
  "25 22 0:23 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw",
  "26 22 254:1 / /run/data rw,relatime shared:5 - ext4 /dev/vdb rw",
  "27 22 0:24 / /srv/my\\040dir rw shared:6 - tmpfs tmpfs rw",
].join("\n");

test("parseMounts reads each mount point and its file system type", () => {
  expect(parseMounts(MOUNTINFO)).toEqual([
    { point: "/", fstype: "ext4" },
    { point: "/run", fstype: "tmpfs" },
    { point: "/run/lock", fstype: "tmpfs" },
    { point: "/dev/shm", fstype: "tmpfs" },
    { point: "/run/data", fstype: "ext4" },
    { point: "/srv/my dir", fstype: "tmpfs" },
  ]);
});

test("onVolatileFs: the deepest mount above the path decides", () => {
  const m = parseMounts(MOUNTINFO);
  expect(onVolatileFs("/run/lighttpd.pid", m)).toBe(true);
  expect(onVolatileFs("/run/lock/x.lock", m)).toBe(true);
  expect(onVolatileFs("/dev/shm/seg", m)).toBe(true);
  expect(onVolatileFs("/run/data/db", m)).toBe(false); // a disk mounted under /run
  expect(onVolatileFs("/var/log/nginx/access.log", m)).toBe(false);
  expect(onVolatileFs("/running/x", m)).toBe(false); // /run is not a prefix of /running
  expect(onVolatileFs("/srv/my dir/f", m)).toBe(true);
});
