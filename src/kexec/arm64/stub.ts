/**
 * The entry stub that replaces kexec-tools' purgatory on arm64. Pure.
 *
 * For an image loaded with kexec_load the kernel's relocation code (arch/arm64/kernel/
 * relocate_kernel.S) copies the segments, turns the MMU off and branches to the entry with x0
 * holding kimage->arch.dtb_mem, which only kexec_file_load sets: it is 0 here. Documentation/
 * arm64/booting.rst wants x0 = the DTB's physical address and x1..x3 = 0 at the kernel's first
 * instruction, MMU off. So the stub does exactly that and nothing else: no stack, no checksum,
 * position-independent (PC-relative literals), 40 bytes:
 *
 *     0:  ldr  x0, 24        // the DTB's physical address
 *     4:  mov  x1, xzr
 *     8:  mov  x2, xzr
 *    12:  mov  x3, xzr
 *    16:  ldr  x4, 32        // the kernel's entry (load address + text_offset)
 *    20:  br   x4
 *    24:  .quad dtb
 *    32:  .quad kernel entry
 *
 * kexec-tools' purgatory (purgatory/arch/arm64/entry.S) ends with the same five instructions;
 * what it adds (a SHA-256 check of the segments, a console message) is skipped.
 */

/** A64 LDR (literal), 64-bit: the word at PC + offset into register rt. */
export function ldrLiteral64(rt: number, offset: number): number {
  if (offset % 4 !== 0 || offset < -(1 << 20) || offset >= 1 << 20) throw new RangeError(`ldr literal offset ${offset} out of range`);
  return (0x58000000 | (((offset / 4) & 0x7ffff) << 5) | rt) >>> 0;
}

/** A64 MOV Xd, XZR (ORR Xd, XZR, XZR). */
export function movZero64(rd: number): number {
  return (0xaa1f03e0 | rd) >>> 0;
}

/** A64 BR Xn. */
export function br(rn: number): number {
  return (0xd61f0000 | (rn << 5)) >>> 0;
}

export const STUB_SIZE = 40;

export function entryStub(dtbAddress: bigint, kernelEntry: bigint): Uint8Array {
  const out = new Uint8Array(STUB_SIZE);
  const dv = new DataView(out.buffer);
  [ldrLiteral64(0, 24), movZero64(1), movZero64(2), movZero64(3), ldrLiteral64(4, 16), br(4)].forEach((w, i) => dv.setUint32(i * 4, w, true));
  dv.setBigUint64(24, dtbAddress, true);
  dv.setBigUint64(32, kernelEntry, true);
  return out;
}
