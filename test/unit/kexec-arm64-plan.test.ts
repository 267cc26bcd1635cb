/**
 * The native arm64 loader's pure parts: the entry stub, the segment planner and the whole load
 * built from real inputs — the arm64 guest's /proc/iomem and /sys/firmware/fdt (direct and UEFI
 * boots, test/fixtures/fdt/), the derived openEuler layout (test/fixtures/iomem/) and Debian's real
 * arm64 Image — compared with what kexec-tools 2.0.25 chose for the same inputs in the same guest
 * (`kexec -d -l`, recorded beside the trees).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { segmentArray, KEXEC_ARCH_AARCH64, KEXEC_QUICK } from "../../ffi/kexec.ts";
import { isNvwaError } from "../../src/errors.ts";
import { buildArm64Load, DTB_PADDING } from "../../src/kexec/arm64/build.ts";
import { KASLR_SEED_BYTES, RNG_SEED_BYTES } from "../../src/kexec/arm64/chosen.ts";
import { findNode, getProp, parseFdt, readCells, readString, type FdtNode } from "../../src/kexec/arm64/fdt.ts";
import { explainKexecLoad, loadArm64Native, pageSizeFromAuxv, runningPageSize } from "../../src/kexec/arm64/load.ts";
import { ERRNO } from "../../ffi/errno.ts";
import { freeRanges, planSegments, readImageHeader, type PlanInputs, type SegmentPlan } from "../../src/kexec/arm64/plan.ts";
import { br, entryStub, ldrLiteral64, movZero64, STUB_SIZE } from "../../src/kexec/arm64/stub.ts";
import { unwrapKernel } from "../../src/kexec/format.ts";
import { findRegions, flatten, overlaps, parseIomem, systemRam, type Iomem, type Range } from "../../src/mem/iomem.ts";
import { fdtFixture } from "../fixtures/fdt/fdt.ts";
import { realKernel } from "../fixtures/kernels/kernels.ts";

const IOMEM_FIX = join(import.meta.dir, "../fixtures/iomem");
const iomemOf = (name: string): Iomem => parseIomem(fdtFixture(name, "iomem", "text"));
const MiB = 1n << 20n;

/** kexec-tools' `kexec -d` segment list: [{ mem, memsz, bufsz }] in its order. */
function kexecToolsSegments(name: string): { mem: bigint; memsz: bigint; bufsz: bigint }[] {
  const text = fdtFixture(name, "kexec-tools-d.txt", "text");
  const out: { mem: bigint; memsz: bigint; bufsz: bigint }[] = [];
  for (const m of text.matchAll(/segment\[(\d+)\]\.(bufsz|mem|memsz)\s*=\s*0x([0-9a-f]+)/g)) {
    const i = Number(m[1]);
    out[i] ??= { mem: 0n, memsz: 0n, bufsz: 0n };
    (out[i] as Record<string, bigint>)[m[2] as string] = BigInt(`0x${m[3]}`);
  }
  return out;
}

let image: Uint8Array;
beforeAll(() => {
  const k = realKernel("bookworm", "arm64");
  image = unwrapKernel(k.bytes, "arm64", k.path).image;
}, 600_000);

const header = { textOffset: 0n, imageSize: 0x2230000n, flags: 0xan };
const base = (iomem: Iomem, over: Partial<PlanInputs> = {}): PlanInputs => ({
  iomem,
  header,
  kernelBytes: 0x21387c0,
  initrdBytes: 0x4bfce0,
  dtbBytes: 0x3000,
  stubBytes: STUB_SIZE,
  pageSize: 4096,
  ...over,
});

const asRange = (p: { mem: bigint; memsz: bigint }): Range => ({ start: p.mem, end: p.mem + p.memsz - 1n });

/** The invariants every plan must hold on the machine it was made for. */
function assertSound(plan: SegmentPlan, iomem: Iomem, page: bigint, inside: Range | null = null): void {
  const segs = [plan.kernel, plan.initrd, plan.dtb, plan.stub].filter((s) => s !== null).map(asRange);
  const rams = systemRam(iomem);
  const children = rams.flatMap((r) => flatten(r.children));
  for (const s of segs) {
    expect(s.start % page).toBe(0n);
    expect((s.end + 1n) % page).toBe(0n);
    if (inside !== null) {
      expect(s.start >= inside.start && s.end <= inside.end).toBe(true);
    } else {
      expect(rams.some((r) => r.start <= s.start && s.end <= r.end)).toBe(true);
      for (const c of children) expect(overlaps(c, s), `${c.name} overlaps`).toBe(false);
    }
  }
  for (let i = 0; i < segs.length; i++) for (let j = i + 1; j < segs.length; j++) expect(overlaps(segs[i] as Range, segs[j] as Range)).toBe(false);
  expect(plan.kernel.mem % (2n * MiB)).toBe(0n); // text_offset 0
  expect(plan.kernelEntry).toBe(plan.kernel.mem);
  expect(plan.dtb.mem / (2n * MiB)).toBe((plan.dtb.mem + plan.dtb.memsz - 1n) / (2n * MiB));
  // the whole 2 MiB block the kernel maps around the DTB is RAM (no firmware region shares it)
  const block = (plan.dtb.mem / (2n * MiB)) * (2n * MiB);
  expect(rams.some((r) => r.start <= block && block + 2n * MiB - 1n <= r.end)).toBe(true);
  const window = (plan.kernel.mem / (1n << 30n)) * (1n << 30n);
  for (const s of segs) expect(s.end < window + (32n << 30n)).toBe(true);
}

describe("the entry stub", () => {
  test("the instruction words llvm-mc gives for the same assembly (src/kexec/notes/arm64-kexec-load.md)", () => {
    expect(ldrLiteral64(0, 24)).toBe(0x580000c0);
    expect(movZero64(1)).toBe(0xaa1f03e1);
    expect(movZero64(2)).toBe(0xaa1f03e2);
    expect(movZero64(3)).toBe(0xaa1f03e3);
    expect(ldrLiteral64(4, 16)).toBe(0x58000084);
    expect(br(4)).toBe(0xd61f0080);
  });
  test("40 bytes: six instructions, then the DTB and kernel addresses as 8-byte-aligned literals", () => {
    const s = entryStub(0x442f0000n, 0x41c00000n);
    expect(s.length).toBe(STUB_SIZE);
    const dv = new DataView(s.buffer);
    expect([0, 4, 8, 12, 16, 20].map((o) => dv.getUint32(o, true))).toEqual([0x580000c0, 0xaa1f03e1, 0xaa1f03e2, 0xaa1f03e3, 0x58000084, 0xd61f0080]);
    // ldr x0 at 0 reads 0 + 24; ldr x4 at 16 reads 16 + 16 = 32
    expect(dv.getBigUint64(24, true)).toBe(0x442f0000n);
    expect(dv.getBigUint64(32, true)).toBe(0x41c00000n);
  });
});

describe("planning on the guest's real memory maps", () => {
  test("direct boot: every rule holds; the Image avoids the running kernel, where kexec-tools overlaps its data", () => {
    const io = iomemOf("qemu-virt-arm64-2g");
    const plan = planSegments(base(io));
    assertSound(plan, io, 4096n);
    const kt = kexecToolsSegments("qemu-virt-arm64-2g");
    expect(kt.length).toBe(4);
    // Same sizes for the Image and the initramfs as kexec-tools (memsz = image_size and the initrd's pages).
    expect(plan.kernel.memsz).toBe(kt[0]?.memsz as bigint);
    expect(plan.initrd?.memsz).toBe(kt[1]?.memsz as bigint);
    // kexec-tools took 0x41c00000, inside "Kernel data" 41a10000-41caffff (it only keeps clear of
    // "reserved"); nvwa keeps clear of every child region and takes the next 2 MiB boundary.
    const kdata = findRegions(io, "Kernel data")[0] as Range;
    expect(overlaps(kdata, asRange(kt[0] as { mem: bigint; memsz: bigint }))).toBe(true);
    expect(plan.kernel.mem).toBe(0x41e00000n);
    // The rest follows in kexec-tools' order: initrd, DTB, entry code.
    expect(plan.initrd?.mem).toBe(plan.kernel.mem + plan.kernel.memsz);
    expect(plan.dtb.mem).toBeGreaterThan(plan.initrd?.mem as bigint);
    expect(plan.stub.mem).toBe(plan.dtb.mem + plan.dtb.memsz);
  });

  for (const name of ["qemu-virt-arm64-uefi-2g", "qemu-virt-arm64-uefi-dt-2g"]) {
    test(`${name}: RAM in three pieces with firmware holes; the Image where kexec-tools put it`, () => {
      const io = iomemOf(name);
      const plan = planSegments(base(io));
      assertSound(plan, io, 4096n);
      const kt = kexecToolsSegments(name);
      expect(plan.kernel.mem).toBe(kt[0]?.mem as bigint);
      expect(plan.initrd).toEqual({ mem: kt[1]?.mem as bigint, memsz: kt[1]?.memsz as bigint });
      // top-level firmware reservations (the flash bank kept as memory, EFI areas) are never used
      for (const r of io.roots.filter((n) => n.name === "reserved")) {
        for (const s of [plan.kernel, plan.dtb, plan.stub]) expect(overlaps(r, asRange(s))).toBe(false);
      }
    });
  }

  test("64 KiB pages: every segment on 64 KiB", () => {
    const io = iomemOf("qemu-virt-arm64-2g");
    const plan = planSegments(base(io, { pageSize: 65536 }));
    assertSound(plan, io, 65536n);
  });

  test("the cpu park area and other ranges to avoid are kept clear", () => {
    const io = iomemOf("qemu-virt-arm64-2g");
    const first = planSegments(base(io));
    const avoid: Range = { start: first.initrd?.mem as bigint, end: (first.initrd?.mem as bigint) + 0xfffn };
    const plan = planSegments(base(io, { avoid: [avoid] }));
    assertSound(plan, io, 4096n);
    for (const s of [plan.kernel, plan.initrd, plan.dtb, plan.stub]) if (s !== null) expect(overlaps(avoid, asRange(s))).toBe(false);
  });

  test("the DTB moves past a 2 MiB block that a firmware region shares with free RAM", () => {
    // The Image ends at 0x4362ffff; the DTB would fit right after it, but its block
    // 0x43600000-0x437fffff also holds the firmware hole, and so does the next one.
    const io = parseIomem("40000000-436fffff : System RAM\n  40200000-4120ffff : Kernel code\n43700000-438fffff : reserved\n43900000-7fffffff : System RAM\n");
    const plan = planSegments(base(io, { initrdBytes: 0 }));
    assertSound(plan, io, 4096n);
    expect(plan.kernel.mem + plan.kernel.memsz).toBe(0x43630000n);
    expect(plan.dtb.mem).toBe(0x43a00000n);
  });

  test("no initramfs: three segments", () => {
    const plan = planSegments(base(iomemOf("qemu-virt-arm64-2g"), { initrdBytes: 0 }));
    expect(plan.initrd).toBeNull();
    expect(plan.dtb.mem).toBeGreaterThanOrEqual(plan.kernel.mem + plan.kernel.memsz);
  });
});

describe("quick kexec: everything inside the reserved region, which the kernel itself never checks", () => {
  const io = parseIomem(readFileSync(join(IOMEM_FIX, "arm64-openeuler-derived-accelerations.txt"), "utf8"));
  const region = findRegions(io, "Quick kexec")[0] as Range;

  test("all four segments land in the Quick kexec region", () => {
    const plan = planSegments(base(io, { quickRegion: region }));
    assertSound(plan, io, 4096n, region);
    expect(plan.kernel.mem).toBe(region.start); // 2 MiB-aligned start, as openEuler's kexec-tools -q does
    // a region just big enough for everything still leaves its last page to the kernel's control page
    const tight: Range = { start: region.start, end: plan.stub.mem + plan.stub.memsz - 1n };
    expect(() => planSegments(base(io, { quickRegion: tight }))).toThrow();
    const roomy = planSegments(base(io, { quickRegion: { ...tight, end: tight.end + 4096n } }));
    expect(roomy.stub.mem + roomy.stub.memsz - 1n).toBeLessThan(tight.end + 4096n);
  });

  test("a region too small is refused before anything is loaded, saying how to size it", () => {
    const small: Range = { start: region.start, end: region.start + 0x2000000n - 1n };
    try {
      planSegments(base(io, { quickRegion: small }));
      throw new Error("expected kexec.no-room");
    } catch (e) {
      if (!isNvwaError(e)) throw e;
      expect(e.code).toBe("kexec.no-room");
      expect(e.message).toContain("kernel Image");
      expect(e.message).toContain("Quick kexec region");
      expect(e.hint).toContain("quickkexec=");
    }
  });

  test("the flags carry KEXEC_QUICK beside the architecture", () => {
    expect(KEXEC_ARCH_AARCH64).toBe(0xb70000);
    expect(KEXEC_ARCH_AARCH64 | KEXEC_QUICK).toBe(0xb70004);
  });
});

describe("refusals", () => {
  const code = (f: () => unknown): string => {
    try {
      f();
      return "ok";
    } catch (e) {
      if (isNvwaError(e)) return e.code;
      throw e;
    }
  };
  test("no room in RAM names the segment and the largest free stretch", () => {
    const io = parseIomem("40000000-42ffffff : System RAM\n  40200000-4120ffff : Kernel code\n");
    expect(code(() => planSegments(base(io)))).toBe("kexec.no-room");
  });
  test("an Image whose header is not an arm64 Image, or whose image_size is smaller than the file", () => {
    expect(code(() => readImageHeader(new Uint8Array(4096)))).toBe("kexec.bad-format");
    expect(code(() => planSegments(base(iomemOf("qemu-virt-arm64-2g"), { header: { ...header, imageSize: 0x1000n } })))).toBe("kexec.bad-format");
    expect(code(() => planSegments(base(iomemOf("qemu-virt-arm64-2g"), { header: { ...header, textOffset: 0x80001n } })))).toBe("kexec.bad-format");
  });
  test("a device tree over 2 MiB", () => {
    expect(code(() => planSegments(base(iomemOf("qemu-virt-arm64-2g"), { dtbBytes: 3 << 20 })))).toBe("kexec.fdt-too-large");
  });
  test("free ranges: children and avoided ranges cut System RAM; top-level reservations are not RAM at all", () => {
    const io = iomemOf("qemu-virt-arm64-uefi-2g");
    const free = freeRanges(io, [], null);
    for (const f of free) for (const c of flatten(io.roots).filter((n) => n.name !== "System RAM")) expect(overlaps(f, c)).toBe(false);
    expect(free[0]?.start).toBe(0x40000000n);
  });
});

describe("the whole load from real inputs", () => {
  const seeds = { kaslrSeed: new Uint8Array(KASLR_SEED_BYTES).fill(7), rngSeed: new Uint8Array(RNG_SEED_BYTES).fill(9) };
  const initrd = new Uint8Array(0x4bfce0).fill(0x30);

  for (const name of ["qemu-virt-arm64-2g", "qemu-virt-arm64-uefi-2g", "qemu-virt-arm64-uefi-dt-2g"]) {
    test(`${name}: Debian's Image, the guest's tree and memory map → four segments that point at each other`, () => {
      const io = iomemOf(name);
      const load = buildArm64Load({ image, initrd, cmdline: "console=ttyAMA0 root=/dev/vda rw", fdt: fdtFixture(name), iomem: io, pageSize: 4096, ...seeds });
      expect(load.segments.map((s) => s.name)).toEqual(["kernel", "initrd", "dtb", "stub"]);
      assertSound(load.plan, io, 4096n);
      const seg = (n: string) => load.segments.find((s) => s.name === n) as { buf: Uint8Array; mem: bigint; memsz: bigint };
      expect(seg("kernel").buf).toBe(image);
      expect(seg("kernel").memsz).toBe(readImageHeader(image).imageSize);
      expect(load.entry).toBe(seg("stub").mem);
      // the stub's literals are the DTB's and the Image's addresses
      const stub = new DataView(seg("stub").buf.buffer);
      expect(stub.getBigUint64(24, true)).toBe(seg("dtb").mem);
      expect(stub.getBigUint64(32, true)).toBe(seg("kernel").mem);
      // the DTB segment is the tree for the next kernel: it names the initrd segment and the new command line
      const dtb = parseFdt(seg("dtb").buf);
      const chosen = findNode(dtb, "/chosen") as FdtNode;
      expect(readCells(getProp(chosen, "linux,initrd-start"))).toBe(seg("initrd").mem);
      expect(readCells(getProp(chosen, "linux,initrd-end"))).toBe(seg("initrd").mem + BigInt(initrd.length));
      expect(readString(getProp(chosen, "bootargs"))).toBe("console=ttyAMA0 root=/dev/vda rw");
      expect(getProp(chosen, "kaslr-seed")).toEqual(seeds.kaslrSeed);
      expect(seg("dtb").buf.length).toBeLessThan(2 << 20);
      expect(load.changes.uefi).toBe(name.includes("uefi"));
      // kexec-tools' DTB for the same boot, packed, was within a page of ours (ours adds the two seeds, booted-from-kexec and DTB_PADDING)
      const kt = kexecToolsSegments(name)[2]?.bufsz as bigint;
      expect(BigInt(seg("dtb").buf.length) - kt).toBeLessThanOrEqual(BigInt(DTB_PADDING + 256));
    });
  }

  test("the struct kexec_segment array: buf, bufsz, mem, memsz as 64-bit little-endian words", () => {
    const a = new Uint8Array(10);
    const b = new Uint8Array(0);
    const arr = segmentArray(
      [
        { buf: a, mem: 0x40000000n, memsz: 0x1000n },
        { buf: b, mem: 0x50000000n, memsz: 0x2000n },
      ],
      (x) => (x === a ? 0xaaaa0000n : 0xbbbb0000n),
    );
    const dv = new DataView(arr.buffer);
    expect(arr.length).toBe(64);
    expect([0, 8, 16, 24, 32, 40, 48, 56].map((o) => dv.getBigUint64(o, true))).toEqual([0xaaaa0000n, 10n, 0x40000000n, 0x1000n, 0n, 0n, 0x50000000n, 0x2000n]);
  });

  test("the page size comes from the auxiliary vector (AT_PAGESZ)", () => {
    const v = new Uint8Array(48);
    const dv = new DataView(v.buffer);
    dv.setBigUint64(0, 16n, true);
    dv.setBigUint64(8, 0xdeadn, true);
    dv.setBigUint64(16, 6n, true);
    dv.setBigUint64(24, 65536n, true);
    expect(pageSizeFromAuxv(v)).toBe(65536);
    expect(pageSizeFromAuxv(new Uint8Array(16))).toBeNull();
    expect([4096, 16384, 65536]).toContain(runningPageSize());
  });
});

describe("the effects' guards", () => {
  test.skipIf(process.arch === "arm64")("on a host that is not arm64 the native loader refuses before reading or calling anything", () => {
    let code = "";
    try {
      loadArm64Native({ image: new Uint8Array(64), iomem: { roots: [], redacted: false }, initrdPath: null, cmdline: "", quickRegion: null, avoid: [], kernelPath: "/nonexistent" });
    } catch (e) {
      if (isNvwaError(e)) code = e.code;
    }
    expect(code).toBe("internal.arm64-loader");
  });

  test("kexec_load's errnos become sentences naming the kernel and, for a refused layout, every segment", () => {
    const io = iomemOf("qemu-virt-arm64-2g");
    const load = buildArm64Load({ image, initrd: null, cmdline: "x", fdt: fdtFixture("qemu-virt-arm64-2g"), iomem: io, pageSize: 4096, kaslrSeed: new Uint8Array(8), rngSeed: new Uint8Array(128) });
    const inval = explainKexecLoad(ERRNO.EINVAL, "/boot/vmlinuz-6.12", load);
    expect(inval.code).toBe("kexec.load.EINVAL");
    expect(inval.message).toContain("/boot/vmlinuz-6.12");
    expect(inval.message).toMatch(/kernel 0x41e00000-0x[0-9a-f]+, dtb 0x[0-9a-f]+-0x[0-9a-f]+, stub/);
    expect(inval.hint).toContain("kexec_loader: kexec_exe");
    expect(explainKexecLoad(ERRNO.EPERM, "/k", load).message).toContain("lockdown");
    expect(explainKexecLoad(ERRNO.EBUSY, "/k", load).hint).toContain("retry");
  });
});
