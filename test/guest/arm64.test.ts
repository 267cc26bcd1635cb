/**
 * The arm64 proof: nvwa's arm64 build moves a counter from Debian's arm64 6.1 kernel to 6.12 inside
 * `qemu-system-aarch64 -M virt -cpu max` (TCG), installed from its signed aarch64 RPM.
 *
 * Debian's arm64 kernels are raw arm64 Images built without CONFIG_KEXEC_FILE, so this is also the
 * test of nvwa's fallback loader (`kexec_exe -c`, kexec-tools through kexec_load), of the arm64
 * syscall numbers (the kexec_file_load probe, seen by strace, answers ENOSYS; reboot(KEXEC) makes
 * the fast jump) and of the restore on the other side. Before the jump, a refused update to a gzip'd
 * copy of the kernel covers the unwrap into a memfd (memfd_create), `kexec -c` from that memfd and
 * the rollback's `kexec -u` on arm64. One boot pair checks all of it: under TCG an arm64 boot is
 * slow. The image (`build-image.sh arm64`: 10-12 min cold, under qemu-user-static) is cached like
 * the x86 one.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureGuestRepo, failureReport, ROOT, runScenario } from "./scenarios.ts";

const timings: Record<string, string> = {};

// The aarch64 RPM is built from a fresh arm64 executable; the image is built (or found) here so that
// its time is measured apart from the run's.
beforeAll(async () => {
  let t = performance.now();
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "arm64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
  await ensureGuestRepo("arm64");
  timings.binary_and_repo_s = ((performance.now() - t) / 1000).toFixed(1);
  t = performance.now();
  const b = Bun.spawnSync(["bash", join(ROOT, "test/guest/build-image.sh"), "arm64"], { cwd: ROOT, stdout: "pipe", stderr: "inherit" });
  expect(b.exitCode).toBe(0);
  timings.image_s = ((performance.now() - t) / 1000).toFixed(1);
}, 1_800_000);

interface StatusJson {
  phase: string;
  kernelFrom: string;
  kernelTo: string;
  loader?: string;
  targets: { name: string; kind: string; phase: string; rootPid: number; downtimeMs?: number }[];
  phases: { name: string; ms: number }[];
}

function readKv(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  return Object.fromEntries(
    readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

test("arm64: 6.1 → 6.12 with nvwa's arm64 build, loaded by the kexec -c fallback, fast jump, counter kept", async () => {
  const r = await runScenario("arm64", { arch: "arm64" });
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);

  // The guest is arm64 and the executable it ran is the AArch64 build.
  expect(r.results.arch).toBe("aarch64");
  expect(r.results.nvwa_elf_machine).toBe("183");
  expect(r.results.kernel_format).toContain("raw arm64 Image");

  // The kernel changed: Debian's arm64 6.1 → 6.12 (bookworm-backports).
  expect(r.kernels.old).toStartWith("6.1.");
  expect(r.kernels.new).toStartWith("6.12.");
  expect(r.results.kernel_before).toBe(r.kernels.old);
  expect(r.results.kernel_after).toBe(r.kernels.new);

  // Syscall numbers: kexec_file_load is 294 on arm64, which strace (aarch64 table) names; the
  // kernel lacks it (ENOSYS), so nvwa chose the fallback loader everywhere it reports one.
  expect(r.results.check_probe).toMatch(/^kexec_file_load\(.*\)\s*= -1 ENOSYS/);
  expect(r.results.check_loader).toContain("kexec_exe -c");
  expect(r.results.journal_loader).toContain("kexec_exe -c");
  expect(r.results.loader).toBe("kexec_exe -c");

  // The refused update: gzip unwrapped into a memfd, loaded with kexec -c, unloaded on rollback.
  expect(r.results.rollback_rc).toBe("1");
  expect(r.results.rollback_loaded).toMatch(/kexec_exe -c \(gzip.* → arm64 Image/);
  expect(r.results.rollback_phase).toBe("rolled-back");

  // The fast jump: nvwa's reboot(LINUX_REBOOT_CMD_KEXEC) (142 on arm64) ended boot 1 with no orderly
  // shutdown between the update and the new kernel.
  const serial = readFileSync(join(r.out, "serial.log"), "utf8");
  const from = serial.indexOf("NVWA-GUEST boot=1 update-start");
  const jump = serial.indexOf("Starting new kernel", from);
  expect(from).toBeGreaterThan(0);
  expect(jump).toBeGreaterThan(from);
  expect(serial.slice(from, jump)).not.toContain("systemd-shutdown");
  expect(serial.slice(from, jump)).not.toContain("Reached target kexec.target");
  expect(r.results.journal_jump).toBe(`jumping to ${r.kernels.new} mode=fast`);

  // The counter: same pid, restored, counting on without a reset (asserted in the guest).
  expect(r.results.phase).toBe("restored");
  expect(r.results.counter_pid_after).toBe(r.results.counter_pid);
  expect(Number(r.results.counter_last)).toBeGreaterThan(0);
  expect(r.results.dropins).toBe("none");
  const s = r.nvwaStatus as StatusJson;
  expect(s.kernelFrom).toBe(r.kernels.old);
  expect(s.kernelTo).toBe(r.kernels.new);
  expect(s.loader).toBe("kexec_exe -c");
  expect(s.targets).toHaveLength(1);
  expect(s.targets[0]?.phase).toBe("restored");
  expect(String(s.targets[0]?.rootPid)).toBe(r.results.counter_pid ?? "none");
  expect(s.targets[0]?.downtimeMs).toBeGreaterThan(0);

  const run = readKv(join(r.out, "timings.txt"));
  const line = [
    `image ${timings.image_s} s`,
    `boot 6.1 → runner ${run.boot1_to_userspace_s} s`,
    `jump → runner on 6.12 ${run.kexec1_jump_to_userspace_s} s`,
    `QEMU total ${run.qemu_total_s} s`,
    `counter downtime ${s.targets[0]?.downtimeMs} ms`,
    `phases ${s.phases.map((p) => `${p.name} ${p.ms} ms`).join(", ")}`,
  ].join("; ");
  process.stdout.write(`arm64 timings: ${line}\n`);
}, 1_800_000);
