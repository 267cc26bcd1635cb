/** /proc/iomem parsing on real dumps (test/fixtures/iomem/README.md says where each comes from). */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isNvwaError } from "../../src/errors.ts";
import {
  ancestry,
  findRegions,
  flatten,
  formatRange,
  overlaps,
  parseIomem,
  reservations,
  size,
  systemRam,
  type Iomem,
} from "../../src/mem/iomem.ts";
import { humanBytes, memparse, parseSizeAtAddr, suggestSize } from "../../src/mem/size.ts";
import { suggestFreeAddress } from "../../src/mem/accel.ts";

const FIX = join(import.meta.dir, "../fixtures/iomem");
const load = (name: string): Iomem => parseIomem(readFileSync(join(FIX, `${name}.txt`), "utf8"));

describe("parseIomem", () => {
  test("x86_64 host: mixed 8- and 9-digit addresses, nested kernel sections", () => {
    const io = load("x86_64-firecracker-vm");
    expect(io.redacted).toBe(false);
    const ram = systemRam(io);
    expect(ram.map(formatRange)).toEqual(["0x1000-0x9fbff", "0x100000-0xbfffffff", "0x100000000-0x63fffffff"]);
    expect(ram.reduce((s, r) => s + size(r), 0n)).toBe(0x9ec00n + 0xbff00000n + 0x540000000n);
    const [code] = findRegions(io, "kernel code");
    if (code === undefined) throw new Error("no Kernel code region");
    expect(code.depth).toBe(1);
    expect(ancestry(io, code)?.map((n) => n.name)).toEqual(["System RAM", "Kernel code"]);
    // Three levels: Reserved > PCI ECAM > PCI Bus
    expect(Math.max(...flatten(io.roots).map((n) => n.depth))).toBe(2);
  });

  test("arm64 with 6 GiB: RAM past 32 bits, 10-digit device windows, a Crash kernel reservation", () => {
    const io = load("arm64-qemu-virt-6g-crashkernel-cpuparkmem");
    expect(systemRam(io).map(formatRange)).toEqual(["0x40000000-0x1bfffffff"]);
    const ck = findRegions(io, "Crash kernel");
    expect(ck.map(formatRange)).toEqual(["0xec000000-0xfbffffff"]);
    expect(ck.map((r) => humanBytes(size(r)))).toEqual(["256 MiB"]);
    expect(io.roots.at(-1)?.end).toBe(0xffffffffffn);
  });

  test("x86_64 QEMU with crashkernel=128M: the reservation sits in low RAM, the kernel above 4 GiB", () => {
    const io = load("x86_64-qemu-pc-5g-crashkernel");
    expect(findRegions(io, "Crash kernel").map(formatRange)).toEqual(["0xb7000000-0xbeffffff"]);
    expect(findRegions(io, "Kernel code")[0]?.start).toBe(0x16d600000n);
  });

  test("a reservation that lost a piece to the kernel image (memmap=79G$82G) shows as two Reserved ranges around RAM", () => {
    const io = load("x86_64-memmap-overlap-snippet");
    const asked = { start: 82n << 30n, end: (82n << 30n) + (79n << 30n) - 1n };
    const parts = findRegions(io, "Reserved");
    expect(parts.length).toBe(2);
    const inside = reservations(io).filter((n) => overlaps(n, asked) && n.name.startsWith("Kernel"));
    expect(inside.map((n) => n.name)).toEqual(["Kernel code", "Kernel rodata", "Kernel data", "Kernel bss"]);
  });

  test("read without privileges every address is zero: reported as redacted", () => {
    const text = readFileSync(join(FIX, "x86_64-firecracker-vm.txt"), "utf8").replace(/[0-9a-f]+-[0-9a-f]+ :/g, "00000000-00000000 :");
    expect(parseIomem(text).redacted).toBe(true);
  });

  test("a malformed line is an error naming the line", () => {
    try {
      parseIomem("00000000-00000fff : Reserved\nbogus line\n");
      throw new Error("no error");
    } catch (e) {
      expect(isNvwaError(e) && e.code).toBe("iomem.parse");
      expect((e as Error).message).toContain("line 2");
    }
  });
});

describe("sizes", () => {
  test("memparse reads what the kernel reads", () => {
    expect(memparse("64M")).toBe(64n << 20n);
    expect(memparse("0x100000000")).toBe(1n << 32n);
    expect(memparse("1G")).toBe(1n << 30n);
    expect(memparse("010")).toBe(8n);
    expect(memparse("12x")).toBeNull();
    expect(parseSizeAtAddr("200M@0x640000000")).toEqual({ size: 200n << 20n, addr: 0x640000000n });
    expect(parseSizeAtAddr("200M")).toBeNull();
    expect(suggestSize(40n << 20n)).toBe("64M");
    expect(suggestSize(1n << 30n)).toBe("1G");
  });
});

describe("suggestFreeAddress", () => {
  test("picks the highest 2 MiB-aligned stretch that no reservation touches", () => {
    const io = load("arm64-qemu-virt-6g-crashkernel-cpuparkmem");
    const want = 64n << 20n;
    const addr = suggestFreeAddress(io, want);
    if (addr === null) throw new Error("no free address found");
    const r = { start: addr, end: addr + want - 1n };
    expect(addr % (2n << 20n)).toBe(0n);
    expect(reservations(io).filter((n) => overlaps(n, r))).toEqual([]);
    expect(systemRam(io).some((ram) => ram.start <= r.start && r.end <= ram.end)).toBe(true);
    // Below the firmware reservations at the top of RAM (1b8600000…).
    expect(r.end).toBeLessThan(0x1b8600000n);
  });
  test("honours extra ranges to avoid and says null when nothing fits", () => {
    const io = load("arm64-qemu-virt-2g-crashkernel");
    const first = suggestFreeAddress(io, 16n << 20n) ?? 0n;
    const second = suggestFreeAddress(io, 16n << 20n, [{ start: first, end: first + (16n << 20n) - 1n }]) ?? 0n;
    expect(first).toBeGreaterThan(0n);
    expect(second).toBeGreaterThan(0n);
    expect(second).toBeLessThan(first);
    expect(suggestFreeAddress(io, 64n << 30n)).toBeNull();
  });
});
