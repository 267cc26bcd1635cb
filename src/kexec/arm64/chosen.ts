/**
 * The device tree handed to the next kernel: the one the running kernel booted with, with its
 * /chosen node rewritten as the kernel's own kexec_file_load does it (drivers/of/kexec.c,
 * of_kexec_alloc_and_setup_fdt). Pure: random seeds are passed in.
 *
 * - removed: what described this boot or a crash kernel (linux,elfcorehdr,
 *   linux,usable-memory-range) or a buffer nvwa does not carry (linux,ima-kexec-buffer), and the
 *   memory reservations of the old initrd and of that buffer;
 * - set: bootargs, linux,initrd-start/-end (or neither without an initramfs), fresh kaslr-seed
 *   (8 bytes) and rng-seed (128 bytes), and an empty linux,booted-from-kexec. Without a
 *   kaslr-seed the new kernel silently runs without KASLR (the running kernel zeroed its own in
 *   place, and NOP'ed rng-seed, so the blob it exposes carries neither); linux,booted-from-kexec
 *   tells the TPM driver that a firmware event log the tree points at may have been overwritten;
 * - kept: everything else, including a UEFI-booted machine's linux,uefi-* properties (the new
 *   kernel finds the firmware's memory map and runtime services through them) and stdout-path.
 */
import { childNode, getProp, propString, propU64, readCells, readRegs, removeProp, setProp, type Fdt, type FdtNode, type MemReserve } from "./fdt.ts";

export const KASLR_SEED_BYTES = 8;
/** drivers/of/kexec.c RNG_SEED_SIZE. */
export const RNG_SEED_BYTES = 128;

const DROPPED = ["linux,elfcorehdr", "linux,usable-memory-range", "linux,ima-kexec-buffer"] as const;

export interface ChosenInputs {
  cmdline: string;
  /** Physical placement of the initramfs; null: none. */
  initrd: { start: bigint; size: bigint } | null;
  kaslrSeed: Uint8Array;
  rngSeed: Uint8Array;
  /** The running kernel's page size (the old initrd's reservation may be rounded to it). Default 4096. */
  pageSize?: number;
}

export interface ChosenChanges {
  /** Properties of /chosen that were removed and not set again. */
  dropped: string[];
  /** Memory reservations removed (the old initrd's). */
  droppedReservations: MemReserve[];
  /** True when the tree came from UEFI (has linux,uefi-system-table). */
  uefi: boolean;
}

function cloneNode(n: FdtNode): FdtNode {
  return { name: n.name, props: n.props.map((p) => ({ name: p.name, value: p.value.slice() })), children: n.children.map(cloneNode) };
}

/** A new tree for the next kernel; `source` is left as it was. */
export function chosenForNextKernel(source: Fdt, inputs: ChosenInputs): { fdt: Fdt; changes: ChosenChanges } {
  if (inputs.kaslrSeed.length !== KASLR_SEED_BYTES) throw new RangeError(`kaslr-seed must be ${KASLR_SEED_BYTES} bytes`);
  if (inputs.rngSeed.length !== RNG_SEED_BYTES) throw new RangeError(`rng-seed must be ${RNG_SEED_BYTES} bytes`);
  const fdt: Fdt = { root: cloneNode(source.root), reservations: source.reservations.map((r) => ({ ...r })), bootCpuidPhys: source.bootCpuidPhys };
  const chosen = childNode(fdt.root, "chosen");

  // The old initrd's reservation (firmware such as U-Boot adds one, exact or page-rounded), the
  // IMA buffer's and the old tree's own would keep their memory from the new kernel forever; the
  // kernel's own kexec path removes them the same way. The tree's is known by its size only (its
  // address is not exposed), which no other reservation is likely to share exactly.
  const oldStart = readCells(getProp(chosen, "linux,initrd-start"));
  const oldEnd = readCells(getProp(chosen, "linux,initrd-end"));
  const stale: MemReserve[] = [];
  if (oldStart !== null && oldEnd !== null && oldEnd > oldStart) {
    const len = oldEnd - oldStart;
    const page = BigInt(inputs.pageSize ?? 4096);
    stale.push({ address: oldStart, size: len }, { address: oldStart, size: ((len + page - 1n) / page) * page });
  }
  const cells = (name: string, dflt: number): number => Number(readCells(getProp(fdt.root, name)) ?? BigInt(dflt));
  for (const r of readRegs(getProp(chosen, "linux,ima-kexec-buffer"), cells("#address-cells", 2), cells("#size-cells", 1))) stale.push(r);
  const droppedReservations: MemReserve[] = [];
  const ownSize = source.totalSize === undefined ? null : BigInt(source.totalSize);
  fdt.reservations = fdt.reservations.filter((r) => {
    const match = stale.some((s) => s.address === r.address && s.size === r.size) || r.size === ownSize;
    if (match) droppedReservations.push(r);
    return !match;
  });

  const dropped: string[] = [];
  for (const name of DROPPED) if (removeProp(chosen, name)) dropped.push(name);
  removeProp(chosen, "linux,initrd-start");
  removeProp(chosen, "linux,initrd-end");
  if (inputs.initrd !== null) {
    setProp(chosen, "linux,initrd-start", propU64(inputs.initrd.start));
    setProp(chosen, "linux,initrd-end", propU64(inputs.initrd.start + inputs.initrd.size));
  } else if (oldStart !== null) dropped.push("linux,initrd-start", "linux,initrd-end");
  setProp(chosen, "bootargs", propString(inputs.cmdline));
  setProp(chosen, "kaslr-seed", inputs.kaslrSeed.slice());
  setProp(chosen, "rng-seed", inputs.rngSeed.slice());
  setProp(chosen, "linux,booted-from-kexec", new Uint8Array(0));
  return { fdt, changes: { dropped, droppedReservations, uefi: getProp(chosen, "linux,uefi-system-table") !== null } };
}

/** The /memory nodes' ranges (absent on UEFI machines, where the EFI stub removed them). */
export function hasMemoryNodes(fdt: Fdt): boolean {
  return fdt.root.children.some((c) => c.name === "memory" || c.name.startsWith("memory@"));
}

