/**
 * podman containers across a real kernel upgrade (6.1 → 6.12) in the QEMU guest (#15), one
 * guest run (scenarios/containers): a container refused in preflight by name (-t), a real
 * checkpoint failure (a container connected to a unix socket outside it) rolled back with every
 * target running as before, then a counting container on podman's bridge network kept across the
 * orderly jump: same id, its in-memory count continued, podman's logs under criu_dir; and Redis
 * in a container on the host's network, its keys in memory and its connection to a peer on the
 * host (tcp-peer.ts) kept through the rollback and the jump; and a counting container run by its
 * unit (`podman generate systemd`), back under that unit each time, conmon its MainPID.
 */
import { beforeAll, expect, test } from "bun:test";
import { expectPeerKept } from "./expect-peer.ts";
import { ensureGuestRepo, failureReport, ROOT, runScenario } from "./scenarios.ts";

beforeAll(async () => {
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
  await ensureGuestRepo();
}, 300_000);

interface StatusJson {
  phase: string;
  targets: { name: string; phase: string }[];
  containers?: { name: string; phase: string; downtimeMs?: number; steps: { name: string; ms: number }[] }[];
}

test("containers: refused by name, a failed checkpoint rolled back, a counting container kept across the jump", async () => {
  const r = await runScenario("containers");
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);
  // 1. preflight
  expect(r.results.refused_rc).toBe("3");
  expect(r.results.refused_message).toContain("container ttyc");
  expect(r.results.refused_message).toContain("has a terminal (-t)");
  // 1b. the daemon killed after web's checkpoint: its restart gives web back through its unit
  expect(r.results.killed_web_state).toBe("exited");
  expect(r.results.killed_client_rc).toBe("4");
  expect(r.results.killed_web).toBe("active conmon-is-mainpid in-unit-cgroup");
  expect(r.results.killed_counter_state).toBe("running");
  expect(r.results.killed_recovery).toContain("container web resumed");
  // 2. the failed checkpoint and its rollback
  expect(r.results.failed_rc).not.toBe("0");
  expect(r.results.failed_message).toContain("cannot checkpoint container unixpeer: unix: External socket is used");
  expect(r.results.failed_message).toContain("; rolled back: ");
  expect(r.results.failed_message).toMatch(/rolled back: \d+, counter, redis, web resumed/);
  expect(r.results.unixpeer_dump_log).toBe("kept");
  expect(r.results.rollback_counter_state).toBe("running");
  expect(r.results.rollback_unixpeer_state).toBe("running");
  expect(r.results.rollback_kexec_loaded).toBe("0");
  expect(r.results.rollback_counter).toContain("breaks []");
  expect(r.results.rollback_redis_state).toBe("running");
  expect(r.results.rollback_redis_keys).toBe("5002");
  expect(r.results.rollback_redis_peer).toBe("kept");
  expect(r.results.rollback_web).toBe("active conmon-is-mainpid in-unit-cgroup");
  // 3. the jump
  expect(r.results.kernel_after).toBe(r.kernels.new);
  expect(r.results.phase).toBe("restored");
  expect(r.results.container_state).toBe("running");
  expect(r.results.container_id_after).toBe(r.results.container_id_before ?? "");
  expect(r.results.container_counter).toContain("breaks []");
  expect(r.results.checkpoint_left).toBe("no");
  expect(r.results.web).toBe("active conmon-is-mainpid in-unit-cgroup");
  expect(r.results.web_counter).toContain("breaks []");
  expect(r.results.redis_state).toBe("running");
  expect(r.results.redis_keys).toBe("5002");
  expect(r.results.redis_marker).toBe(`before-${r.kernels.old}`);
  // The host's side: one connection, an INCR answered on it before the jump and one after.
  expectPeerKept(r);
  expect(r.results.after_init).toBe("running running running");
  const s = r.nvwaStatus as StatusJson;
  expect(s.containers?.map((c) => [c.name, c.phase])).toEqual([
    ["counter", "restored"],
    ["redis", "restored"],
    ["web", "restored"],
  ]);
  for (const c of s.containers ?? []) process.stdout.write(`container ${c.name}: downtime ${c.downtimeMs} ms; ${c.steps.map((x) => `${x.name} ${x.ms} ms`).join(", ")}\n`);
}, 1_800_000);
