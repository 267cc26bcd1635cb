/**
 * `bun run package`: the RPMs users install and OS pipelines consume, from the executables
 * build/compile.ts already made (it cross-compiles, so one x86_64 machine builds both arches).
 *
 *   1. rpmbuild rpm/nvwa.spec once per arch (in parallel; no strip, no debuginfo)
 *   2. rpmsign with the distributor's key (NVWA_GPG_KEY_ID) or a throw-away key made now
 *   3. check every signature with rpmkeys against the exported public key, as yum will
 *   4. lay out the ISO-like repo and run createrepo_c; sign repomd.xml too
 *   5. swap the new repo into place (a failed run leaves the previous one untouched)
 *
 *   dist/repo/
 *     RPM-GPG-KEY-nvwa          the public key the guide's `rpm --import` takes
 *     nvwa.repo                 the guide's local.repo, for the repo mounted at /mnt
 *     Packages/nvwa-<v>-<r>.<arch>.rpm
 *     repodata/                 createrepo_c metadata; repomd.xml.asc its signature
 *
 * Options: --out DIR, --arch x64|arm64 (repeatable), --release N, --iso [PATH].
 * Environment: NVWA_GPG_KEY_ID (+ GNUPGHOME, NVWA_GPG_PASSPHRASE_FILE), NVWA_PACKAGER.
 */
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
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
  elfMachineOf,
  isoVolumeId,
  repoFileText,
  rpmFileName,
  rpmVersionOf,
  rpmbuildArgv,
  rpmsignArgv,
  specSources,
  type ArchPlan,
  type BunArch,
  type RpmArch,
} from "./rpm-plan.ts";
import { detachSign, exportPublicKey, keyFromEnvironment, throwawayKey, type SigningKey } from "./rpm-gpg.ts";
import { requireTools, run } from "./rpm-run.ts";

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
  arches?: BunArch[];
  /** rpm Release (default "1"). */
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
  keyFingerprint: string;
  throwawayKey: boolean;
  iso: string | undefined;
  /** Wall-clock seconds of each step. */
  seconds: { rpmbuild: number; sign: number; repo: number; iso: number; total: number };
}

function readHead(path: string, n: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** Each executable exists and is for its arch: packaging an x64 binary as aarch64 would install fine and never run. */
function checkExecutable(path: string, arch: ArchPlan): void {
  if (!existsSync(path)) {
    throw new NvwaError("package.missing-executable", `${path} does not exist`, { hint: "build the executables first: bun run build" });
  }
  const machine = elfMachineOf(readHead(path, 64));
  if (machine !== arch.elfMachine) {
    throw new NvwaError("package.wrong-executable", `${path} is not an ${arch.rpmArch} ELF executable (e_machine ${machine ?? "none"})`, {
      hint: "rebuild it: bun run build",
      details: { path, machine, expected: arch.elfMachine },
    });
  }
}

/** rpmbuild reads Source files from one directory; link them there instead of copying 90 MiB executables. */
function stageSources(root: string, rpmDir: string, distDir: string, arches: ArchPlan[], into: string): void {
  for (const s of specSources()) {
    const archOfBinary = ARCHES.find((a) => a.binary === s.name);
    let from: string;
    if (archOfBinary !== undefined) {
      from = join(distDir, s.name);
      if (arches.includes(archOfBinary)) checkExecutable(from, archOfBinary);
      // The spec declares both executables; an arch not being built needs only a name there.
      if (!existsSync(from)) {
        writeFileSync(join(into, s.name), "");
        continue;
      }
    } else {
      from = s.from.startsWith("rpm/") ? join(rpmDir, s.from.slice("rpm/".length)) : join(root, s.from);
      if (!existsSync(from)) {
        throw new NvwaError("package.missing-source", `${from} is missing; rpm/nvwa.spec needs it`, {
          hint: s.name === "nvwa.service" ? "rpm/nvwa.service is the daemon's systemd unit; restore it from git" : `restore ${s.from} from git`,
        });
      }
    }
    symlinkSync(resolve(from), join(into, s.name));
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

function since(t: number): number {
  return Math.round((performance.now() - t) / 100) / 10;
}

/** Replaces `out` with the finished `fresh`: a repo is never seen half-written, and a failed run never got here. */
function swapInto(fresh: string, out: string): void {
  const old = `${out}.old-${process.pid}`;
  if (existsSync(out)) renameSync(out, old);
  renameSync(fresh, out);
  rmSync(old, { recursive: true, force: true });
}

export async function packageAll(opts: PackageOptions = {}): Promise<PackageResult> {
  const started = performance.now();
  const root = resolve(opts.root ?? ROOT);
  const rpmDir = resolve(opts.rpmDir ?? join(root, "rpm"));
  const distDir = resolve(opts.distDir ?? join(root, "dist"));
  const out = resolve(opts.out ?? join(distDir, "repo"));
  const env = opts.env ?? process.env;
  const pkgVersion = opts.version ?? ((await Bun.file(join(root, "package.json")).json()) as { version: string }).version;
  const version = rpmVersionOf(pkgVersion);
  const release = checkRelease(opts.release ?? "1");
  const arches = (opts.arches ?? ARCHES.map((a) => a.bunArch)).map((a) => archPlan(a));
  const isoPath = opts.iso === undefined || opts.iso === false ? undefined : opts.iso === true ? join(distDir, `nvwa-${version}.iso`) : resolve(opts.iso);

  const tools = requireTools(["rpmbuild", "rpmsign", "rpmkeys", "gpg", "createrepo_c", ...(isoPath === undefined ? [] : ["xorriso"])]);
  const spec = join(rpmDir, "nvwa.spec");
  if (!existsSync(spec)) throw new NvwaError("package.missing-source", `${spec} is missing`, { hint: "restore rpm/ from git" });

  mkdirSync(dirname(out), { recursive: true });
  const stage = mkdtempSync(join(tmpdir(), "nvwa-package-"));
  const fresh = `${out}.new-${process.pid}`;
  let key: SigningKey | undefined;
  try {
    const sourcedir = join(stage, "SOURCES");
    mkdirSync(sourcedir);
    stageSources(root, rpmDir, distDir, arches, sourcedir);

    // The key first: a wrong NVWA_GPG_KEY_ID should fail before minutes of building.
    let t = performance.now();
    key = (await keyFromEnvironment(env)) ?? (await throwawayKey());
    const tKey = since(t);

    // 1. build (both arches at once: zstd compresses on one core each)
    t = performance.now();
    log.start(`rpmbuild nvwa ${version}-${release} for ${arches.map((a) => a.rpmArch).join(", ")}`);
    const packager = env.NVWA_PACKAGER || undefined;
    const built = await Promise.all(arches.map((a) => rpmbuild(spec, stage, sourcedir, a, version, release, packager)));
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
    rmSync(fresh, { recursive: true, force: true });
    mkdirSync(join(fresh, "Packages"), { recursive: true });
    const rpms: BuiltRpm[] = [];
    for (const [i, path] of built.entries()) {
      const dest = join(fresh, "Packages", basename(path));
      renameSync(path, dest);
      const arch = arches[i];
      if (arch !== undefined) rpms.push({ arch: arch.rpmArch, path: join(out, "Packages", basename(path)), bytes: statSync(dest).size });
    }
    writeFileSync(join(fresh, KEY_FILE), publicKey, { mode: 0o644 });
    writeFileSync(join(fresh, REPO_FILE), repoFileText(), { mode: 0o644 });
    await run(["createrepo_c", "--quiet", "--no-database", fresh], { what: "writing the repo metadata" });
    await detachSign(key, join(fresh, "repodata", "repomd.xml"));
    const tRepo = since(t);

    swapInto(fresh, out);

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
      keyFingerprint: key.fingerprint,
      throwawayKey: key.throwaway,
      iso: isoPath,
      seconds: { rpmbuild: tBuild, sign: tSign, repo: tRepo, iso: tIso, total: since(started) },
    };
  } finally {
    await key?.dispose();
    rmSync(stage, { recursive: true, force: true });
    rmSync(fresh, { recursive: true, force: true });
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
        "usage: bun build/package.ts [--out DIR] [--arch x64|arm64]... [--release N] [--iso] [--iso-path FILE]",
        "",
        "Builds, signs and publishes the nvwa RPMs into an ISO-like yum repo (default dist/repo).",
        "Needs the executables from `bun run build`, and rpmbuild, rpmsign, gpg, createrepo_c (xorriso for --iso).",
        "Signs with NVWA_GPG_KEY_ID from GNUPGHOME (passphrase in NVWA_GPG_PASSPHRASE_FILE if it has one),",
        "or with a throw-away key generated for this build. NVWA_PACKAGER sets the Packager tag.",
        "",
      ].join("\n"),
    );
    return ExitCode.ok;
  }
  const r = await packageAll({
    ...(values.out === undefined ? {} : { out: values.out }),
    ...(values.arch === undefined ? {} : { arches: values.arch.map((a) => archPlan(a).bunArch) }),
    ...(values.release === undefined ? {} : { release: values.release }),
    ...(values["iso-path"] !== undefined ? { iso: values["iso-path"] } : values.iso === true ? { iso: true } : {}),
  });
  for (const p of r.rpms) log.success(`${p.path} (${mib(p.bytes)})`);
  if (r.iso !== undefined) log.success(`${r.iso} (${mib(statSync(r.iso).size)})`);
  log.info(`repo ${r.out}, key ${r.keyFingerprint}${r.throwawayKey ? " (throw-away)" : ""}`);
  const s = r.seconds;
  log.info(`took ${s.total} s: rpmbuild ${s.rpmbuild} s, sign+verify ${s.sign} s, repo ${s.repo} s${r.iso === undefined ? "" : `, iso ${s.iso} s`}`);
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
