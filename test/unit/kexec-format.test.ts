/**
 * Image format detection and unwrapping, on real Debian kernels: the amd64 bzImage from
 * linux-image-6.1.0-*-amd64 and the arm64 vmlinuz from bookworm (6.1) and trixie (6.12),
 * downloaded with apt-get by test/fixtures/kernels/fetch.sh and cached.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { describeFormat, detectFormat, peSignature, unwrapKernel } from "../../src/kexec/format.ts";
import { isNvwaError, type NvwaError } from "../../src/errors.ts";
import { realKernel, zbootWrap, type RealKernel } from "../fixtures/kernels/kernels.ts";

let amd64: RealKernel;
let arm64: RealKernel;
let arm64Trixie: RealKernel;

beforeAll(() => {
  amd64 = realKernel("bookworm", "amd64");
  arm64 = realKernel("bookworm", "arm64");
  arm64Trixie = realKernel("trixie", "arm64");
}, 600_000);

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

function thrown(f: () => unknown): NvwaError {
  try {
    f();
  } catch (e) {
    if (isNvwaError(e)) return e;
    throw e;
  }
  throw new Error("expected an NvwaError");
}

/** What arm64's image_probe/image_load check, read independently of format.ts. */
function assertValidArm64Image(b: Uint8Array): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  expect(dv.getUint32(56, true)).toBe(0x644d5241); // "ARM\x64"
  const imageSize = dv.getBigUint64(16, true);
  expect(imageSize).toBeGreaterThanOrEqual(BigInt(b.length)); // covers the file plus BSS
  expect(dv.getBigUint64(24, true) & 1n).toBe(0n); // little-endian kernel
}

describe("real Debian kernels", () => {
  test("amd64 vmlinuz is a signed bzImage with a 64-bit entry, loaded as is", () => {
    const f = detectFormat(amd64.bytes);
    expect(f.kind).toBe("bzImage");
    if (f.kind !== "bzImage") return;
    expect(f.kernel64).toBe(true);
    expect(f.protocol).toMatch(/^2\.1[2-9]$/);
    expect(f.signature?.size ?? 0).toBeGreaterThan(0);
    expect(describeFormat(f)).toContain("signed");
    const u = unwrapKernel(amd64.bytes, "x64", amd64.path);
    expect(u.unwrapped).toEqual([]);
    expect(u.image).toBe(amd64.bytes);
  });

  test("the bzImage is refused on arm64, naming what it is", () => {
    const e = thrown(() => unwrapKernel(amd64.bytes, "arm64", amd64.path));
    expect(e.code).toBe("kexec.bad-format");
    expect(e.message).toContain("x86 bzImage");
    expect(e.message).toContain("this machine is arm64");
  });

  for (const which of ["bookworm", "trixie"] as const) {
    test(`${which} arm64 vmlinuz is a raw little-endian Image, loaded as is`, () => {
      const k = which === "bookworm" ? arm64 : arm64Trixie;
      const f = detectFormat(k.bytes);
      expect(f.kind).toBe("arm64-image");
      assertValidArm64Image(k.bytes);
      const u = unwrapKernel(k.bytes, "arm64", k.path);
      expect(u.unwrapped).toEqual([]);
      expect(u.description).toMatch(/^arm64 Image \(little-endian, signed\)$/);
    });
  }

  test("the arm64 Image is refused on x86_64", () => {
    const e = thrown(() => unwrapKernel(arm64.bytes, "x64", arm64.path));
    expect(e.message).toContain("arm64 Image");
    expect(e.message).toContain("x86_64");
  });
});

describe("unwrapping arm64 containers around the real Image", () => {
  test("gzip (what `make Image.gz` produces) unwraps to the identical Image", () => {
    const gz = gzipSync(arm64.bytes, { level: 9 });
    expect(detectFormat(gz).kind).toBe("gzip");
    const u = unwrapKernel(gz, "arm64", "Image.gz");
    expect(u.unwrapped).toEqual(["gzip"]);
    expect(sha(u.image)).toBe(sha(arm64.bytes));
    assertValidArm64Image(u.image);
    expect(u.description).toBe("gzip-compressed data → arm64 Image (little-endian, signed)");
  });

  test("EFI zboot with a gzip payload unwraps to the identical Image", () => {
    const z = zbootWrap(gzipSync(arm64.bytes), "gzip");
    const f = detectFormat(z);
    expect(f).toMatchObject({ kind: "efi-zboot", compression: "gzip", payloadOffset: 0x200 });
    const u = unwrapKernel(z, "arm64", "vmlinuz.efi");
    expect(u.unwrapped).toEqual(["EFI zboot", "gzip"]);
    expect(sha(u.image)).toBe(sha(arm64.bytes));
    assertValidArm64Image(u.image);
  });

  test("EFI zboot with a zstd22 payload (size appended after it) unwraps to the identical Image", () => {
    const payload = Bun.zstdCompressSync(arm64Trixie.bytes);
    const trailer = new Uint8Array(4);
    new DataView(trailer.buffer).setUint32(0, arm64Trixie.bytes.length, true);
    const z = zbootWrap(payload, "zstd22", trailer);
    const u = unwrapKernel(z, "arm64", "vmlinuz.efi");
    expect(u.unwrapped).toEqual(["EFI zboot", "zstd"]);
    expect(sha(u.image)).toBe(sha(arm64Trixie.bytes));
    assertValidArm64Image(u.image);
  });

  test("a bare zstd stream unwraps too", () => {
    const u = unwrapKernel(Bun.zstdCompressSync(arm64.bytes), "arm64");
    expect(u.unwrapped).toEqual(["zstd"]);
    expect(sha(u.image)).toBe(sha(arm64.bytes));
  });

  test("a zboot payload compressed with lzma is refused, naming the compression", () => {
    const e = thrown(() => unwrapKernel(zbootWrap(new Uint8Array(100), "lzma"), "arm64", "vmlinuz.efi"));
    expect(e.code).toBe("kexec.bad-format");
    expect(e.message).toContain("lzma payload");
  });

  test("a zboot header pointing past the end of the file is refused", () => {
    const z = zbootWrap(gzipSync(new Uint8Array(1000)), "gzip");
    new DataView(z.buffer).setUint32(12, z.length * 2, true);
    expect(thrown(() => unwrapKernel(z, "arm64")).message).toContain("outside the file");
  });

  test("damaged gzip is reported as damaged, not as a crash", () => {
    const gz = gzipSync(arm64.bytes.subarray(0, 1 << 20));
    const broken = gz.subarray(0, gz.length >> 1);
    expect(thrown(() => unwrapKernel(broken, "arm64", "Image.gz")).message).toContain("damaged");
  });

  test("gzip around something that is not an Image names the chain", () => {
    const e = thrown(() => unwrapKernel(gzipSync(new TextEncoder().encode("hello world, not a kernel")), "arm64", "x.gz"));
    expect(e.message).toContain("gzip-compressed data → an unrecognised file");
  });
});

describe("other files", () => {
  test("an ELF vmlinux, xz data and random bytes are named", () => {
    const elf = new Uint8Array(64);
    elf.set([0x7f, 0x45, 0x4c, 0x46]);
    expect(describeFormat(detectFormat(elf))).toContain("ELF vmlinux");
    const xz = new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 0, 0]);
    expect(describeFormat(detectFormat(xz))).toContain("xz");
    const e = thrown(() => unwrapKernel(new Uint8Array(4096).fill(7), "x64", "/boot/vmlinuz-x"));
    expect(e.message).toBe("/boot/vmlinuz-x: is an unrecognised file, not a kernel image this machine can load (expected an x86 bzImage)");
  });

  test("peSignature: null for non-PE, size 0 for an unsigned PE", () => {
    expect(peSignature(new Uint8Array(200))).toBeNull();
    const unsigned = amd64.bytes.slice(0, 4096);
    const pe = new DataView(unsigned.buffer).getUint32(0x3c, true);
    const dirs = pe + 24 + 112;
    new DataView(unsigned.buffer).setUint32(dirs + 4 * 8 + 4, 0, true);
    expect(peSignature(unsigned)?.size).toBe(0);
  });
});
