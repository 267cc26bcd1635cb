/**
 * openEuler pin memory driver (/dev/pinmem, drivers/char/pin_memory.c): the ioctls nvwa needs
 * around the dumps. Each takes a pointer to an int the driver ignores, as the original tool
 * (nvwa-pin.c) passes it.
 */
import { closeSync, openSync } from "node:fs";
import { ptr } from "bun:ffi";
import { NvwaError } from "./error.ts";
import { errno, libc } from "./libc.ts";
import { errnoName } from "./errno.ts";

export const PIN_MEM_DEVICE = "/dev/pinmem";
export const PIN_MEM_MAGIC = 0x59;

/** _IOW(type, nr, size) from include/uapi/asm-generic/ioctl.h (same on x86_64 and arm64). */
export function iow(type: number, nr: number, size: number): number {
  const IOC_WRITE = 1;
  return ((IOC_WRITE << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

export const PIN_MEM_IOCTL = {
  /** struct pin_mem_area_set is 8 + 16*16 bytes: the kernel header's _IOW size. */
  setArea: iow(PIN_MEM_MAGIC, 1, 8 + 16 * 16),
  clear: iow(PIN_MEM_MAGIC, 2, 4),
  remap: iow(PIN_MEM_MAGIC, 3, 4),
  finishDump: iow(PIN_MEM_MAGIC, 4, 4),
  initPagemapRead: iow(PIN_MEM_MAGIC, 5, 4),
} as const;

export type PinMemOp = "clear" | "finishDump" | "initPagemapRead";

const OP_SENTENCE: Record<PinMemOp, string> = {
  clear: "clear the pin memory records (CLEAR_PIN_MEM_AREA)",
  finishDump: "seal the pinned pages for the next kernel (FINISH_PIN_MEM_DUMP)",
  initPagemapRead: "initialise the pin memory page walker (INIT_PAGEMAP_READ)",
};

function openDevice(device: string, op: PinMemOp): number {
  try {
    return openSync(device, "r+");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const missing = err.code === "ENOENT" || err.code === "ENODEV" || err.code === "ENXIO";
    throw new NvwaError("pinmem.open", `cannot open ${device} to ${OP_SENTENCE[op]}: ${err.code ?? err.message}`, {
      hint: missing
        ? "this kernel has no pin memory driver: boot an openEuler kernel with CONFIG_PIN_MEMORY_DEV, or set enable_pin_memory: false"
        : "run nvwa as root",
      details: { device, op, errno: err.code },
      cause: e,
    });
  }
}

/** Runs one pin memory ioctl. `device` exists for tests that need a path without the driver. */
export function pinMemIoctl(op: PinMemOp, device: string = PIN_MEM_DEVICE): void {
  const fd = openDevice(device, op);
  try {
    const arg = new Int32Array(1);
    const r = libc().ioctl(fd, PIN_MEM_IOCTL[op], ptr(arg));
    if (r < 0) {
      const e = errno();
      throw new NvwaError("pinmem.ioctl", `${device}: failed to ${OP_SENTENCE[op]}: ${errnoName(e)}`, {
        hint:
          op === "finishDump"
            ? "the pinned pages will not survive the jump; roll back, or disable enable_pin_memory and retry"
            : "check `dmesg` for pin memory messages; the pinmemory= reservation may be too small",
        details: { device, op, errno: e, errnoName: errnoName(e) },
      });
    }
  } finally {
    closeSync(fd);
  }
}

export const clearPinMemory = (device?: string): void => pinMemIoctl("clear", device);
export const finishPinMemoryDump = (device?: string): void => pinMemIoctl("finishDump", device);
export const initPagemapRead = (device?: string): void => pinMemIoctl("initPagemapRead", device);
