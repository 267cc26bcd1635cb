/**
 * nvwa's TCP lock (src/net/tcp-lock.ts) against the real kernel's nf_tables, in a network
 * namespace of its own (test/host/tcp-lock-worker.ts under `unshare -n`): the connections of a
 * process are read from /proc, their packets are really held back while the lock is in place,
 * and TCP's retransmission delivers them once it is removed. Needs root.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

test("a locked connection delivers nothing; removing the lock lets TCP deliver what was held (IPv4 and IPv6)", () => {
  const r = Bun.spawnSync(["unshare", "-n", process.execPath, join(import.meta.dir, "tcp-lock-worker.ts")], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`worker failed: ${r.stderr.toString()}`);
  const out = JSON.parse(r.stdout.toString()) as {
    tuples: { family: string; local: string; remote: string }[];
    whileLocked: string[];
    afterUnlock: string[];
    final: string;
    removedFirst: boolean;
    removedAgain: boolean;
  };
  // Both ends of both connections live in the worker: four tuples, two per family.
  expect(out.tuples.filter((t) => t.family === "inet").map((t) => [t.local, t.remote])).toEqual([
    ["127.0.0.1", "127.0.0.1"],
    ["127.0.0.1", "127.0.0.1"],
  ]);
  expect(out.tuples.filter((t) => t.family === "inet6")).toHaveLength(2);
  expect(out.whileLocked).toEqual([]);
  expect(out.afterUnlock.sort()).toEqual(["locked-v4", "locked-v6"]);
  expect(out.final).toBe("locked-v4+after");
  expect([out.removedFirst, out.removedAgain]).toEqual([true, false]);
});
