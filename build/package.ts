/**
 * `bun run package`: the RPMs, the .debs and the tarballs users install and OS pipelines
 * consume, from the executables build/compile.ts already made (it cross-compiles, so one x86_64
 * machine builds both arches). One signing key signs all of it.
 *
 *   1. the key: the distributor's (NVWA_GPG_KEY_ID) or a throw-away key made now
 *   2. rpmbuild rpm/nvwa.spec and dpkg-deb the same payload, per arch, all at once (no strip,
 *      no debuginfo); the .deb's files, modes and conffiles are read from the spec
 *      (build/deb-plan.ts), so the two cannot drift apart
 *   3. rpmsign, and check every signature with rpmkeys against the exported public key, as yum will
 *   4. the ISO-like yum repo and createrepo_c; repomd.xml signed too
 *   5. the apt repo (build/apt-repo.ts): Packages, Release, InRelease and Release.gpg, checked
 *   6. the tarballs (build/tarball.ts), SHA256SUMS and its signature
 *   7. swap the new trees into place together (a failed run leaves the previous ones untouched)
 *
 *   dist/repo/                            the yum repo (--out)
 *     RPM-GPG-KEY-nvwa                    the public key the guide's `rpm --import` takes
 *     nvwa.repo                           the guide's local.repo, for the repo mounted at /mnt
 *     Packages/nvwa-<v>-<r>.<arch>.rpm
 *     repodata/                           createrepo_c metadata; repomd.xml.asc its signature
 *   dist/apt/                             the apt repo (--apt-out; layout in build/apt-repo.ts)
 *     nvwa-archive-keyring.asc, nvwa.sources, pool/…/nvwa_<v>-<r>_<amd64|arm64>.deb, dists/stable/…
 *   dist/tarballs/                        (--tarball-out)
 *     nvwa-<v>-linux-<x64|arm64>.tar.gz   root-relative: tar -xzf … -C "$DESTDIR"
 *     SHA256SUMS, SHA256SUMS.asc          `sha256sum -c SHA256SUMS`; the signature by the same key
 *
 * The apt repo and the tarballs go to dist/ only when the RPM repo does too: a caller that names
 * only `out` (test/guest/scenarios.ts's guest repo, the RPM tests) gets only the RPM repo, so a
 * test build never replaces dist/apt with a repo signed by another throw-away key.
 * build/apt-repo.ts's buildAptRepo (re-exported here) makes the apt repo alone (the Debian guest's).
 *
 * Options: --out DIR, --apt-out DIR, --tarball-out DIR, --no-apt, --no-tarballs,
 * --arch x64|arm64 (repeatable), --release N, --iso [PATH].
 * Environment: NVWA_GPG_KEY_ID (+ GNUPGHOME, NVWA_GPG_PASSPHRASE_FILE), NVWA_PACKAGER,
 * SOURCE_DATE_EPOCH (the .debs' and tarballs' mtimes, Release's Date).
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ExitCode, NvwaError, isNvwaError, toNvwaError } from "../src/errors.ts";
import { log } from "../src/log.ts";
import {
  ARCHES,
  KEY_FILE,
  REPO_FILE,
  archPlan,
  checkRelease,
  checksigOk,
  isoVolumeId,
  repoFileText,
  rpmFileName,
  rpmVersionOf,
  rpmbuildArgv,
  rpmsignArgv,
  type ArchPlan,
  type BunArch,
  type RpmArch,
} from "./rpm-plan.ts";
import { APT_KEY_FILE, debVersionOf, payloadOf } from "./deb-plan.ts";
import {
  buildDebs,
  epochs,
  fileOfSource,
  freshBeside,
  locateSources,
  maintainerOf,
  packageJsonVersion,
  readSpec,
  since,
  swapInto,
  type BuiltDeb,
  type Dirs,
} from "./deb-inputs.ts";
import { writeAptRepo } from "./apt-repo.ts";
import { SUMS_FILE, tarballName, writeSums, writeTarball } from "./tarball.ts";
import { detachSign, exportPublicKey, keyFromEnvironment, throwawayKey, type SigningKey } from "./rpm-gpg.ts";
import { requireTools, run } from "./rpm-run.ts";

export { buildAptRepo, type AptRepoOptions, type AptRepoResult } from "./apt-repo.ts";
export type { BuiltDeb } from "./deb-inputs.ts";

const ROOT = resolve(import.meta.dir, "..");

export interface PackageOptions {
  /** The checkout: package.json, README.md, rpm/, dist/. */
  root?: string;
  /** Spec and its plain-file sources (default <root>/rpm). */
  rpmDir?: string;
  /** Where the executables are (default <root>/dist). */
  distDir?: string;
  /** The repo to produce (default <root>/dist/repo). Replaced as a whole. */
  out?: string;
  /**
   * The apt repo to produce, replaced as a whole; false: none. Default: <distDir>/apt when
   * `out` is not given either, none when it is (see the header).
   */
  aptOut?: string | false;
  /** The tarballs' directory, replaced as a whole; false: none. Default as aptOut's, <distDir>/tarballs. */
  tarballOut?: string | false;
  arches?: BunArch[];
  /** rpm Release and Debian revision (default "1"). */
  release?: string;
  /** package.json-style version (default: package.json's). */
  version?: string;
  /** Also write an ISO 9660 image of the repo at this path (true: <distDir>/nvwa-<version>.iso). */
  iso?: string | boolean;
  env?: Record<string, string | undefined>;
}

export interface BuiltRpm {
  arch: RpmArch;
  path: string;
  bytes: number;
}

export interface PackageResult {
  out: string;
  version: string;
  release: string;
  rpms: BuiltRpm[];
  /** The apt repo, when one was made. */
  apt: { out: string; version: string; debs: BuiltDeb[]; keyFile: string } | undefined;
  /** The tarballs and SHA256SUMS, when made. */
  tarballs: { out: string; files: string[]; sums: string } | undefined;
  keyFingerprint: string;
  throwawayKey: boolean;
  iso: string | undefined;
  /** Wall-clock seconds of each step (build: rpmbuild and dpkg-deb, which run together). */
  seconds: { rpmbuild: number; sign: number; repo: number; apt: number; tarball: number; iso: number; total: number };
}

/** rpmbuild reads Source files from one directory; link them there instead of copying 90 MiB executables. */
function stageSources(sources: Map<string, string | undefined>, into: string): void {
  for (const [name, from] of sources) {
    // The spec declares both executables; an arch not being built needs only a name there.
    if (from === undefined) writeFileSync(join(into, name), "");
    else symlinkSync(resolve(from), join(into, name));
  }
}

async function rpmbuild(spec: string, stage: string, sourcedir: string, arch: ArchPlan, version: string, release: string, packager: string | undefined): Promise<string> {
  const topdir = join(stage, `top-${arch.rpmArch}`);
  mkdirSync(topdir, { recursive: true });
  await run(rpmbuildArgv({ spec, topdir, sourcedir, arch: arch.rpmArch, version, release, packager }), {
    what: `building the ${arch.rpmArch} RPM`,
    // rpmbuild writes scriptlets to %_tmppath (/var/tmp); keep its HOME from leaking ~/.rpmmacros in.
    env: { HOME: stage },
  });
  const path = join(topdir, "RPMS", arch.rpmArch, rpmFileName(version, release, arch.rpmArch));
  if (!existsSync(path)) {
    throw new NvwaError("package.rpmbuild", `rpmbuild succeeded but ${path} is not there`, { hint: "check rpm/nvwa.spec's Name, Version and Release" });
  }
  return path;
}

async function verifySignatures(rpms: string[], keyFile: string, stage: string): Promise<void> {
  const dbpath = join(stage, "rpmdb-verify");
  mkdirSync(dbpath, { recursive: true });
  await run(["rpmkeys", "--dbpath", dbpath, "--import", keyFile], { what: "importing the public key to check the signatures" });
  for (const rpm of rpms) {
    const { stdout } = await run(["rpmkeys", "--dbpath", dbpath, "--checksig", rpm], { what: `checking the signature of ${basename(rpm)}` });
    if (!checksigOk(stdout)) {
      throw new NvwaError("package.signature", `${basename(rpm)} does not verify against ${KEY_FILE}: ${stdout.trim()}`, {
        hint: "the signing key and the exported public key differ; check NVWA_GPG_KEY_ID",
      });
    }
  }
}

function defaultOut(explicit: string | false | undefined, outGiven: boolean, fallback: string): string | undefined {
  if (explicit === false) return undefined;
  if (explicit !== undefined) return resolve(explicit);
  return outGiven ? undefined : fallback;
}

export async function packageAll(opts: PackageOptions = {}): Promise<PackageResult> {
  const started = performance.now();
  const root = resolve(opts.root ?? ROOT);
  const dirs: Dirs = { root, rpmDir: resolve(opts.rpmDir ?? join(root, "rpm")), distDir: resolve(opts.distDir ?? join(root, "dist")) };
  const { distDir } = dirs;
  const out = resolve(opts.out ?? join(distDir, "repo"));
  const aptOut = defaultOut(opts.aptOut, opts.out !== undefined, join(distDir, "apt"));
  const tarballOut = defaultOut(opts.tarballOut, opts.out !== undefined, join(distDir, "tarballs"));
  const env = opts.env ?? process.env;
  const pkgVersion = opts.version ?? (await packageJsonVersion(root));
  const version = rpmVersionOf(pkgVersion);
  const release = checkRelease(opts.release ?? "1");
  const debVersion = aptOut === undefined ? undefined : debVersionOf(pkgVersion, release);
  const arches = (opts.arches ?? ARCHES.map((a) => a.bunArch)).map((a) => archPlan(a));
  const isoPath = opts.iso === undefined || opts.iso === false ? undefined : opts.iso === true ? join(distDir, `nvwa-${version}.iso`) : resolve(opts.iso);

  const tools = requireTools([
    "rpmbuild", "rpmsign", "rpmkeys", "gpg", "createrepo_c",
    ...(aptOut === undefined ? [] : ["dpkg-deb"]),
    ...(isoPath === undefined ? [] : ["xorriso"]),
  ]);
  const spec = await readSpec(dirs.rpmDir);

  const stage = mkdtempSync(join(tmpdir(), "nvwa-package-"));
  const fresh: string[] = [];
  let key: SigningKey | undefined;
  try {
    const sourcedir = join(stage, "SOURCES");
    mkdirSync(sourcedir);
    const sources = locateSources(dirs, arches);
    stageSources(sources, sourcedir);
    const epoch = epochs(env, sources);

    // The key first: a wrong NVWA_GPG_KEY_ID should fail before minutes of building.
    let t = performance.now();
    key = (await keyFromEnvironment(env)) ?? (await throwawayKey());
    const tKey = since(t);

    // 1. build: every package at once (zstd and xz use a core or two each)
    t = performance.now();
    log.start(`rpmbuild nvwa ${version}-${release}${debVersion === undefined ? "" : ` and dpkg-deb nvwa ${debVersion}`} for ${arches.map((a) => a.rpmArch).join(", ")}`);
    const packager = env.NVWA_PACKAGER || undefined;
    const [built, debs] = await Promise.all([
      Promise.all(arches.map((a) => rpmbuild(spec.path, stage, sourcedir, a, version, release, packager))),
      debVersion === undefined
        ? []
        : buildDebs(
            { spec: spec.facts, arches, rpmVersion: version, debVersion, maintainer: maintainerOf(env, spec.facts), fileOf: fileOfSource(sources), epoch: epoch.files },
            stage,
          ),
    ]);
    const tBuild = since(t);

    // 2. sign, 3. verify as yum will
    t = performance.now();
    log.info(key.throwaway ? `signing with a throw-away key ${key.fingerprint} (set NVWA_GPG_KEY_ID to use yours)` : `signing with key ${key.fingerprint}`);
    await run(rpmsignArgv({ files: built, keyId: key.fingerprint, gnupgHome: key.gnupgHome, gpg: tools.gpg ?? "gpg", passphraseFile: key.passphraseFile }), {
      what: "signing the RPMs",
      env: { GNUPGHOME: key.gnupgHome, HOME: stage },
    });
    const publicKey = await exportPublicKey(key);
    const keyFile = join(stage, KEY_FILE);
    writeFileSync(keyFile, publicKey);
    await verifySignatures(built, keyFile, stage);
    const tSign = since(t) + tKey;

    // 4. the repo, built beside the old one and swapped in at the end
    t = performance.now();
    const freshRepo = freshBeside(out);
    fresh.push(freshRepo);
    mkdirSync(join(freshRepo, "Packages"), { recursive: true });
    const rpms: BuiltRpm[] = [];
    for (const [i, path] of built.entries()) {
      const dest = join(freshRepo, "Packages", basename(path));
      renameSync(path, dest);
      const arch = arches[i];
      if (arch !== undefined) rpms.push({ arch: arch.rpmArch, path: join(out, "Packages", basename(path)), bytes: statSync(dest).size });
    }
    writeFileSync(join(freshRepo, KEY_FILE), publicKey, { mode: 0o644 });
    writeFileSync(join(freshRepo, REPO_FILE), repoFileText(), { mode: 0o644 });
    await run(["createrepo_c", "--quiet", "--no-database", freshRepo], { what: "writing the repo metadata" });
    await detachSign(key, join(freshRepo, "repodata", "repomd.xml"));
    const tRepo = since(t);

    // 5. the apt repo, signed by the same key
    t = performance.now();
    let apt: PackageResult["apt"];
    let freshApt: string | undefined;
    if (aptOut !== undefined && debVersion !== undefined) {
      freshApt = freshBeside(aptOut);
      fresh.push(freshApt);
      const pooled = await writeAptRepo({ dir: freshApt, debs, key, publicKey, date: epoch.release });
      apt = {
        out: aptOut,
        version: debVersion,
        debs: pooled.map((d) => ({ arch: d.arch, path: join(aptOut, d.path.slice(freshApt?.length ?? 0)), bytes: d.bytes })),
        keyFile: join(aptOut, APT_KEY_FILE),
      };
    }
    const tApt = since(t);

    // 6. the tarballs, their SHA256SUMS and its signature
    t = performance.now();
    let tarballs: PackageResult["tarballs"];
    let freshTar: string | undefined;
    if (tarballOut !== undefined) {
      freshTar = freshBeside(tarballOut);
      fresh.push(freshTar);
      const sums: { name: string; sha256: string }[] = [];
      for (const arch of arches) {
        const name = tarballName(pkgVersion, arch.bunArch);
        const sha256 = writeTarball({ payload: payloadOf(spec.facts, arch, version), fileOf: fileOfSource(sources), mtime: epoch.files, out: join(freshTar, name) });
        sums.push({ name, sha256 });
      }
      await detachSign(key, writeSums(freshTar, sums));
      tarballs = { out: tarballOut, files: sums.map((s) => join(tarballOut, s.name)), sums: join(tarballOut, SUMS_FILE) };
    }
    const tTar = since(t);

    swapInto(freshRepo, out);
    if (freshApt !== undefined && aptOut !== undefined) swapInto(freshApt, aptOut);
    if (freshTar !== undefined && tarballOut !== undefined) swapInto(freshTar, tarballOut);

    t = performance.now();
    if (isoPath !== undefined) {
      rmSync(isoPath, { force: true });
      await run(["xorriso", "-as", "mkisofs", "-quiet", "-rational-rock", "-joliet", "-volid", isoVolumeId(version), "-output", isoPath, out], {
        what: "writing the ISO image",
      });
    }
    const tIso = since(t);

    return {
      out,
      version,
      release,
      rpms,
      apt,
      tarballs,
      keyFingerprint: key.fingerprint,
      throwawayKey: key.throwaway,
      iso: isoPath,
      seconds: { rpmbuild: tBuild, sign: tSign, repo: tRepo, apt: tApt, tarball: tTar, iso: tIso, total: since(started) },
    };
  } finally {
    await key?.dispose();
    rmSync(stage, { recursive: true, force: true });
    for (const f of fresh) rmSync(f, { recursive: true, force: true });
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        out: { type: "string" },
        "apt-out": { type: "string" },
        "tarball-out": { type: "string" },
        "no-apt": { type: "boolean" },
        "no-tarballs": { type: "boolean" },
        arch: { type: "string", multiple: true },
        release: { type: "string" },
        iso: { type: "boolean" },
        "iso-path": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    throw new NvwaError("package.usage", e instanceof Error ? e.message : String(e), { exitCode: ExitCode.usage, hint: "bun build/package.ts --help" });
  }
  if (values.help === true) {
    process.stdout.write(
      [
        "usage: bun build/package.ts [--out DIR] [--apt-out DIR | --no-apt] [--tarball-out DIR | --no-tarballs]",
        "                            [--arch x64|arm64]... [--release N] [--iso] [--iso-path FILE]",
        "",
        "Builds and signs the nvwa RPMs into an ISO-like yum repo (default dist/repo), the .debs into a",
        "signed apt repo (default dist/apt) and one tarball per arch with SHA256SUMS (default dist/tarballs).",
        "With --out alone, only the yum repo is made; name --apt-out/--tarball-out to get the others there.",
        "Needs the executables from `bun run build`, and rpmbuild, rpmsign, gpg, createrepo_c, dpkg-deb",
        "(xorriso for --iso). Signs with NVWA_GPG_KEY_ID from GNUPGHOME (passphrase in NVWA_GPG_PASSPHRASE_FILE",
        "if it has one), or with a throw-away key generated for this build. NVWA_PACKAGER sets the Packager",
        "tag and the Maintainer field; SOURCE_DATE_EPOCH the .debs' and tarballs' mtimes.",
        "",
      ].join("\n"),
    );
    return ExitCode.ok;
  }
  const r = await packageAll({
    ...(values.out === undefined ? {} : { out: values.out }),
    ...(values["no-apt"] === true ? { aptOut: false } : values["apt-out"] === undefined ? {} : { aptOut: values["apt-out"] }),
    ...(values["no-tarballs"] === true ? { tarballOut: false } : values["tarball-out"] === undefined ? {} : { tarballOut: values["tarball-out"] }),
    ...(values.arch === undefined ? {} : { arches: values.arch.map((a) => archPlan(a).bunArch) }),
    ...(values.release === undefined ? {} : { release: values.release }),
    ...(values["iso-path"] !== undefined ? { iso: values["iso-path"] } : values.iso === true ? { iso: true } : {}),
  });
  for (const p of r.rpms) log.success(`${p.path} (${mib(p.bytes)})`);
  for (const d of r.apt?.debs ?? []) log.success(`${d.path} (${mib(d.bytes)})`);
  for (const f of r.tarballs?.files ?? []) log.success(`${f} (${mib(statSync(f).size)})`);
  if (r.iso !== undefined) log.success(`${r.iso} (${mib(statSync(r.iso).size)})`);
  log.info(`repo ${r.out}${r.apt === undefined ? "" : `, apt repo ${r.apt.out}`}, key ${r.keyFingerprint}${r.throwawayKey ? " (throw-away)" : ""}`);
  const s = r.seconds;
  log.info(
    `took ${s.total} s: build ${s.rpmbuild} s, sign+verify ${s.sign} s, repo ${s.repo} s` +
      `${r.apt === undefined ? "" : `, apt ${s.apt} s`}${r.tarballs === undefined ? "" : `, tarballs ${s.tarball} s`}${r.iso === undefined ? "" : `, iso ${s.iso} s`}`,
  );
  return ExitCode.ok;
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (e) {
    const err = isNvwaError(e) ? e : toNvwaError(e);
    process.stderr.write(`package: ${err.message} [${err.code}]\n${err.hint === undefined ? "" : `  hint: ${err.hint}\n`}`);
    if (process.env.NVWA_DEBUG === "1" && e instanceof Error) process.stderr.write(`${e.stack ?? ""}\n`);
    process.exitCode = err.exitCode;
  }
}
