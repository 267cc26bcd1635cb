/**
 * The plain tarballs, for OS pipelines that install neither RPMs nor .debs (Yocto, Buildroot,
 * mkosi ExtraTrees=): per arch `nvwa-<version>-linux-<arch>.tar.gz`, root-relative
 * (`tar -xzf … -C "$DESTDIR"`), holding exactly the .deb's payload (build/deb-plan.ts payloadOf:
 * the executable, the unit, the default configs, the completion, the owned directories, the
 * documentation), plus SHA256SUMS in `sha256sum -c` format and its detached signature.
 *
 * The archive is written here rather than by tar(1): ustar with every owner root:root (0/0),
 * one mtime for everything and a fixed order, then gzip with no name or time in its header, so
 * the same inputs give the same bytes. Directories the payload does not own ("usr/") are left
 * out: extracting must not reset the modes of a target tree's /usr or /etc.
 *
 * ustarArchive, tarballName and sha256sumsText are pure (test/unit/tarball.test.ts).
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NvwaError } from "../src/errors.ts";
import type { PayloadEntry } from "./deb-plan.ts";
import type { BunArch } from "./rpm-plan.ts";

export interface TarEntry {
  /** Relative, no leading "/" or "./"; a directory without the trailing "/" (added here). */
  name: string;
  type: "file" | "dir";
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  data?: Uint8Array;
}

const BLOCK = 512;

function octal(n: number, width: number): string {
  // width - 1 digits and a NUL, as GNU tar writes them.
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

/** Splits a long name into ustar's prefix (155) and name (100), at a "/". */
function splitName(name: string): { prefix: string; name: string } {
  if (Buffer.byteLength(name) <= 100) return { prefix: "", name };
  for (let i = name.lastIndexOf("/"); i > 0; i = name.lastIndexOf("/", i - 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== "") return { prefix, name: rest };
  }
  throw new NvwaError("package.tarball", `${name} is too long for a ustar archive`, { hint: "shorten the path in rpm/nvwa.spec's %files" });
}

function header(e: TarEntry, size: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const put = (s: string, at: number): void => {
    h.set(new TextEncoder().encode(s), at);
  };
  const { prefix, name } = splitName(e.type === "dir" ? `${e.name}/` : e.name);
  put(name, 0);
  put(octal(e.mode & 0o7777, 8), 100);
  put(octal(0, 8), 108); // uid
  put(octal(0, 8), 116); // gid
  put(octal(size, 12), 124);
  put(octal(e.mtime, 12), 136);
  put("        ", 148); // checksum field counts as spaces while summing
  put(e.type === "dir" ? "5" : "0", 156);
  put("ustar\0", 257);
  put("00", 263);
  put("root", 265);
  put("root", 297);
  put(prefix, 345);
  const sum = h.reduce((a, b) => a + b, 0);
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

/** A POSIX ustar archive of `entries`, in the order given, ending with two zero blocks. */
export function ustarArchive(entries: TarEntry[]): Uint8Array<ArrayBuffer> {
  const pad = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;
  for (const e of entries) {
    if (e.name === "" || e.name.startsWith("/") || e.name.startsWith("./") || e.name.endsWith("/")) {
      throw new NvwaError("package.tarball", `"${e.name}" is not a relative name for the tarball`, { hint: "this is a bug in build/tarball.ts" });
    }
  }
  const total = entries.reduce((t, e) => t + BLOCK + (e.type === "file" ? pad(e.data?.length ?? 0) : 0), 0) + 2 * BLOCK;
  const out = new Uint8Array(total);
  let at = 0;
  for (const e of entries) {
    const data = e.type === "file" ? (e.data ?? new Uint8Array()) : new Uint8Array();
    out.set(header(e, data.length), at);
    at += BLOCK;
    out.set(data, at);
    at += pad(data.length);
  }
  return out;
}

export function tarballName(pkgVersion: string, arch: BunArch): string {
  return `nvwa-${pkgVersion}-linux-${arch}.tar.gz`;
}

export const SUMS_FILE = "SHA256SUMS";

/** `sha256sum -c` input: "<hex>  <name>", two spaces (text mode). */
export function sha256sumsText(files: { name: string; sha256: string }[]): string {
  return [...files].sort((a, b) => (a.name < b.name ? -1 : 1)).map((f) => `${f.sha256}  ${f.name}\n`).join("");
}

export interface TarballInput {
  payload: PayloadEntry[];
  /** The file on this machine for a payload file's Source name. */
  fileOf: (source: string) => string;
  mtime: number;
  out: string;
}

/** Writes one tarball; returns its SHA-256. */
export function writeTarball(i: TarballInput): string {
  const entries: TarEntry[] = i.payload.map((e) => {
    const entry: TarEntry = { name: e.path.replace(/^\/+/, ""), type: e.type, mode: e.mode, mtime: i.mtime };
    if (e.type === "file") {
      if (e.source === undefined) throw new NvwaError("package.tarball", `${e.path} has no source file`, { hint: "this is a bug in build/deb-plan.ts" });
      entry.data = readFileSync(i.fileOf(e.source));
    }
    return entry;
  });
  const gz = Bun.gzipSync(ustarArchive(entries), { level: 9 });
  writeFileSync(i.out, gz, { mode: 0o644 });
  return createHash("sha256").update(gz).digest("hex");
}

export function writeSums(dir: string, files: { name: string; sha256: string }[]): string {
  const path = join(dir, SUMS_FILE);
  writeFileSync(path, sha256sumsText(files), { mode: 0o644 });
  return path;
}
