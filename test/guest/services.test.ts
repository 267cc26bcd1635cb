/**
 * The service types besides notify across a real kernel upgrade (Debian 6.1 → 6.12) in a QEMU
 * guest: Type=simple, Type=forking (PIDFile=) and Type=oneshot with RemainAfterExit=yes whose
 * ExecStart leaves a counter running, and a Type=simple running as User=daemon whose
 * RuntimeDirectory= and StateDirectory= must stay its own; then `nvwa init` clearing a stray drop-in and a loaded
 * kernel; and a service with no output setting (journal streams, as distributions ship units)
 * that also logs through syslog(3), whose lines continue under its unit after the jump. One boot
 * pair checks all of it (TCG boots are slow).
 */
import { beforeAll, expect, test } from "bun:test";
import { failureReport, ROOT, runScenario } from "./scenarios.ts";

beforeAll(() => {
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
}, 300_000);

interface StatusJson {
  phase: string;
  kernelTo: string;
  targets: { name: string; phase: string; downtimeMs?: number }[];
}

test("services: simple, forking and oneshot come back under systemd after a fast jump (reboot(KEXEC)); nvwa init cleans up", async () => {
  const r = await runScenario("services");
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);
  expect(r.results.kernel_before).toBe(r.kernels.old);
  expect(r.results.kernel_after).toBe(r.kernels.new);
  expect(r.results.phase).toBe("restored");
  for (const n of ["svc-simple", "svc-forking", "svc-user"]) {
    expect(r.results[`${n}_state`]).toBe("active/running");
    expect(r.results[`${n}_mainpid`]).toBe(r.results[`${n}_pid_before`]);
  }
  expect(r.results["svc-oneshot_state"]).toBe("active/exited");
  expect((r.results["svc-oneshot_cgroup"] ?? "").split(" ")).toContain(r.results["svc-oneshot_pid_before"] ?? "none");
  // User= with RuntimeDirectory=/StateDirectory=: still the unit's user's after the jump, the
  // restored counter still that user (daemon is uid 1 on Debian) and counting on in them.
  expect(r.results["svc-user_owners"]).toBe("/run/svc-user daemon:daemon,/var/lib/svc-user daemon:daemon,/var/lib/svc-user/count.log daemon:daemon,");
  expect(r.results["svc-user_uid"]).toBe("1");
  // A service with journal output, as shipped: its stdout and syslog lines continue under its unit (#13).
  expect(r.results["svc-journal_pid_before"]).toMatch(/^\d+$/);
  expect(r.results.journal_check).toStartWith("ok ");
  expect(r.results.journal_check).toContain(`pids [${r.results["svc-journal_pid_before"]}]`);
  expect(r.results.journal_check).toContain("transports [stdout, syslog]");
  expect(r.results.journal_under_nvwa).toBe("0");
  // Debian's stock redis-server.service: refused in preflight, naming its namespace and settings.
  expect(r.results.stock_redis).toMatch(/^fail redis-server\.service runs in (a namespace|namespaces) of its own \(mnt[a-z, ]*, set up by /);
  expect(r.results.stock_redis).toContain("PrivateTmp=yes");
  expect(r.results.init).toContain("foo.service.d/nvwa-restore.conf");
  expect(r.results.init).toContain("the kernel loaded for kexec");
  expect(r.results.init2).toStartWith("nothing to remove");
  const s = r.nvwaStatus as StatusJson;
  expect(s.kernelTo).toBe(r.kernels.new);
  expect(s.targets.map((t) => t.name).sort()).toEqual(["svc-forking.service", "svc-journal.service", "svc-oneshot.service", "svc-simple.service", "svc-user.service"]);
  for (const t of s.targets) {
    expect(t.phase).toBe("restored");
    expect(t.downtimeMs).toBeGreaterThan(0);
  }
  process.stdout.write(`svc-journal: ${r.results.journal_check}\n`);
  process.stdout.write(`stock redis-server.service: ${r.results.stock_redis}\n`);
  process.stdout.write(`services downtimes: ${s.targets.map((t) => `${t.name} ${t.downtimeMs} ms`).join(", ")}\n`);
}, 1_800_000);
