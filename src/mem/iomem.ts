/**
 * /proc/iomem as a tree. Each line is "<indent><start>-<end> : <name>", two spaces of indent
 * per nesting level, addresses in hex of whatever width the value needs (4, 8 or more digits;
 * above 4 GiB they simply grow). Ends are inclusive. Pure.
 *
 * Unprivileged readers see every address as zero; that is reported, not parsed as real data.
 */
import { NvwaError } from "../errors.ts";

export interface IomemNode {
  start: bigint;
  /** Inclusive, as the kernel prints it. */
  end: bigint;
  name: string;
  depth: number;
  children: IomemNode[];
}

export interface Iomem {
  roots: IomemNode[];
  /** Every address read as zero: the file was read without CAP_SYS_ADMIN. */
  redacted: boolean;
}

const LINE = /^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$/;

export function parseIomem(text: string): Iomem {
  const roots: IomemNode[] = [];
  const stack: IomemNode[] = [];
  let nonZero = false;
  let count = 0;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").replace(/\r$/, "");
    if (line.trim() === "") continue;
    const m = LINE.exec(line);
    if (m === null) {
      throw new NvwaError("iomem.parse", `/proc/iomem line ${i + 1} is not "<start>-<end> : <name>": ${JSON.stringify(line)}`, {
        hint: "this parser follows kernel/resource.c's format; please report the line",
        details: { line: i + 1, text: line },
      });
    }
    const [, indent = "", s = "0", e = "0", name = ""] = m;
    const node: IomemNode = { start: BigInt(`0x${s}`), end: BigInt(`0x${e}`), name, depth: indent.length >> 1, children: [] };
    if (node.start !== 0n || node.end !== 0n) nonZero = true;
    count++;
    while (stack.length > 0 && (stack[stack.length - 1]?.depth ?? -1) >= node.depth) stack.pop();
    const parent = stack[stack.length - 1];
    if (parent === undefined) roots.push(node);
    else parent.children.push(node);
    stack.push(node);
  }
  return { roots, redacted: count > 0 && !nonZero };
}

/** Depth-first list of every node. */
export function flatten(nodes: IomemNode[]): IomemNode[] {
  const out: IomemNode[] = [];
  const walk = (ns: IomemNode[]): void => {
    for (const n of ns) {
      out.push(n);
      walk(n.children);
    }
  };
  walk(nodes);
  return out;
}

/** Nodes whose name matches, case-insensitively (kernels have printed "Quick Kexec" and "Quick kexec"). */
export function findRegions(io: Iomem, name: string): IomemNode[] {
  const want = name.toLowerCase();
  return flatten(io.roots).filter((n) => n.name.toLowerCase() === want);
}

/** The chain of nodes from a root down to (and including) `target`, or null. */
export function ancestry(io: Iomem, target: IomemNode): IomemNode[] | null {
  const path: IomemNode[] = [];
  const walk = (ns: IomemNode[]): boolean => {
    for (const n of ns) {
      path.push(n);
      if (n === target || walk(n.children)) return true;
      path.pop();
    }
    return false;
  };
  return walk(io.roots) ? path : null;
}

export interface Range {
  start: bigint;
  /** Inclusive. */
  end: bigint;
}

export function size(r: Range): bigint {
  return r.end - r.start + 1n;
}

export function overlaps(a: Range, b: Range): boolean {
  return a.start <= b.end && b.start <= a.end;
}

export function contains(outer: Range, inner: Range): boolean {
  return outer.start <= inner.start && inner.end <= outer.end;
}

export const SYSTEM_RAM = "System RAM";

/** Top-level System RAM ranges. */
export function systemRam(io: Iomem): IomemNode[] {
  return io.roots.filter((n) => n.name === SYSTEM_RAM);
}

/**
 * Everything carved out of RAM or the address space that is not plain RAM: children of
 * System RAM (kernel image, crash kernel, quick kexec, pin memory, firmware "reserved"), and
 * top-level entries that are not System RAM (firmware reservations, devices).
 */
export function reservations(io: Iomem): IomemNode[] {
  return flatten(io.roots).filter((n) => n.name !== SYSTEM_RAM);
}

export function hex(n: bigint): string {
  return `0x${n.toString(16)}`;
}

export function formatRange(r: Range): string {
  return `${hex(r.start)}-${hex(r.end)}`;
}
