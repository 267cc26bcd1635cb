/**
 * What the open fds of some processes point to, as /proc/<pid>/fd shows it ("socket:[123]",
 * "/run/lighttpd.pid", "pipe:[9]"). Read by the checkpoint (held tmpfs files, TCP sockets) while
 * the trees are frozen; a process or fd gone meanwhile contributes nothing.
 */
import { readdirSync, readlinkSync } from "node:fs";

export function fdLinks(pids: readonly number[]): string[] {
  const out: string[] = [];
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        out.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}
