/**
 * Builds one .deb: stages the payload build/deb-plan.ts read from rpm/nvwa.spec (modes set
 * explicitly, every mtime the build epoch), writes DEBIAN/ (control, conffiles, md5sums, the
 * maintainer scripts) and runs `dpkg-deb --root-owner-group --build -Zxz`, so every entry is
 * root:root without running as root and the archive is the same for the same inputs.
 */
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { NvwaError } from "../src/errors.ts";
import {
  conffilesText,
  controlText,
  debArchOf,
  debFileName,
  installedSizeKiB,
  maintainerScripts,
  md5sumsText,
  parentDirsOf,
  unitsOf,
  type DebArch,
  type PayloadEntry,
  type SpecFacts,
} from "./deb-plan.ts";
import type { ArchPlan } from "./rpm-plan.ts";
import { run } from "./rpm-run.ts";

/**
 * xz -1: ~30 MB in ~5 s per package here; -6 (dpkg's default) saves 13 % for four times the
 * time, on every build and every guest test run. xz, not zstd: dpkg before 1.21.18 cannot read zstd.
 */
export const DEB_COMPRESSION = ["-Zxz", "-z1"];

export interface DebInput {
  spec: SpecFacts;
  payload: PayloadEntry[];
  arch: ArchPlan;
  version: string;
  maintainer: string;
  /** The file on this machine for a payload file's Source name. */
  fileOf: (source: string) => string;
  /** Every mtime in the package (seconds). */
  epoch: number;
  /** A scratch directory of this build's own. */
  stage: string;
}

export interface BuiltDebFile {
  arch: DebArch;
  path: string;
}

function md5(path: string): string {
  return createHash("md5").update(readFileSync(path)).digest("hex");
}

export async function buildDeb(i: DebInput): Promise<BuiltDebFile> {
  const arch = debArchOf(i.arch.bunArch);
  const tree = join(i.stage, `deb-${arch}`);
  const at = (p: string): string => join(tree, p);
  mkdirSync(tree, { recursive: true });
  chmodSync(tree, 0o755);
  for (const d of parentDirsOf(i.payload)) {
    mkdirSync(at(d), { recursive: true });
    chmodSync(at(d), 0o755);
  }
  const sizes: { type: "file" | "dir"; bytes: number }[] = [];
  const sums: { path: string; md5: string }[] = [];
  for (const e of i.payload) {
    if (e.type === "dir") {
      mkdirSync(at(e.path), { recursive: true });
    } else {
      if (e.source === undefined) throw new NvwaError("package.deb", `${e.path} has no source file`, { hint: "this is a bug in build/deb-plan.ts" });
      const from = i.fileOf(e.source);
      mkdirSync(dirname(at(e.path)), { recursive: true });
      copyFileSync(from, at(e.path));
      if (!e.conffile) sums.push({ path: e.path, md5: md5(at(e.path)) });
    }
    chmodSync(at(e.path), e.mode);
    sizes.push({ type: e.type, bytes: e.type === "file" ? statSync(at(e.path)).size : 0 });
  }
  for (const d of parentDirsOf(i.payload)) sizes.push({ type: "dir", bytes: 0 });

  const debian = at("DEBIAN");
  mkdirSync(debian);
  chmodSync(debian, 0o755);
  // chmod after writing: the mode given to writeFileSync passes through the umask, and dpkg-deb
  // refuses maintainer scripts that are not 0555..0775.
  const put = (name: string, text: string, mode: number): void => {
    writeFileSync(join(debian, name), text);
    chmodSync(join(debian, name), mode);
  };
  put("control", controlText({ spec: i.spec, version: i.version, arch, installedSizeKiB: installedSizeKiB(sizes), maintainer: i.maintainer }), 0o644);
  const conffiles = conffilesText(i.payload);
  if (conffiles !== "") put("conffiles", conffiles, 0o644);
  put("md5sums", md5sumsText(sums), 0o644);
  const scripts = maintainerScripts(unitsOf(i.payload));
  for (const [name, text] of Object.entries(scripts)) put(name, text, 0o755);

  // One mtime for every entry (copyFileSync kept the build's own), children before parents.
  const all = [...i.payload.map((e) => e.path), ...parentDirsOf(i.payload), "/DEBIAN", ...["control", "conffiles", "md5sums", ...Object.keys(scripts)].map((f) => `/DEBIAN/${f}`)];
  for (const p of all.sort().reverse()) if (existsSync(at(p))) utimesSync(at(p), i.epoch, i.epoch);
  utimesSync(tree, i.epoch, i.epoch);

  const out = join(i.stage, debFileName(i.version, arch));
  await run(["dpkg-deb", "--root-owner-group", ...DEB_COMPRESSION, "--build", tree, out], {
    what: `building the ${arch} .deb`,
    // The ar members' timestamps (dpkg-deb reads it); file mtimes were set above.
    env: { SOURCE_DATE_EPOCH: String(i.epoch) },
  });
  return { arch, path: out };
}
