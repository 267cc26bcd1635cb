/**
 * What a kernel file is, and what the in-kernel loader of this machine will accept. Pure: bytes
 * in, a description (and an unwrapped image) out.
 *
 * x86_64's kexec_file_load takes a bzImage (boot protocol >= 2.12 with a 64-bit entry point).
 * arm64's takes only a raw little-endian `Image` (magic "ARM\x64" at offset 56) and answers
 * EINVAL to anything else, so gzip and EFI zboot wrappers are opened here. An unwrapped image
 * no longer carries the wrapper's signature, which matters under lockdown (see checks).
 */
import { gunzipSync } from "node:zlib";
import type { Arch } from "../../ffi/arch.ts";
import { ExitCode, NvwaError } from "../errors.ts";

export interface PeSignature {
  /** File offset and size of the Authenticode certificate table; size 0 means unsigned. */
  offset: number;
  size: number;
}

export type ImageFormat =
  | { kind: "bzImage"; arch: "x64"; protocol: string; kernel64: boolean; signature: PeSignature | null }
  | { kind: "arm64-image"; arch: "arm64"; bigEndian: boolean; imageSize: bigint; signature: PeSignature | null }
  | { kind: "gzip" }
  | { kind: "zstd" }
  | { kind: "efi-zboot"; compression: string; payloadOffset: number; payloadSize: number; signature: PeSignature | null }
  | { kind: "foreign"; name: string }
  | { kind: "unknown" };

const ARM64_MAGIC = 0x644d5241; // "ARM\x64", little-endian u32 at 56
const RISCV_MAGIC2 = 0x05435352; // "RSC\x05" at 56
const HDRS = 0x53726448; // "HdrS" at 0x202

function u16(b: Uint8Array, off: number): number {
  return off + 2 <= b.length ? (b[off] ?? 0) | ((b[off + 1] ?? 0) << 8) : -1;
}
function u32(b: Uint8Array, off: number): number {
  if (off + 4 > b.length) return -1;
  return ((b[off] ?? 0) | ((b[off + 1] ?? 0) << 8) | ((b[off + 2] ?? 0) << 16) | ((b[off + 3] ?? 0) << 24)) >>> 0;
}
function u64(b: Uint8Array, off: number): bigint {
  if (off + 8 > b.length) return -1n;
  return BigInt(u32(b, off)) | (BigInt(u32(b, off + 4)) << 32n);
}
function ascii(b: Uint8Array, off: number, len: number): string {
  return String.fromCharCode(...b.subarray(off, off + len));
}
function asciz(b: Uint8Array, off: number, max: number): string {
  let s = "";
  for (let i = off; i < Math.min(b.length, off + max); i++) {
    const c = b[i] ?? 0;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * Pure: the Authenticode certificate table of a PE file (MZ + PE header), or null when the
 * file is not PE. Both x86 bzImages and arm64 Images carry an EFI stub and are PE files.
 */
export function peSignature(b: Uint8Array): PeSignature | null {
  if (b[0] !== 0x4d || b[1] !== 0x5a) return null; // "MZ"
  const pe = u32(b, 0x3c);
  if (pe < 0 || u32(b, pe) !== 0x00004550) return null; // "PE\0\0"
  const opt = pe + 24;
  const magic = u16(b, opt);
  // Data directories follow the optional header's fixed part; entry 4 is the security directory.
  const dirs = magic === 0x20b ? opt + 112 : magic === 0x10b ? opt + 96 : -1;
  if (dirs < 0) return null;
  const count = u32(b, dirs - 4);
  if (count < 5) return { offset: 0, size: 0 };
  return { offset: u32(b, dirs + 4 * 8), size: u32(b, dirs + 4 * 8 + 4) };
}

/** Pure: identifies the container or image kind from its first bytes. */
export function detectFormat(b: Uint8Array): ImageFormat {
  const isMZ = b[0] === 0x4d && b[1] === 0x5a;
  if (isMZ && ascii(b, 4, 4) === "zimg") {
    return {
      kind: "efi-zboot",
      payloadOffset: u32(b, 8),
      payloadSize: u32(b, 12),
      compression: asciz(b, 24, 32),
      signature: peSignature(b),
    };
  }
  if (u32(b, 56) === ARM64_MAGIC) {
    return {
      kind: "arm64-image",
      arch: "arm64",
      bigEndian: (Number(u64(b, 24) & 1n)) === 1,
      imageSize: u64(b, 16),
      signature: peSignature(b),
    };
  }
  if (u16(b, 0x1fe) === 0xaa55 && u32(b, 0x202) === HDRS) {
    const version = u16(b, 0x206);
    const xloadflags = u16(b, 0x236);
    return {
      kind: "bzImage",
      arch: "x64",
      protocol: `${version >> 8}.${version & 0xff}`,
      // Protocol 2.12 introduced xloadflags; XLF_KERNEL_64 (bit 0) is the 64-bit entry kexec needs.
      kernel64: version >= 0x020c && (xloadflags & 1) === 1,
      signature: peSignature(b),
    };
  }
  if (b[0] === 0x1f && b[1] === 0x8b) return { kind: "gzip" };
  if (u32(b, 0) === 0xfd2fb528) return { kind: "zstd" };
  if (u32(b, 56) === RISCV_MAGIC2) return { kind: "foreign", name: "a RISC-V Image" };
  if (b[0] === 0xfd && ascii(b, 1, 4) === "7zXZ") return { kind: "foreign", name: "an xz-compressed file" };
  if (ascii(b, 0, 3) === "BZh") return { kind: "foreign", name: "a bzip2-compressed file" };
  if (u32(b, 0) === 0x184d2204 || u32(b, 0) === 0x184c2102) return { kind: "foreign", name: "an lz4-compressed file" };
  if (b[0] === 0x5d && b[1] === 0x00 && b[2] === 0x00) return { kind: "foreign", name: "an lzma-compressed file" };
  if (ascii(b, 0, 4) === "\x89LZO") return { kind: "foreign", name: "an lzop-compressed file" };
  if (ascii(b, 0, 4) === "\x7fELF") return { kind: "foreign", name: "an ELF vmlinux (not a bootable image)" };
  if (u32(b, 0) === 0x56190527) return { kind: "foreign", name: "a U-Boot uImage" };
  if (isMZ) return { kind: "foreign", name: "a PE/EFI executable that is not a Linux kernel image" };
  return { kind: "unknown" };
}

function sigWord(s: PeSignature | null): string {
  if (s === null) return "";
  return s.size > 0 ? ", signed" : ", unsigned";
}

/** Pure: a short human description, e.g. "x86 bzImage (boot protocol 2.15, signed)". */
export function describeFormat(f: ImageFormat): string {
  switch (f.kind) {
    case "bzImage":
      return `x86 bzImage (boot protocol ${f.protocol}${f.kernel64 ? "" : ", no 64-bit entry"}${sigWord(f.signature)})`;
    case "arm64-image":
      return `arm64 Image (${f.bigEndian ? "big-endian" : "little-endian"}${sigWord(f.signature)})`;
    case "gzip":
      return "gzip-compressed data";
    case "zstd":
      return "zstd-compressed data";
    case "efi-zboot":
      return `EFI zboot image (${f.compression || "unnamed"} payload${sigWord(f.signature)})`;
    case "foreign":
      return f.name;
    case "unknown":
      return "an unrecognised file";
  }
}

export interface UnwrappedKernel {
  /** The format of the file on disk. */
  outer: ImageFormat;
  /** The format handed to the kernel (equal to outer when nothing was unwrapped). */
  inner: ImageFormat;
  /** The bytes to load. */
  image: Uint8Array;
  /** Layers removed, outermost first, e.g. ["EFI zboot", "gzip"]. Empty when loaded as is. */
  unwrapped: string[];
  /** "EFI zboot image (gzip payload) → arm64 Image (little-endian)". */
  description: string;
}

function formatError(path: string, what: string, hint: string, details: Record<string, unknown> = {}): NvwaError {
  return new NvwaError("kexec.bad-format", `${path}: ${what}`, { hint, exitCode: ExitCode.usage, details: { path, ...details } });
}

const ARCH_NAME: Record<Arch, string> = { x64: "x86_64", arm64: "arm64" };

function decompress(kind: "gzip" | "zstd", data: Uint8Array, path: string): Uint8Array {
  try {
    return kind === "gzip" ? new Uint8Array(gunzipSync(data)) : new Uint8Array(Bun.zstdDecompressSync(data));
  } catch (e) {
    throw formatError(path, `the ${kind} data is damaged and cannot be decompressed (${e instanceof Error ? e.message : String(e)})`, "reinstall the kernel package", { compression: kind });
  }
}

/**
 * Pure: turns a kernel file into the image this machine's kexec_file_load accepts, or throws
 * naming the format found. `path` is only used in messages.
 */
export function unwrapKernel(bytes: Uint8Array, arch: Arch, path = "kernel image"): UnwrappedKernel {
  const outer = detectFormat(bytes);
  const layers: string[] = [];
  const chain: string[] = [];
  let cur = bytes;
  let f = outer;
  for (let depth = 0; ; depth++) {
    chain.push(describeFormat(f));
    if (depth > 3) throw formatError(path, `nested wrappers too deep: ${chain.join(" → ")}`, "this is not a kernel image as distributions ship them");
    switch (f.kind) {
      case "bzImage":
      case "arm64-image": {
        if (f.arch !== arch) {
          throw formatError(
            path,
            `is ${describeFormat(f)}, but this machine is ${ARCH_NAME[arch]}`,
            `install the ${ARCH_NAME[arch]} build of the kernel`,
            { format: f.kind },
          );
        }
        if (f.kind === "bzImage" && !f.kernel64) {
          throw formatError(path, `is ${describeFormat(f)}; kexec_file_load needs boot protocol 2.12+ with a 64-bit entry point`, "use a kernel built for x86_64 (Linux 3.8 or later)", { format: f.kind });
        }
        if (f.kind === "arm64-image" && (f.bigEndian || f.imageSize === 0n)) {
          throw formatError(
            path,
            `is ${describeFormat(f)}${f.imageSize === 0n ? " without an image size (pre-3.17 header)" : ""}; the running little-endian kernel cannot load it`,
            "use a little-endian arm64 kernel built from Linux 3.17 or later",
            { format: f.kind },
          );
        }
        return { outer, inner: f, image: cur, unwrapped: layers, description: chain.join(" → ") };
      }
      case "gzip":
      case "zstd":
        layers.push(f.kind);
        cur = decompress(f.kind, cur, path);
        break;
      case "efi-zboot": {
        const end = f.payloadOffset + f.payloadSize;
        if (f.payloadOffset <= 0 || f.payloadSize <= 0 || end > cur.length) {
          throw formatError(path, `EFI zboot header points outside the file (payload ${f.payloadOffset}+${f.payloadSize}, file ${cur.length} bytes)`, "the image is truncated; reinstall the kernel package");
        }
        const payload = cur.subarray(f.payloadOffset, end);
        const comp = f.compression === "zstd22" ? "zstd" : f.compression;
        if (comp !== "gzip" && comp !== "zstd") {
          throw formatError(
            path,
            `is an EFI zboot image with a ${f.compression || "unnamed"} payload; nvwa can unwrap gzip and zstd payloads`,
            "use a kernel built with CONFIG_KERNEL_GZIP or CONFIG_KERNEL_ZSTD, or let kexec_exe load it",
            { format: f.kind, compression: f.compression },
          );
        }
        layers.push("EFI zboot", comp);
        cur = decompress(comp, payload, path);
        break;
      }
      case "foreign":
      case "unknown": {
        const expected = arch === "x64" ? "an x86 bzImage" : "an arm64 Image (raw, gzip or EFI zboot)";
        throw formatError(
          path,
          layers.length === 0 ? `is ${describeFormat(f)}, not a kernel image this machine can load (expected ${expected})` : `unwrapped ${chain.join(" → ")}, which is not ${expected}`,
          "check that the file is the kernel image (vmlinuz) of the version you meant",
          { format: f.kind },
        );
      }
    }
    f = detectFormat(cur);
  }
}
