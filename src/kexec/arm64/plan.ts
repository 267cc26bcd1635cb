/**
 * Where the four segments of a native arm64 kexec_load go in physical memory. Pure: the running
 * kernel's /proc/iomem, the Image's header and the sizes in; addresses out.
 *
 * Rules (Documentation/arm64/booting.rst, kernel/kexec.c sanity_check_segment_list):
 * - every segment starts on a page of the running kernel and its memsz is whole pages;
 * - the Image sits text_offset bytes above a 2 MiB-aligned base, image_size bytes long (its
 *   BSS included), as low as possible: with header flag bit 3 clear, memory below the base is
 *   lost to the new kernel, and kexec-tools picks the lowest base as well;
 * - the initramfs, the DTB and the entry stub follow it, each in the first free place above the
 *   previous one; all of them inside the 32 GiB window, 1 GiB aligned, that covers the Image
 *   (the oldest kernels' initrd rule, kept because it costs nothing);
 * - the DTB (≤ 2 MiB) never crosses a 2 MiB boundary, and the whole 2 MiB block around it is
 *   System RAM: the kernel maps that block as normal cacheable memory (fixmap_remap_fdt), which a
 *   firmware region with attributes of its own (UEFI's NOMAP areas) must not share;
 * - free means System RAM with nothing inside it: every child region the running kernel lists
 *   (its own image, "reserved" firmware and memblock areas such as the UEFI memory map, a crash
 *   kernel, pin memory) is avoided, and so are the extra ranges given (the cpu park area);
 * - with quick kexec, everything goes inside the "Quick kexec" region instead, which openEuler's
 *   kernel copies the segments into at load time; its last page stays free, for the control page
 *   openEuler's kexec allocates inside the region.
 */
import { NvwaError, ExitCode } from "../../errors.ts";
import { formatRange, overlaps, systemRam, type Iomem, type Range } from "../../mem/iomem.ts";
import { alignUp, humanBytes } from "../../mem/size.ts";

const MiB = 1n << 20n;
const GiB = 1n << 30n;
const KERNEL_ALIGN = 2n * MiB;
const DTB_MAX = 2n * MiB;
const WINDOW = 32n * GiB;
/** Header flag bit 3 set: the Image may sit anywhere below 2^48. */
const PLACEMENT_ANYWHERE = 1n << 3n;
const ADDRESS_LIMIT = 1n << 48n;

export interface Arm64ImageHeader {
  textOffset: bigint;
  imageSize: bigint;
  flags: bigint;
}

/** The Image header's placement fields (bytes 8..31, little-endian). */
export function readImageHeader(image: Uint8Array): Arm64ImageHeader {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.length < 64 || dv.getUint32(56, true) !== 0x644d5241) {
    throw new NvwaError("kexec.bad-format", "the kernel is not a raw arm64 Image (no ARM\\x64 magic at byte 56)", {
      hint: "the native arm64 loader takes the Image itself; nvwa unwraps gzip and EFI zboot before this point, so this is a bug if the file is one of those",
    });
  }
  return { textOffset: dv.getBigUint64(8, true), imageSize: dv.getBigUint64(16, true), flags: dv.getBigUint64(24, true) };
}

export interface PlanInputs {
  iomem: Iomem;
  header: Arm64ImageHeader;
  /** Bytes of the Image as loaded (≤ image_size). */
  kernelBytes: number;
  /** 0: no initramfs. */
  initrdBytes: number;
  dtbBytes: number;
  stubBytes: number;
  pageSize: number;
  /** Further ranges to keep clear (the cpu park area, which memblock_remove takes out of RAM on some kernels only). */
  avoid?: Range[];
  /** Quick kexec: every segment goes inside this region. */
  quickRegion?: Range | null;
}

export interface Placement {
  mem: bigint;
  memsz: bigint;
}

export interface SegmentPlan {
  kernel: Placement;
  /** Where the kernel starts executing: the Image's first byte. */
  kernelEntry: bigint;
  initrd: Placement | null;
  dtb: Placement;
  stub: Placement;
}

function noRoom(what: string, bytes: bigint, free: Range[], quick: boolean): NvwaError {
  const largest = free.reduce((m, r) => (r.end - r.start + 1n > m ? r.end - r.start + 1n : m), 0n);
  return new NvwaError(
    "kexec.no-room",
    `no free physical memory for the new kernel's ${what} (${humanBytes(bytes)}) ${quick ? "inside the Quick kexec region" : "in System RAM"}; the largest free stretch is ${humanBytes(largest)}`,
    {
      hint: quick
        ? "raise quickkexec= on the command line so the region holds kernel, initramfs and device tree with room to spare, and reboot once"
        : "the running kernel's reservations leave no room: check `cat /proc/iomem` (as root) for large reserved areas, or shrink the initramfs",
      exitCode: ExitCode.preflight,
      details: { what, bytes: bytes.toString(), free: free.map(formatRange) },
    },
  );
}

/** Free stretches: System RAM minus every child region and the ranges to avoid (or the quick kexec region alone). */
export function freeRanges(iomem: Iomem, avoid: Range[], quickRegion: Range | null): Range[] {
  const bases: { range: Range; taken: Range[] }[] =
    quickRegion !== null
      ? [{ range: quickRegion, taken: avoid }]
      : systemRam(iomem).map((ram) => ({ range: { start: ram.start, end: ram.end }, taken: [...ram.children, ...avoid] }));
  const out: Range[] = [];
  for (const { range, taken } of bases) {
    let cursor = range.start;
    const inside = taken.filter((t) => overlaps(t, range)).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (const t of inside) {
      if (t.start > cursor) out.push({ start: cursor, end: t.start - 1n });
      if (t.end + 1n > cursor) cursor = t.end + 1n;
    }
    if (cursor <= range.end) out.push({ start: cursor, end: range.end });
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : 1));
}

/**
 * The lowest address ≥ `from`, aligned to `align`, where `size` bytes fit in one free stretch and
 * do not cross a `block` boundary (when given) whose whole block `blockOk` accepts, or null.
 */
function firstFit(free: Range[], from: bigint, size: bigint, align: bigint, limit: bigint, block?: { size: bigint; ok: (start: bigint) => boolean }): bigint | null {
  for (const r of free) {
    let at = alignUp(r.start > from ? r.start : from, align);
    while (at + size - 1n <= r.end && at + size <= limit) {
      if (block === undefined) return at;
      const first = (at / block.size) * block.size;
      if (first !== ((at + size - 1n) / block.size) * block.size) at = alignUp(at, block.size);
      else if (!block.ok(first)) at = first + block.size;
      else return at;
    }
  }
  return null;
}

export function planSegments(p: PlanInputs): SegmentPlan {
  const page = BigInt(p.pageSize);
  const quick = p.quickRegion === null || p.quickRegion === undefined ? null : { start: p.quickRegion.start, end: p.quickRegion.end - page };
  const free = freeRanges(p.iomem, p.avoid ?? [], quick);
  const ram = systemRam(p.iomem);
  const { textOffset, imageSize, flags } = p.header;
  if (imageSize < BigInt(p.kernelBytes)) {
    throw new NvwaError("kexec.bad-format", `the arm64 Image header says image_size ${imageSize} but the Image has ${p.kernelBytes} bytes`, {
      hint: "the file is damaged or not a Linux Image; reinstall the kernel package",
    });
  }
  if (textOffset % page !== 0n) {
    throw new NvwaError("kexec.bad-format", `the arm64 Image's text_offset 0x${textOffset.toString(16)} is not page-aligned`, {
      hint: "this Image cannot be loaded with kexec_load; use a kernel built after Linux 3.17",
    });
  }
  const kernelSize = alignUp(imageSize, page);
  const limit = (flags & PLACEMENT_ANYWHERE) !== 0n ? ADDRESS_LIMIT : 1n << 64n;

  // The Image: lowest 2 MiB-aligned base whose [base + text_offset, + image_size) is free.
  let base: bigint | null = null;
  for (const r of free) {
    const b = alignUp(r.start > textOffset ? r.start - textOffset : 0n, KERNEL_ALIGN);
    if (b + textOffset + kernelSize - 1n <= r.end && b + textOffset + kernelSize <= limit) {
      base = b;
      break;
    }
  }
  if (base === null) throw noRoom("kernel Image", kernelSize, free, quick !== null);
  const kernel: Placement = { mem: base + textOffset, memsz: kernelSize };
  const windowEnd = (base / GiB) * GiB + WINDOW;

  let cursor = kernel.mem + kernel.memsz;
  let initrd: Placement | null = null;
  if (p.initrdBytes > 0) {
    const size = alignUp(BigInt(p.initrdBytes), page);
    const at = firstFit(free, cursor, size, page, windowEnd);
    if (at === null) throw noRoom("initramfs", size, free, quick !== null);
    initrd = { mem: at, memsz: size };
    cursor = at + size;
  }

  const dtbSize = alignUp(BigInt(p.dtbBytes), page);
  if (BigInt(p.dtbBytes) > DTB_MAX) {
    throw new NvwaError("kexec.fdt-too-large", `the device tree for the new kernel is ${humanBytes(BigInt(p.dtbBytes))}; arm64 kernels accept at most 2 MiB`, {
      hint: "the running kernel's /sys/firmware/fdt is unusually large; report it",
    });
  }
  const inRam = (start: bigint): boolean => ram.some((r) => r.start <= start && start + DTB_MAX - 1n <= r.end);
  const dtbAt = firstFit(free, cursor, dtbSize, page, windowEnd, { size: DTB_MAX, ok: inRam });
  if (dtbAt === null) throw noRoom("device tree", dtbSize, free, quick !== null);
  const dtb: Placement = { mem: dtbAt, memsz: dtbSize };
  cursor = dtbAt + dtbSize;

  const stubSize = alignUp(BigInt(p.stubBytes), page);
  const stubAt = firstFit(free, cursor, stubSize, page, windowEnd);
  if (stubAt === null) throw noRoom("entry stub", stubSize, free, quick !== null);
  return { kernel, kernelEntry: kernel.mem, initrd, dtb, stub: { mem: stubAt, memsz: stubSize } };
}
