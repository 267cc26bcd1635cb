/**
 * Syscall numbers nvwa calls directly, per architecture. glibc has no wrapper for
 * kexec_file_load, and going through syscall() for reboot lets us pass the magic numbers
 * ourselves instead of trusting a wrapper's defaults. Numbers come from the kernel's
 * arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h (arm64).
 */
export type Arch = "x64" | "arm64";

export const SYSCALLS = {
  x64: { kexec_file_load: 320, kexec_load: 246, reboot: 169, memfd_create: 319, pidfd_open: 434 },
  arm64: { kexec_file_load: 294, kexec_load: 104, reboot: 142, memfd_create: 279, pidfd_open: 434 },
} as const satisfies Record<Arch, Record<string, number>>;

export type SyscallName = keyof (typeof SYSCALLS)["x64"];

export function currentArch(): Arch {
  if (process.arch === "x64" || process.arch === "arm64") return process.arch;
  throw new Error(`unsupported architecture ${process.arch}: nvwa runs on x86_64 and arm64`);
}

export function syscallNumber(name: SyscallName, arch: Arch = currentArch()): number {
  return SYSCALLS[arch][name];
}
