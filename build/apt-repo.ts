/**
 * Lays out the signed apt repository around built .debs, in the standard dists/ layout apt
 * expects of any archive (the texts come from build/deb-plan.ts):
 *
 *   nvwa-archive-keyring.asc             the public key (armored), for Signed-By
 *   nvwa.sources                         the install guide's deb822 source, for the repo at /mnt
 *   pool/main/n/nvwa/nvwa_<v>_<arch>.deb
 *   dists/stable/Release                 digests of every index; Date from the build
 *   dists/stable/InRelease               Release, clear-signed (what apt fetches first)
 *   dists/stable/Release.gpg             Release's detached signature (older apt)
 *   dists/stable/main/binary-<arch>/Packages, Packages.gz
 *
 * Both signatures are checked against the exported key before the repo is handed over, as the
 * RPMs are: a key mismatch fails the build, not the install.
 *
 * writeAptRepo lays out a repo around .debs already built (packageAll calls it with the RPMs' key);
 * buildAptRepo makes the apt repo alone, from the executables in dist/, for the Debian guest:
 *
 *   buildAptRepo({ arches: ["x64"], out: "dist/guest-apt" }) → { out, keyFile, keyFingerprint, version, debs, seconds }
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { NvwaError } from "../src/errors.ts";
import { buildDebs, epochs, fileOfSource, freshBeside, locateSources, maintainerOf, packageJsonVersion, readSpec, since, swapInto, type BuiltDeb, type Dirs } from "./deb-inputs.ts";
import {
  APT_KEY_FILE,
  APT_SOURCES_FILE,
  APT_SUITE,
  aptSignArgv,
  packagesDir,
  packagesStanza,
  packagesText,
  poolPath,
  releaseText,
  sourcesText,
  debVersionOf,
  validSigOf,
  type DebArch,
  type ReleaseIndex,
} from "./deb-plan.ts";
import { ARCHES, archPlan, rpmVersionOf, type BunArch } from "./rpm-plan.ts";
import { exportPublicKey, keyFromEnvironment, throwawayKey, type SigningKey } from "./rpm-gpg.ts";
import { requireTools, run } from "./rpm-run.ts";

const ROOT = resolve(import.meta.dir, "..");

export interface AptRepoInput {
  /** An empty or missing directory: the repo is written here. */
  dir: string;
  /** Moved into pool/. */
  debs: { arch: DebArch; path: string }[];
  key: SigningKey;
  publicKey: string;
  /** Release's Date. */
  date: Date;
}

export interface PooledDeb {
  arch: DebArch;
  /** Where it is in `dir`. */
  path: string;
  bytes: number;
}

function digests(bytes: Uint8Array): { size: number; md5: string; sha256: string } {
  return {
    size: bytes.length,
    md5: createHash("md5").update(bytes).digest("hex"),
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

/** Both signatures of Release, checked with only the exported key known, as apt's Signed-By does. */
async function verifyRelease(suiteDir: string, keyFile: string, fingerprint: string): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), "nvwa-aptv-"));
  try {
    await run(["gpg", "--homedir", home, "--batch", "--import", keyFile], { what: "importing the public key to check the Release signatures" });
    const checks: [string, string[]][] = [
      ["InRelease", [join(suiteDir, "InRelease")]],
      ["Release.gpg", [join(suiteDir, "Release.gpg"), join(suiteDir, "Release")]],
    ];
    for (const [name, files] of checks) {
      const { stdout } = await run(["gpg", "--homedir", home, "--batch", "--status-fd", "1", "--verify", ...files], { what: `checking the signature of ${name}` });
      const by = validSigOf(stdout);
      if (by !== fingerprint) {
        throw new NvwaError("package.signature", `dists/${APT_SUITE}/${name} does not verify against ${APT_KEY_FILE}`, {
          hint: "the signing key and the exported public key differ; check NVWA_GPG_KEY_ID",
          details: { expected: fingerprint, got: by },
        });
      }
    }
  } finally {
    await run(["gpgconf", "--homedir", home, "--kill", "all"], { what: "stopping gpg-agent" }).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
  }
}

export async function writeAptRepo(i: AptRepoInput): Promise<PooledDeb[]> {
  const suiteDir = join(i.dir, "dists", APT_SUITE);
  const pooled: PooledDeb[] = [];
  const stanzas = new Map<DebArch, string[]>();
  for (const d of i.debs) {
    const rel = poolPath(basename(d.path));
    const dest = join(i.dir, rel);
    mkdirSync(join(dest, ".."), { recursive: true });
    renameSync(d.path, dest);
    // The control as the .deb carries it, not as we meant to write it.
    const { stdout: control } = await run(["dpkg-deb", "--field", dest], { what: `reading the control file of ${basename(dest)}` });
    const dg = digests(readFileSync(dest));
    stanzas.set(d.arch, [...(stanzas.get(d.arch) ?? []), packagesStanza(control, { filename: rel, ...dg })]);
    pooled.push({ arch: d.arch, path: dest, bytes: statSync(dest).size });
  }

  const indexes: ReleaseIndex[] = [];
  for (const [arch, list] of [...stanzas].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const dir = packagesDir(arch);
    mkdirSync(join(suiteDir, dir), { recursive: true });
    const plain = new TextEncoder().encode(packagesText(list));
    const gz = Bun.gzipSync(plain, { level: 9 });
    writeFileSync(join(suiteDir, dir, "Packages"), plain);
    writeFileSync(join(suiteDir, dir, "Packages.gz"), gz);
    indexes.push({ path: `${dir}/Packages`, ...digests(plain) }, { path: `${dir}/Packages.gz`, ...digests(gz) });
  }
  const release = join(suiteDir, "Release");
  writeFileSync(release, releaseText({ date: i.date, architectures: [...stanzas.keys()], indexes }));
  await run(aptSignArgv(i.key, "clearsign", release, join(suiteDir, "InRelease")), { what: "signing InRelease" });
  await run(aptSignArgv(i.key, "detach", release, join(suiteDir, "Release.gpg")), { what: "signing Release.gpg" });

  const keyFile = join(i.dir, APT_KEY_FILE);
  writeFileSync(keyFile, i.publicKey);
  writeFileSync(join(i.dir, APT_SOURCES_FILE), sourcesText());
  await verifyRelease(suiteDir, keyFile, i.key.fingerprint);
  return pooled;
}

export interface AptRepoOptions {
  /** The checkout (default: this one). */
  root?: string;
  /** Spec and its plain-file sources (default <root>/rpm). */
  rpmDir?: string;
  /** Where the executables are (default <root>/dist). */
  distDir?: string;
  /** The repo to produce (default <distDir>/apt). Replaced as a whole. */
  out?: string;
  arches?: BunArch[];
  /** Debian revision (default "1"). */
  release?: string;
  /** package.json-style version (default: package.json's). */
  version?: string;
  /** NVWA_GPG_KEY_ID (+ GNUPGHOME, NVWA_GPG_PASSPHRASE_FILE), NVWA_PACKAGER, SOURCE_DATE_EPOCH. */
  env?: Record<string, string | undefined>;
}

export interface AptRepoResult {
  out: string;
  /** The armored public key in the repo, for Signed-By. */
  keyFile: string;
  keyFingerprint: string;
  /** The Debian version, e.g. 0.1.0-1. */
  version: string;
  debs: BuiltDeb[];
  /** Wall-clock seconds of the whole build. */
  seconds: number;
}

/** The apt repo alone, for the arches given: no rpmbuild; the key as packageAll chooses it. */
export async function buildAptRepo(opts: AptRepoOptions = {}): Promise<AptRepoResult> {
  const started = performance.now();
  const root = resolve(opts.root ?? ROOT);
  const dirs: Dirs = { root, rpmDir: resolve(opts.rpmDir ?? join(root, "rpm")), distDir: resolve(opts.distDir ?? join(root, "dist")) };
  const out = resolve(opts.out ?? join(dirs.distDir, "apt"));
  const env = opts.env ?? process.env;
  const pkgVersion = opts.version ?? (await packageJsonVersion(root));
  const rpmVersion = rpmVersionOf(pkgVersion);
  const debVersion = debVersionOf(pkgVersion, opts.release ?? "1");
  const arches = (opts.arches ?? ARCHES.map((a) => a.bunArch)).map((a) => archPlan(a));
  requireTools(["dpkg-deb", "gpg"]);
  const spec = await readSpec(dirs.rpmDir);

  const stage = mkdtempSync(join(tmpdir(), "nvwa-apt-"));
  let fresh: string | undefined;
  let key: SigningKey | undefined;
  try {
    const sources = locateSources(dirs, arches);
    const epoch = epochs(env, sources);
    key = (await keyFromEnvironment(env)) ?? (await throwawayKey());
    const debs = await buildDebs(
      { spec: spec.facts, arches, rpmVersion, debVersion, maintainer: maintainerOf(env, spec.facts), fileOf: fileOfSource(sources), epoch: epoch.files },
      stage,
    );
    const publicKey = await exportPublicKey(key);
    const dir = freshBeside(out);
    fresh = dir;
    const pooled = await writeAptRepo({ dir, debs, key, publicKey, date: epoch.release });
    swapInto(dir, out);
    fresh = undefined;
    return {
      out,
      keyFile: join(out, APT_KEY_FILE),
      keyFingerprint: key.fingerprint,
      version: debVersion,
      debs: pooled.map((d) => ({ arch: d.arch, path: join(out, d.path.slice(dir.length)), bytes: d.bytes })),
      seconds: since(started),
    };
  } finally {
    await key?.dispose();
    rmSync(stage, { recursive: true, force: true });
    if (fresh !== undefined) rmSync(fresh, { recursive: true, force: true });
  }
}
