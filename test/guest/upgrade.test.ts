/**
 * The proof: a real kernel upgrade (Debian 6.1 → 6.12) inside a QEMU guest, with a counter and
 * Redis kept alive by nvwa; and a refused update that leaves everything running.
 * Each scenario boots the guest under TCG, so they are few and check a lot each.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureGuestRepo, failureReport, ROOT, runScenario, type ScenarioRun } from "./scenarios.ts";
import { expectPeerKept } from "./expect-peer.ts";

// The guest installs nvwa from the signed RPM repo, so the repo is built from the fresh executable.
beforeAll(async () => {
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
  await ensureGuestRepo();
}, 300_000);

function passed(r: ScenarioRun): void {
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);
}

interface StatusJson {
  phase: string;
  kernelFrom: string;
  kernelTo: string;
  targets: { name: string; phase: string; downtimeMs?: number }[];
  phases: { name: string; ms: number }[];
}

describe("guest", () => {
  test("upgrade (started as kured starts it, --latest): 6.1 → 6.12 with a counter and Redis kept alive, a host peer's TCP connection to Redis intact, and the network carried over", async () => {
    const r = await runScenario("upgrade");
    passed(r);
    expect(r.results.kernel_before).toBe(r.kernels.old);
    expect(r.results.kernel_after).toBe(r.kernels.new);
    expect(r.results.phase).toBe("restored");
    // kured's contract: `nsenter -m/proc/1/ns/mnt -- nvwa update --latest` from another mount namespace.
    expect(readFileSync(join(r.out, "results/update.txt"), "utf8")).toContain(`--latest: ${r.kernels.old} → ${r.kernels.new}`);
    expect(Number(r.results.redis_keys)).toBeGreaterThanOrEqual(100_000);
    expect(r.results.net).toContain("10.123.0.1/24");
    const s = r.nvwaStatus as StatusJson;
    expect(s.kernelFrom).toBe(r.kernels.old);
    expect(s.kernelTo).toBe(r.kernels.new);
    expect(s.targets).toHaveLength(3); // the counter, the loopback TCP client, Redis
    for (const t of s.targets) {
      expect(t.phase).toBe("restored");
      expect(t.downtimeMs).toBeGreaterThan(0);
    }
    // The host-side peer: one connection, a reply before the jump and one after, in order.
    expectPeerKept(r);
    expect(r.results.tcp_loopback).toStartWith("INCR -> 2 ");
    expect(r.results.tcp_lock).toBe("holding back the packets of 3 TCP connection");
    process.stdout.write(`upgrade downtimes: ${s.targets.map((t) => `${t.name} ${t.downtimeMs} ms`).join(", ")}\n`);
  }, 1_800_000);

  test("rollback: an undumpable target refuses the update and everything runs on", async () => {
    const r = await runScenario("rollback");
    passed(r);
    expect(r.results.update_rc).toBe("1");
    expect(r.results.phase).toBe("rolled-back");
  }, 1_200_000);
});
