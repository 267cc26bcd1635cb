/**
 * Everything the native arm64 kexec_load needs, decided in one pure function: the device tree
 * for the next kernel, where each segment goes, and the entry stub. The effects (reading
 * /sys/firmware/fdt, /proc/iomem and the files; the syscall) are in load.ts.
 */
import type { Iomem, Range } from "../../mem/iomem.ts";
import { chosenForNextKernel, hasMemoryNodes, type ChosenChanges } from "./chosen.ts";
import { parseFdt, serializeFdt } from "./fdt.ts";
import { planSegments, readImageHeader, type SegmentPlan } from "./plan.ts";
import { entryStub, STUB_SIZE } from "./stub.ts";

/** Room left in the written DTB, as kexec-tools and the kernel leave some for the next kernel's own edits. */
export const DTB_PADDING = 4096;

export interface Arm64LoadInputs {
  /** The Image, already unwrapped from gzip / EFI zboot. */
  image: Uint8Array;
  initrd: Uint8Array | null;
  cmdline: string;
  /** /sys/firmware/fdt of the running kernel. */
  fdt: Uint8Array;
  iomem: Iomem;
  pageSize: number;
  kaslrSeed: Uint8Array;
  rngSeed: Uint8Array;
  avoid?: Range[];
  quickRegion?: Range | null;
}

export interface Arm64Segment {
  name: "kernel" | "initrd" | "dtb" | "stub";
  buf: Uint8Array;
  mem: bigint;
  memsz: bigint;
}

export interface Arm64Load {
  /** Physical address kexec branches to: the stub. */
  entry: bigint;
  segments: Arm64Segment[];
  plan: SegmentPlan;
  dtb: Uint8Array;
  changes: ChosenChanges;
  /** The tree has /memory nodes (false on UEFI machines, where the memory map comes from the firmware). */
  memoryNodes: boolean;
}

export function buildArm64Load(inp: Arm64LoadInputs): Arm64Load {
  const header = readImageHeader(inp.image);
  const source = parseFdt(inp.fdt);
  const initrdBytes = inp.initrd?.length ?? 0;
  const seeds = { kaslrSeed: inp.kaslrSeed, rngSeed: inp.rngSeed, pageSize: inp.pageSize };
  // The tree's size does not depend on the addresses written into it, so a first build with
  // placeholders sizes the DTB segment; the real one is built once everything is placed.
  const sizing = chosenForNextKernel(source, { cmdline: inp.cmdline, initrd: initrdBytes > 0 ? { start: 0n, size: BigInt(initrdBytes) } : null, ...seeds });
  const dtbBytes = serializeFdt(sizing.fdt, DTB_PADDING).length;
  const plan = planSegments({
    iomem: inp.iomem,
    header,
    kernelBytes: inp.image.length,
    initrdBytes,
    dtbBytes,
    stubBytes: STUB_SIZE,
    pageSize: inp.pageSize,
    avoid: inp.avoid,
    quickRegion: inp.quickRegion,
  });
  const final = chosenForNextKernel(source, {
    cmdline: inp.cmdline,
    initrd: plan.initrd === null ? null : { start: plan.initrd.mem, size: BigInt(initrdBytes) },
    ...seeds,
  });
  const dtb = serializeFdt(final.fdt, DTB_PADDING);
  if (dtb.length !== dtbBytes) throw new Error(`internal: the device tree changed size (${dtbBytes} → ${dtb.length}) between planning and building`);
  const stub = entryStub(plan.dtb.mem, plan.kernelEntry);
  const segments: Arm64Segment[] = [{ name: "kernel", buf: inp.image, ...plan.kernel }];
  if (plan.initrd !== null && inp.initrd !== null) segments.push({ name: "initrd", buf: inp.initrd, ...plan.initrd });
  segments.push({ name: "dtb", buf: dtb, ...plan.dtb }, { name: "stub", buf: stub, ...plan.stub });
  return { entry: plan.stub.mem, segments, plan, dtb, changes: final.changes, memoryNodes: hasMemoryNodes(final.fdt) };
}
