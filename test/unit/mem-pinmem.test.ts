/**
 * /dev/pinmem ioctls. The request numbers are checked against the values in DESIGN.md §3
 * (from the openEuler driver header); the device itself exists only on openEuler kernels, so
 * on other machines the real call must fail with a sentence that says so.
 */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { PIN_MEM_DEVICE, PIN_MEM_IOCTL, clearPinMemory, finishPinMemoryDump, iow } from "../../ffi/pinmem.ts";
import { isNvwaError } from "../../src/errors.ts";

describe("pin memory ioctl numbers", () => {
  test("match _IOW(0x59, nr, size) as the driver defines them", () => {
    expect(PIN_MEM_IOCTL.setArea).toBe(0x41085901);
    expect(PIN_MEM_IOCTL.clear).toBe(0x40045902);
    expect(PIN_MEM_IOCTL.remap).toBe(0x40045903);
    expect(PIN_MEM_IOCTL.finishDump).toBe(0x40045904);
    expect(PIN_MEM_IOCTL.initPagemapRead).toBe(0x40045905);
    expect(iow(0x59, 2, 4)).toBe(0x40045902);
  });
});

describe("without the driver", () => {
  test.skipIf(existsSync(PIN_MEM_DEVICE))("the real ioctl fails on open, naming the device, the operation and the kernel option", () => {
    for (const run of [() => clearPinMemory(), () => finishPinMemoryDump()]) {
      let err: unknown;
      try {
        run();
      } catch (e) {
        err = e;
      }
      expect(isNvwaError(err)).toBe(true);
      if (!isNvwaError(err)) return;
      expect(err.code).toBe("pinmem.open");
      expect(err.message).toContain("/dev/pinmem");
      expect(err.message).toMatch(/CLEAR_PIN_MEM_AREA|FINISH_PIN_MEM_DUMP/);
      expect(err.hint).toContain("CONFIG_PIN_MEMORY");
    }
  });
  test("a path that is not the driver fails the ioctl itself with ENOTTY", () => {
    let err: unknown;
    try {
      clearPinMemory("/dev/null");
    } catch (e) {
      err = e;
    }
    expect(isNvwaError(err) && err.code).toBe("pinmem.ioctl");
    expect((err as Error).message).toContain("ENOTTY");
  });
});
