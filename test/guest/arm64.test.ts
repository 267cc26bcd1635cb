/**
 * The arm64 proof: nvwa's arm64 build, installed from its signed aarch64 RPM, moves its targets from
 * Debian's arm64 6.1 kernel to 6.12 inside `qemu-system-aarch64 -M virt -cpu max` (TCG).
 *
 * Debian's arm64 kernels are raw arm64 Images built without CONFIG_KEXEC_FILE, and the arm64 image
 * has no kexec-tools: every load is nvwa's own kexec_load (syscall 104, src/kexec/arm64/), seen by
 * strace on the daemon. Two boot pairs, each checking much (an arm64 boot is slow under TCG):
 * - direct boot (QEMU -kernel, QEMU's device tree): a counter and Redis (Type=notify, its keys, a TCP
 *   peer on the host) with restore_net; a refused update to a gzip'd kernel (unwrapped, loaded,
 *   unloaded on rollback); then the orderly jump, into a kernel that booted from nvwa's tree with
 *   KASLR on;
 * - UEFI boot (EDK2 firmware, ACPI, the EFI stub's tree): a counter across the fast jump, the
 *   firmware's tables still there after it.
 * The image (`build-image.sh arm64`: 10-12 min cold, under qemu-user-static) is cached like the x86 one.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureGuestRepo, failureReport, ROOT, runScenario } from "./scenarios.ts";
import { expectPeerKept } from "./expect-peer.ts";

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

test("arm64: 6.1 → 6.12 loaded by nvwa's own kexec_load (no kexec-tools), orderly jump, Redis with its keys and TCP peer, the counter and the network kept, after a rollback", async () => {
  const r = await runScenario("arm64", { arch: "arm64" });
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);

  // The guest is arm64, the executable it ran is the AArch64 build, and there is no kexec-tools.
  expect(r.results.arch).toBe("aarch64");
  expect(r.results.nvwa_elf_machine).toBe("183");
  expect(r.results.kernel_format).toContain("raw arm64 Image");
  expect(r.results.kexec_tools).toBe("absent");

  // The kernel changed: Debian's arm64 6.1 → 6.12 (bookworm-backports).
  expect(r.kernels.old).toStartWith("6.1.");
  expect(r.kernels.new).toStartWith("6.12.");
  expect(r.results.kernel_before).toBe(r.kernels.old);
  expect(r.results.kernel_after).toBe(r.kernels.new);

  // The loader: the kexec_file_load probe (294) answers ENOSYS, so nvwa says it loads with
  // kexec_load itself, and why; strace on the daemon shows the call: four segments, the arm64 flag.
  expect(r.results.check_probe).toMatch(/^kexec_file_load\(.*\)\s*= -1 ENOSYS/);
  expect(r.results.check_loader).toContain("kexec_load: the running kernel was built without kexec_file_load");
  expect(r.results.jump_strace).toMatch(/^kexec_load\(0x[0-9a-f]+, 4, \[.*\], KEXEC_ARCH_AARCH64\) = 0/);
  expect(r.results.journal_loader).toContain("with kexec_load: ");
  expect(r.results.journal_segments).toMatch(/^kexec_load segments: kernel 0x[0-9a-f]+-0x[0-9a-f]+ .*, initrd .*, dtb .*, stub .*; entry stub at 0x[0-9a-f]+; device tree with \/memory nodes, fresh kaslr-seed and rng-seed/);
  expect(r.results.loader).toBe("kexec_load");

  // The refused update: gzip unwrapped, loaded natively, unloaded (kexec_load with no segments) on rollback.
  expect(r.results.rollback_rc).toBe("1");
  expect(r.results.rollback_loaded).toMatch(/kexec_load \(gzip.* → arm64 Image/);
  expect(r.results.rollback_phase).toBe("rolled-back");
  expect(r.results.rollback_strace).toMatch(/kexec_load\(0x[0-9a-f]+, 4, .*KEXEC_ARCH_AARCH64\) = 0\|kexec_load\(NULL, 0, NULL, KEXEC_ARCH_AARCH64\) = 0/);

  // The orderly jump: systemd's shutdown ran between the update and the new kernel, and the new
  // kernel came up from nvwa's stub with nvwa's device tree, its command line and KASLR.
  const serial = readFileSync(join(r.out, "serial.log"), "utf8");
  const from = serial.indexOf("NVWA-GUEST boot=1 update-start");
  const jump = serial.indexOf("Starting new kernel", from);
  expect(from).toBeGreaterThan(0);
  expect(jump).toBeGreaterThan(from);
  expect(serial.slice(from, jump)).toContain("systemd-shutdown");
  expect(r.results.dt_bootargs).toContain("root=/dev/vda");
  expect(r.results.kaslr_seed).toBe("0000000000000000"); // nvwa's seed, read and zeroed by the kernel
  expect(r.results.kaslr_after).toBe("KASLR enabled");

  // The targets: same pids, restored; Redis with every key; the peer's one connection; the network.
  expect(r.results.phase).toBe("restored");
  expect(Number(r.results.counter_last)).toBeGreaterThan(0);
  expect(r.results.redis_keys).toBe("20002"); // 20 000 populated, the marker, the host peer's counter
  expect(r.results.redis_mainpid).toBeTruthy();
  expectPeerKept(r);
  expect(r.results.net).toContain("10.123.0.1/24");
  expect(r.results.dropins).toBe("none");
  const s = r.nvwaStatus as StatusJson;
  expect(s.kernelFrom).toBe(r.kernels.old);
  expect(s.kernelTo).toBe(r.kernels.new);
  expect(s.loader).toBe("kexec_load");
  expect(s.targets).toHaveLength(2);
  for (const t of s.targets) {
    expect(t.phase).toBe("restored");
    expect(t.downtimeMs).toBeGreaterThan(0);
  }

  const run = readKv(join(r.out, "timings.txt"));
  const line = [
    `image ${timings.image_s} s`,
    `boot 6.1 → runner ${run.boot1_to_userspace_s} s`,
    `jump → runner on 6.12 ${run.kexec1_jump_to_userspace_s} s`,
    `QEMU total ${run.qemu_total_s} s`,
    `downtimes ${s.targets.map((t) => `${t.name} ${t.downtimeMs} ms`).join(", ")}`,
    `phases ${s.phases.map((ph) => `${ph.name} ${ph.ms} ms`).join(", ")}`,
  ].join("; ");
  process.stdout.write(`arm64 timings: ${line}\n`);
}, 2_400_000);

test("arm64 through UEFI firmware (EDK2, ACPI): the firmware's tree handed on by nvwa's kexec_load, fast jump, counter kept", async () => {
  const r = await runScenario("arm64-uefi", { arch: "arm64", args: ["--uefi"] });
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);
  expect(r.results.kernel_before).toBe(r.kernels.old);
  expect(r.results.kernel_after).toBe(r.kernels.new);
  // EFI and ACPI before and after the jump: the new kernel found the firmware through linux,uefi-*.
  expect(r.results.before_efi).toMatch(/^efi: EFI v.* by EDK II/);
  expect(r.results.after_efi).toMatch(/^efi: EFI v.* by EDK II/);
  expect(Number(r.results.before_fdt_bytes)).toBeLessThan(4096); // the stub's /chosen-only tree
  expect(r.results.check_loader).toContain("kexec_load");
  expect(r.results.loader).toBe("kexec_load");
  // enable_pre_dump on arm64: no soft-dirty, said by nvwa check and by the update, dumped in full.
  expect(r.results.check_pre_dump).toContain("arm64 has no soft-dirty page tracking");
  expect(r.results.update_pre_dump).toStartWith("no pre-dump: this kernel has no soft-dirty tracking");
  expect(r.results.journal_segments).toContain("device tree from UEFI (linux,uefi-* kept)");
  expect(r.results.kaslr_after).toBe("KASLR enabled");
  expect(r.results.phase).toBe("restored");
  expect(Number(r.results.counter_last)).toBeGreaterThan(0);
  const s = r.nvwaStatus as StatusJson;
  expect(s.targets[0]?.phase).toBe("restored");
  process.stdout.write(`arm64 UEFI: before ${r.results.before_efi}, KASLR before ${r.results.kaslr_before}, after ${r.results.kaslr_after}; counter downtime ${r.results.downtime_ms} ms\n`);
}, 1_800_000);
