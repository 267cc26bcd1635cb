/**
 * reboot(LINUX_REBOOT_CMD_KEXEC) after sync(2) (reboot does not sync). Only the syscall: the guard
 * that decides whether it may be made is src/update/jump.ts's, its only caller.
 */
import { sys, syncAll } from "./libc.ts";

export const LINUX_REBOOT_MAGIC1 = 0xfee1dead;
export const LINUX_REBOOT_MAGIC2 = 672274793;
export const LINUX_REBOOT_CMD_KEXEC = 0x45584543;

/** Returns only when the kernel did not jump (SyscallError on failure). */
export function rebootKexecSyscall(): void {
  syncAll();
  sys("reboot", [LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_KEXEC, null]);
}
