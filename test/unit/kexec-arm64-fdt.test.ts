/**
 * The flattened device tree codec and the /chosen rewrite of the native arm64 loader, on real
 * trees: /sys/firmware/fdt read in the arm64 test guest (QEMU virt booted with -kernel, and
 * through UEFI firmware, test/fixtures/fdt/), QEMU's own virt tree (dumpdtb, made here with the
 * installed qemu-system-aarch64) and the Raspberry Pi 4 tree Debian's arm64 kernel package ships
 * (fetched with the kernel, test/fixtures/kernels/fetch.sh).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chosenForNextKernel, hasMemoryNodes, KASLR_SEED_BYTES, RNG_SEED_BYTES } from "../../src/kexec/arm64/chosen.ts";
import { FDT_MAGIC, findNode, getProp, parseFdt, propU64, readCells, readRegs, readString, serializeFdt, setProp, type Fdt, type FdtNode } from "../../src/kexec/arm64/fdt.ts";
import { isNvwaError } from "../../src/errors.ts";
import { raspberryPi4Dtb } from "../fixtures/kernels/kernels.ts";
import { fdtFixture } from "../fixtures/fdt/fdt.ts";

let qemuDump: Uint8Array;
let rpi4: Uint8Array;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-dtb-"));
  try {
    const out = join(dir, "virt.dtb");
    const p = Bun.spawnSync(["qemu-system-aarch64", "-M", `virt,gic-version=2,dumpdtb=${out}`, "-cpu", "max", "-m", "3G", "-smp", "2", "-nographic"], { stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`qemu dumpdtb failed: ${p.stderr.toString()}`);
    qemuDump = new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  rpi4 = raspberryPi4Dtb("bookworm");
}, 600_000);

const seeds = { kaslrSeed: new Uint8Array(KASLR_SEED_BYTES).fill(0xa5), rngSeed: new Uint8Array(RNG_SEED_BYTES).fill(0x5a) };

/** Every node path with its property names and values (hex), for comparing two parses. */
function flat(f: Fdt): string[] {
  const out: string[] = [];
  const walk = (n: FdtNode, path: string): void => {
    for (const p of n.props) out.push(`${path} ${p.name}=${Buffer.from(p.value).toString("hex")}`);
    for (const c of n.children) walk(c, `${path === "/" ? "" : path}/${c.name}`);
  };
  walk(f.root, "/");
  return out;
}

function nodeCount(n: FdtNode): number {
  return 1 + n.children.reduce((s, c) => s + nodeCount(c), 0);
}

describe("reading real trees", () => {
  test("QEMU virt (dumpdtb): the nodes QEMU builds, memory as asked", () => {
    const f = parseFdt(qemuDump);
    expect(readString(getProp(f.root, "compatible"))).toBe("linux,dummy-virt");
    expect(findNode(f, "/cpus/cpu@0")).not.toBeNull();
    expect(findNode(f, "/cpus/cpu@1")).not.toBeNull();
    expect(findNode(f, "/psci")).not.toBeNull();
    const mem = findNode(f, "/memory@40000000");
    expect(mem).not.toBeNull();
    expect(readRegs(getProp(mem as FdtNode, "reg"), 2, 2)).toEqual([{ address: 0x40000000n, size: 3n << 30n }]);
    expect(readString(getProp(findNode(f, "/chosen") as FdtNode, "stdout-path"))).toBe("/pl011@9000000");
  });

  test("the guest's /sys/firmware/fdt after a -kernel boot: QEMU's tree plus what the kernel was booted with", () => {
    const f = parseFdt(fdtFixture("qemu-virt-arm64-2g"));
    const chosen = findNode(f, "/chosen") as FdtNode;
    expect(readString(getProp(chosen, "bootargs"))).toBe(fdtFixture("qemu-virt-arm64-2g", "cmdline", "text"));
    const start = readCells(getProp(chosen, "linux,initrd-start"));
    const end = readCells(getProp(chosen, "linux,initrd-end"));
    expect(start).not.toBeNull();
    expect((end ?? 0n) > (start ?? 0n)).toBe(true);
    expect(hasMemoryNodes(f)).toBe(true);
    // The running kernel zeroes kaslr-seed in place and NOPs rng-seed: nothing reusable is left.
    const kaslr = getProp(chosen, "kaslr-seed");
    if (kaslr !== null) expect([...kaslr].every((b) => b === 0)).toBe(true);
    expect(getProp(chosen, "rng-seed")).toBeNull();
  });

  test("the guest's tree after a UEFI boot: only /chosen, with the firmware's linux,uefi-* and no /memory", () => {
    const f = parseFdt(fdtFixture("qemu-virt-arm64-uefi-2g"));
    const chosen = findNode(f, "/chosen") as FdtNode;
    for (const p of ["linux,uefi-system-table", "linux,uefi-mmap-start", "linux,uefi-mmap-size", "linux,uefi-mmap-desc-size", "linux,uefi-mmap-desc-ver"]) {
      expect(getProp(chosen, p)).not.toBeNull();
    }
    expect(hasMemoryNodes(f)).toBe(false);
  });

  test("the Raspberry Pi 4 tree from Debian's kernel package", () => {
    const f = parseFdt(rpi4);
    expect(readString(getProp(f.root, "compatible"))).toBe("raspberrypi,4-model-b");
    expect(nodeCount(f.root)).toBeGreaterThan(100);
    expect(findNode(f, "/chosen")).not.toBeNull();
  });
});

describe("writing", () => {
  test("parse → write → parse keeps every node, property and reservation of each real tree, and drops the padding", () => {
    for (const [name, blob] of [
      ["qemu dumpdtb", qemuDump],
      ["guest -kernel", fdtFixture("qemu-virt-arm64-2g")],
      ["guest UEFI", fdtFixture("qemu-virt-arm64-uefi-2g")],
      ["guest UEFI with DT", fdtFixture("qemu-virt-arm64-uefi-dt-2g")],
      ["rpi4", rpi4],
    ] as const) {
      const a = parseFdt(blob);
      const written = serializeFdt(a);
      const b = parseFdt(written);
      expect(flat(b), name).toEqual(flat(a));
      expect(b.reservations, name).toEqual(a.reservations);
      expect(b.bootCpuidPhys, name).toBe(a.bootCpuidPhys);
      // No padding is carried over; dtc's blobs are a little smaller still because dtc also shares
      // a string that is the tail of another (nvwa stores each name whole).
      expect(written.length, name).toBeLessThanOrEqual(Math.ceil(blob.length * 1.01) + 3);
      // byte-stable: writing what was read back gives the same bytes
      expect(Buffer.from(serializeFdt(b)).equals(Buffer.from(written)), name).toBe(true);
    }
  });

  test("the header: magic, v17 readable by v16, blocks in order and inside totalsize, padding counted", () => {
    const w = serializeFdt(parseFdt(rpi4), 4096);
    const dv = new DataView(w.buffer);
    const h = (i: number): number => dv.getUint32(i * 4, false);
    expect(h(0)).toBe(FDT_MAGIC);
    expect(h(1)).toBe(w.length);
    expect(h(5)).toBe(17);
    expect(h(6)).toBe(16);
    expect(h(4)).toBe(40); // reservations right after the header, 8-aligned
    expect(h(2)).toBeGreaterThan(h(4));
    expect(h(3)).toBe(h(2) + h(9)); // strings right after the structure block
    expect(h(3) + h(8) + 4096).toBeLessThanOrEqual(w.length);
    expect(h(3) + h(8) + 4096 + 3).toBeGreaterThan(w.length); // nothing else: compact
    expect(h(2) % 4).toBe(0);
  });

  test("property names are stored once", () => {
    const f = parseFdt(qemuDump);
    const w = serializeFdt(f);
    const dv = new DataView(w.buffer);
    const strings = Buffer.from(w.subarray(dv.getUint32(12, false), dv.getUint32(12, false) + dv.getUint32(32, false))).toString("latin1").split("\0").filter((s) => s !== "");
    expect(new Set(strings).size).toBe(strings.length);
    expect(strings).toContain("reg");
  });
});

describe("damaged trees are refused by name, never read past their end", () => {
  const code = (b: Uint8Array): string => {
    try {
      parseFdt(b);
      return "parsed";
    } catch (e) {
      if (isNvwaError(e)) return e.code;
      throw e;
    }
  };
  test("short, wrong magic, truncated, old version", () => {
    const good = serializeFdt(parseFdt(qemuDump));
    expect(code(good.subarray(0, 20))).toBe("kexec.fdt-invalid");
    const wrong = good.slice();
    wrong[0] = 0;
    expect(code(wrong)).toBe("kexec.fdt-invalid");
    expect(code(good.subarray(0, good.length - 100))).toBe("kexec.fdt-invalid");
    const old = good.slice();
    new DataView(old.buffer).setUint32(20, 15, false);
    expect(code(old)).toBe("kexec.fdt-invalid");
  });

  test("every single-byte corruption of a real tree either parses or is refused with kexec.fdt-invalid", () => {
    const good = serializeFdt(parseFdt(fdtFixture("qemu-virt-arm64-uefi-dt-2g")));
    let refused = 0;
    for (let at = 0; at < good.length; at += 7) {
      for (const v of [0x00, 0xff, 0x03, 0x09]) {
        const b = good.slice();
        b[at] = v;
        const c = code(b);
        expect(["parsed", "kexec.fdt-invalid"]).toContain(c);
        if (c !== "parsed") refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});

describe("/chosen for the next kernel", () => {
  test("-kernel boot: new bootargs, initrd, seeds and booted-from-kexec; crash-kernel leftovers and the old initrd's reservation gone; the rest untouched", () => {
    const src = parseFdt(fdtFixture("qemu-virt-arm64-2g"));
    // what a crash-kernel boot and U-Boot would have left behind
    const chosen0 = findNode(src, "/chosen") as FdtNode;
    setProp(chosen0, "linux,elfcorehdr", propU64(0x1234000n));
    setProp(chosen0, "linux,usable-memory-range", propU64(0x5000000n));
    const oldStart = readCells(getProp(chosen0, "linux,initrd-start")) as bigint;
    const oldEnd = readCells(getProp(chosen0, "linux,initrd-end")) as bigint;
    src.reservations.push({ address: oldStart, size: oldEnd - oldStart }, { address: 0x4f000000n, size: 0x1000n });

    const { fdt, changes } = chosenForNextKernel(src, { cmdline: "console=ttyAMA0 root=/dev/vda quiet", initrd: { start: 0x48800000n, size: 0x4bfce0n }, ...seeds });
    const chosen = findNode(fdt, "/chosen") as FdtNode;
    expect(readString(getProp(chosen, "bootargs"))).toBe("console=ttyAMA0 root=/dev/vda quiet");
    expect(readCells(getProp(chosen, "linux,initrd-start"))).toBe(0x48800000n);
    expect(readCells(getProp(chosen, "linux,initrd-end"))).toBe(0x48800000n + 0x4bfce0n);
    expect(getProp(chosen, "linux,initrd-start")?.length).toBe(8);
    expect(getProp(chosen, "kaslr-seed")).toEqual(seeds.kaslrSeed);
    expect(getProp(chosen, "rng-seed")).toEqual(seeds.rngSeed);
    expect(getProp(chosen, "linux,booted-from-kexec")).toEqual(new Uint8Array(0));
    expect(getProp(chosen, "linux,elfcorehdr")).toBeNull();
    expect(getProp(chosen, "linux,usable-memory-range")).toBeNull();
    expect(changes.dropped).toEqual(["linux,elfcorehdr", "linux,usable-memory-range"]);
    expect(changes.droppedReservations).toEqual([{ address: oldStart, size: oldEnd - oldStart }]);
    expect(fdt.reservations).toEqual([{ address: 0x4f000000n, size: 0x1000n }]);
    expect(changes.uefi).toBe(false);
    // everything outside /chosen is as it was, and the source tree was not changed
    const outside = (f: Fdt): string[] => flat(f).filter((l) => !l.startsWith("/chosen "));
    expect(outside(fdt)).toEqual(outside(src));
    expect(readString(getProp(chosen0, "bootargs"))).toBe(fdtFixture("qemu-virt-arm64-2g", "cmdline", "text"));
  });

  test("reservations of the old tree itself (its size) and of a 64 KiB-page kernel's rounded initrd go too", () => {
    const src = parseFdt(fdtFixture("qemu-virt-arm64-2g"));
    const chosen0 = findNode(src, "/chosen") as FdtNode;
    const start = readCells(getProp(chosen0, "linux,initrd-start")) as bigint;
    const end = readCells(getProp(chosen0, "linux,initrd-end")) as bigint;
    const rounded = (((end - start) + 0xffffn) / 0x10000n) * 0x10000n;
    src.reservations.push({ address: 0x48600000n, size: BigInt(src.totalSize ?? 0) }, { address: start, size: rounded }, { address: 0x50000000n, size: 0x2000n });
    const { fdt, changes } = chosenForNextKernel(src, { cmdline: "x", initrd: null, pageSize: 65536, ...seeds });
    expect(src.totalSize).toBe(1 << 20);
    expect(changes.droppedReservations).toHaveLength(2);
    expect(fdt.reservations).toEqual([{ address: 0x50000000n, size: 0x2000n }]);
  });

  test("UEFI boot: linux,uefi-* kept byte for byte; no initramfs means no initrd properties", () => {
    const src = parseFdt(fdtFixture("qemu-virt-arm64-uefi-2g"));
    const { fdt, changes } = chosenForNextKernel(src, { cmdline: "root=/dev/vda", initrd: null, ...seeds });
    expect(changes.uefi).toBe(true);
    const before = findNode(src, "/chosen") as FdtNode;
    const after = findNode(fdt, "/chosen") as FdtNode;
    const uefi = before.props.filter((p) => p.name.startsWith("linux,uefi-"));
    expect(uefi.length).toBeGreaterThanOrEqual(5);
    for (const p of uefi) expect(getProp(after, p.name)).toEqual(p.value);
    expect(getProp(after, "linux,initrd-start")).toBeNull();
    expect(getProp(after, "linux,initrd-end")).toBeNull();
  });

  test("a tree without /chosen gets one; the written result parses back", () => {
    const src = parseFdt(rpi4);
    src.root.children = src.root.children.filter((c) => c.name !== "chosen");
    const { fdt } = chosenForNextKernel(src, { cmdline: "x", initrd: { start: 0x1000000n, size: 4096n }, ...seeds });
    const back = parseFdt(serializeFdt(fdt));
    expect(readString(getProp(findNode(back, "/chosen") as FdtNode, "bootargs"))).toBe("x");
  });
});
