/**
 * Flattened device tree (DTB) reader and writer, version 17. Pure.
 *
 * The format is the devicetree specification's (v0.4, chapter 5), as the kernel's libfdt reads
 * it: a 40-byte big-endian header, the memory reservation block (u64 address/size pairs ended
 * by a zero pair), the structure block (FDT_BEGIN_NODE name, FDT_PROP len nameoff value,
 * FDT_END_NODE, FDT_NOP, FDT_END; every token and value padded to 4 bytes) and the strings block.
 *
 * nvwa reads the tree the running kernel booted with (/sys/firmware/fdt), changes /chosen and
 * writes a fresh compact blob for the next kernel; it never edits a blob in place, so NOPs and
 * the original's padding disappear and the strings are rebuilt without duplicates.
 */
import { NvwaError } from "../../errors.ts";

export const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;
const HEADER_SIZE = 40;
/** Written blobs say version 17, readable by anything that reads 16 (libfdt's own choice). */
const WRITE_VERSION = 17;
const LAST_COMP_VERSION = 16;

export interface FdtProp {
  name: string;
  value: Uint8Array;
}

export interface FdtNode {
  /** "" for the root; otherwise "name@unit-address" as in the blob. */
  name: string;
  props: FdtProp[];
  children: FdtNode[];
}

export interface MemReserve {
  address: bigint;
  size: bigint;
}

export interface Fdt {
  root: FdtNode;
  reservations: MemReserve[];
  bootCpuidPhys: number;
  /** The header's totalsize of a parsed blob (a reservation of exactly this size is the blob's own). */
  totalSize?: number;
}

function bad(what: string, details: Record<string, unknown> = {}): NvwaError {
  return new NvwaError("kexec.fdt-invalid", `the device tree is not a valid flattened device tree: ${what}`, {
    hint: "nvwa reads the tree the kernel booted with from /sys/firmware/fdt; check that it is readable and complete (it must start with d0 0d fe ed)",
    details,
  });
}

const align4 = (n: number): number => (n + 3) & ~3;

function cString(b: Uint8Array, at: number, limit: number, what: string): { text: string; end: number } {
  let end = at;
  while (end < limit && b[end] !== 0) end++;
  if (end >= limit) throw bad(`${what} at byte ${at} is not NUL-terminated`);
  return { text: new TextDecoder().decode(b.subarray(at, end)), end };
}

/** Parses a DTB. Throws kexec.fdt-invalid naming what is wrong; never reads past the blob. */
export function parseFdt(blob: Uint8Array): Fdt {
  if (blob.length < HEADER_SIZE) throw bad(`${blob.length} bytes is shorter than the 40-byte header`);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const h = (i: number): number => dv.getUint32(i * 4, false);
  const magic = h(0);
  if (magic !== FDT_MAGIC) throw bad(`magic is 0x${magic.toString(16)}, not 0xd00dfeed`);
  const totalsize = h(1);
  const offStruct = h(2);
  const offStrings = h(3);
  const offRsv = h(4);
  const version = h(5);
  const bootCpuidPhys = h(7);
  const sizeStrings = h(8);
  const sizeStruct = h(9);
  if (totalsize > blob.length) throw bad(`header says ${totalsize} bytes but only ${blob.length} were read`, { totalsize });
  // size_dt_struct, which bounds the walk below, exists from version 17 on (every blob a kernel or dtc writes today).
  if (version < 17) throw bad(`version ${version} is older than 17, which nvwa does not read`, { version });
  const inside = (off: number, len: number): boolean => off >= HEADER_SIZE && off + len <= totalsize;
  if (!inside(offStruct, sizeStruct)) throw bad("the structure block lies outside the blob");
  if (!inside(offStrings, sizeStrings)) throw bad("the strings block lies outside the blob");
  if (offRsv % 8 !== 0 || !inside(offRsv, 16)) throw bad("the memory reservation block is misplaced");

  const reservations: MemReserve[] = [];
  for (let at = offRsv; ; at += 16) {
    if (at + 16 > totalsize) throw bad("the memory reservation block has no terminating entry");
    const address = dv.getBigUint64(at, false);
    const size = dv.getBigUint64(at + 8, false);
    if (address === 0n && size === 0n) break;
    reservations.push({ address, size });
  }

  const structEnd = offStruct + sizeStruct;
  const stringsEnd = offStrings + sizeStrings;
  let at = offStruct;
  const word = (): number => {
    if (at + 4 > structEnd) throw bad(`the structure block ends inside a token at byte ${at}`);
    const v = dv.getUint32(at, false);
    at += 4;
    return v;
  };
  const stack: FdtNode[] = [];
  let root: FdtNode | null = null;
  let ended = false;
  while (!ended) {
    const token = word();
    switch (token) {
      case FDT_BEGIN_NODE: {
        const { text, end } = cString(blob, at, structEnd, "a node name");
        at = align4(end + 1);
        const node: FdtNode = { name: text, props: [], children: [] };
        const parent = stack[stack.length - 1];
        if (parent === undefined) {
          if (root !== null) throw bad("a second root node");
          root = node;
        } else parent.children.push(node);
        stack.push(node);
        break;
      }
      case FDT_END_NODE:
        if (stack.pop() === undefined) throw bad(`an END_NODE at byte ${at - 4} closes no node`);
        break;
      case FDT_PROP: {
        const len = word();
        const nameoff = word();
        const node = stack[stack.length - 1];
        if (node === undefined) throw bad(`a property at byte ${at - 12} outside any node`);
        if (at + len > structEnd) throw bad(`a property value at byte ${at} runs past the structure block`);
        if (offStrings + nameoff >= stringsEnd) throw bad(`a property name offset ${nameoff} lies outside the strings block`);
        const { text } = cString(blob, offStrings + nameoff, stringsEnd, "a property name");
        node.props.push({ name: text, value: blob.slice(at, at + len) });
        at = align4(at + len);
        break;
      }
      case FDT_NOP:
        break;
      case FDT_END:
        ended = true;
        break;
      default:
        throw bad(`unknown token 0x${token.toString(16)} at byte ${at - 4}`);
    }
  }
  if (root === null) throw bad("no root node");
  if (stack.length !== 0) throw bad(`${stack.length} node(s) not closed before FDT_END`);
  return { root, reservations, bootCpuidPhys, totalSize: totalsize };
}

/** Serializes a tree as a compact v17 blob; `padding` free bytes are added at the end for later growth. */
export function serializeFdt(fdt: Fdt, padding = 0): Uint8Array {
  const strings = new Map<string, number>();
  const stringBytes: number[] = [];
  const enc = new TextEncoder();
  const nameOffset = (name: string): number => {
    const known = strings.get(name);
    if (known !== undefined) return known;
    const off = stringBytes.length;
    stringBytes.push(...enc.encode(name), 0);
    strings.set(name, off);
    return off;
  };
  const struct: number[] = [];
  const pushU32 = (v: number): void => {
    struct.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  };
  const pushPadded = (bytes: Uint8Array | number[]): void => {
    for (const b of bytes) struct.push(b);
    while (struct.length % 4 !== 0) struct.push(0);
  };
  const walk = (n: FdtNode): void => {
    pushU32(FDT_BEGIN_NODE);
    pushPadded([...enc.encode(n.name), 0]);
    for (const p of n.props) {
      pushU32(FDT_PROP);
      pushU32(p.value.length);
      pushU32(nameOffset(p.name));
      pushPadded(p.value);
    }
    for (const c of n.children) walk(c);
    pushU32(FDT_END_NODE);
  };
  walk(fdt.root);
  pushU32(FDT_END);

  const offRsv = HEADER_SIZE; // already a multiple of 8
  const rsvSize = (fdt.reservations.length + 1) * 16;
  const offStruct = offRsv + rsvSize;
  const offStrings = offStruct + struct.length;
  const used = offStrings + stringBytes.length;
  const totalsize = align4(used) + align4(padding);
  const out = new Uint8Array(totalsize);
  const dv = new DataView(out.buffer);
  [FDT_MAGIC, totalsize, offStruct, offStrings, offRsv, WRITE_VERSION, LAST_COMP_VERSION, fdt.bootCpuidPhys, stringBytes.length, struct.length].forEach((v, i) =>
    dv.setUint32(i * 4, v >>> 0, false),
  );
  fdt.reservations.forEach((r, i) => {
    dv.setBigUint64(offRsv + i * 16, r.address, false);
    dv.setBigUint64(offRsv + i * 16 + 8, r.size, false);
  });
  out.set(struct, offStruct);
  out.set(stringBytes, offStrings);
  return out;
}

// ------------------------------------------------------------------------------ tree access

/** The node at an absolute path such as "/chosen", or null. Unit addresses must be spelt out. */
export function findNode(fdt: Fdt, path: string): FdtNode | null {
  let node: FdtNode = fdt.root;
  for (const part of path.split("/").filter((p) => p !== "")) {
    const next = node.children.find((c) => c.name === part);
    if (next === undefined) return null;
    node = next;
  }
  return node;
}

/** The child called `name`, created (at the end) when missing. */
export function childNode(parent: FdtNode, name: string): FdtNode {
  const found = parent.children.find((c) => c.name === name);
  if (found !== undefined) return found;
  const node: FdtNode = { name, props: [], children: [] };
  parent.children.push(node);
  return node;
}

export function getProp(node: FdtNode, name: string): Uint8Array | null {
  return node.props.find((p) => p.name === name)?.value ?? null;
}

/** Sets a property, keeping its position when it exists. */
export function setProp(node: FdtNode, name: string, value: Uint8Array): void {
  const found = node.props.find((p) => p.name === name);
  if (found !== undefined) found.value = value;
  else node.props.push({ name, value });
}

/** Removes a property; true when it was there. */
export function removeProp(node: FdtNode, name: string): boolean {
  const before = node.props.length;
  node.props = node.props.filter((p) => p.name !== name);
  return node.props.length !== before;
}

// ------------------------------------------------------------------------------ values

export function propString(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

/** A NUL-terminated string property's text (the first string of a list), or null. */
export function readString(v: Uint8Array | null): string | null {
  if (v === null) return null;
  const end = v.indexOf(0);
  return new TextDecoder().decode(v.subarray(0, end < 0 ? v.length : end));
}

export function propU64(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n, false);
  return out;
}

export function propU32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0, false);
  return out;
}

/** A number of 1 or 2 cells (what of_read_number accepts for addresses such as linux,initrd-start). */
export function readCells(v: Uint8Array | null): bigint | null {
  if (v === null) return null;
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  if (v.length === 4) return BigInt(dv.getUint32(0, false));
  if (v.length === 8) return dv.getBigUint64(0, false);
  return null;
}

/** `reg`-style (address, size) pairs with the given cell counts. */
export function readRegs(v: Uint8Array | null, addressCells: number, sizeCells: number): { address: bigint; size: bigint }[] {
  if (v === null) return [];
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const cell = (at: number, n: number): bigint => {
    let r = 0n;
    for (let i = 0; i < n; i++) r = (r << 32n) | BigInt(dv.getUint32(at + i * 4, false));
    return r;
  };
  const stride = (addressCells + sizeCells) * 4;
  const out: { address: bigint; size: bigint }[] = [];
  for (let at = 0; stride > 0 && at + stride <= v.length; at += stride) {
    out.push({ address: cell(at, addressCells), size: cell(at + addressCells * 4, sizeCells) });
  }
  return out;
}
