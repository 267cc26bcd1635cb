/**
 * The fault matrix in the guest (scenarios/faults/run.sh): the daemon killed with SIGKILL during
 * the checkpoint, after the commit and during the restore; nvwa.service stopped during the
 * checkpoint (it rolls back before exiting); power cut (sysrq b, QEMU resetting into
 * the old kernel) during the checkpoint, after the commit and during the boot-side restore; images
 * damaged; a saved pid taken at boot. No fault is mocked: each is caused for real, at a moment
 * nvwa's fault points hold still (src/fault-point.ts). Five boots of one guest check all of it.
 */
import { beforeAll, expect, test } from "bun:test";
import { ensureGuestRepo, failureReport, ROOT, runScenario } from "./scenarios.ts";

beforeAll(async () => {
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
  await ensureGuestRepo();
}, 300_000);

test("faults: no target lost to a killed daemon or a power cut at any step; failures named with their reason", async () => {
  // --allow-reboot: a power cut resets the machine into the old kernel instead of ending QEMU.
  const r = await runScenario("faults", { args: ["--allow-reboot"] });
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);
  const x = r.results;
  // a: killed during the second dump → restarted by systemd, rolled back, the client said so.
  expect(x.a_client_rc).toBe("4");
  expect(x.a_client).toContain("died during checkpointing of update");
  expect(x.a_restarts).toBe("1");
  expect(x.a_recovery).toContain("rolled the update back");
  // a2: `systemctl stop nvwa` during the checkpoint → the daemon rolls back first, then exits.
  expect(x.a2_client_rc).toBe("1");
  expect(x.a2_client).toContain("update.stopped");
  // b: killed after the commit and again during its own restore → restored once, on this kernel.
  expect(x.b_client).toContain("died during committed of update");
  expect(x.b_recovery).toContain("restores the targets on this kernel");
  // c: power cut during the checkpoint → every target named as lost.
  expect(x.c_error).toContain("before anything was committed");
  // d: power cut after the commit → everything restored on the old kernel.
  expect(x.d_recovery).toContain("without the jump");
  // g, h: after the jump, a damaged target and a pid clash are reported by name; the rest restored.
  expect(x.kernel_after).toBe(r.kernels.new);
  expect(x.g_c1_error).toContain("restore");
  expect(x.h_c2_error).toMatch(/^pid \d+ of python3 \(pid \d+\) is taken by sleep/);
  // e: power cut during the boot-side restore → the rest restored at the next boot, none twice.
  expect(x.phase).toBe("restore-failed");
  expect(x.e_recovery).toContain("interrupted");
  const ms = (k: string): string => `${(Number(x[k]) / 1000).toFixed(1)} s`;
  process.stdout.write(`faults: killed daemon → targets running again: rollback ${ms("a_resumed_ms")}, restore after two kills ${ms("b_restored_ms")}\n`);
}, 2_400_000);
