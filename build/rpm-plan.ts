/**
 * Pure decisions for `bun run package`: names, versions, the argv of every tool, the repo
 * layout and the text of generated files. Nothing here touches the disk or runs anything, so
 * all of it is checked without root (test/host/rpm-plan.test.ts).
 */
import { ExitCode, NvwaError } from "../src/errors.ts";
import { TARGETS } from "./compile.ts";

export type BunArch = (typeof TARGETS)[number]["arch"];
export type RpmArch = "x86_64" | "aarch64";

export interface ArchPlan {
  bunArch: BunArch;
  rpmArch: RpmArch;
  /** dist/<binary>: the executable build/compile.ts made for this arch. */
  binary: string;
  /** e_machine the executable must carry (EM_X86_64, EM_AARCH64). */
  elfMachine: number;
}

const RPM_ARCH: Record<BunArch, RpmArch> = { x64: "x86_64", arm64: "aarch64" };

export const ARCHES: readonly ArchPlan[] = TARGETS.map((t) => ({
  bunArch: t.arch,
  rpmArch: RPM_ARCH[t.arch],
  binary: t.out,
  elfMachine: t.elfMachine,
}));

export function archPlan(name: string): ArchPlan {
  const a = ARCHES.find((x) => x.bunArch === name || x.rpmArch === name);
  if (a === undefined) {
    throw new NvwaError("package.bad-arch", `unknown architecture "${name}"`, {
      exitCode: ExitCode.usage,
      hint: `use one of: ${ARCHES.map((x) => `${x.bunArch} (${x.rpmArch})`).join(", ")}`,
    });
  }
  return a;
}

/** Characters rpm accepts in Version and Release; '-' separates them and is never allowed. */
const RPM_VERSION_CHARS = /^[A-Za-z0-9._+~^]+$/;

/**
 * package.json speaks semver, rpm does not: a pre-release "1.2.0-rc.1" must sort before
 * "1.2.0", which in rpm is spelled with a tilde, "1.2.0~rc.1".
 */
export function rpmVersionOf(semver: string): string {
  const dash = semver.indexOf("-");
  const v = dash < 0 ? semver : `${semver.slice(0, dash)}~${semver.slice(dash + 1).replaceAll("-", "_")}`;
  if (!RPM_VERSION_CHARS.test(v) || !/^[0-9]/.test(v)) {
    throw new NvwaError("package.bad-version", `package.json version "${semver}" cannot be an rpm Version`, {
      exitCode: ExitCode.usage,
      hint: "use a semver version such as 1.2.3 or 1.2.3-rc.1 in package.json",
    });
  }
  return v;
}

export function checkRelease(release: string): string {
  if (!RPM_VERSION_CHARS.test(release)) {
    throw new NvwaError("package.bad-release", `release "${release}" is not a valid rpm Release`, {
      exitCode: ExitCode.usage,
      hint: "use a number such as 1 or 2 (letters, digits, '.', '_', '+', '~' are allowed; '-' is not)",
    });
  }
  return release;
}

export function rpmFileName(version: string, release: string, arch: RpmArch): string {
  return `nvwa-${version}-${release}.${arch}.rpm`;
}

/** ELF header facts of an executable; `head` is at least its first 20 bytes. */
export function elfMachineOf(head: Uint8Array): number | undefined {
  if (head.length < 20 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return undefined;
  // EI_DATA 1 = little endian; both our targets are.
  const lo = head[18] ?? 0;
  const hi = head[19] ?? 0;
  return head[5] === 1 ? lo | (hi << 8) : (lo << 8) | hi;
}

/** The files rpm/nvwa.spec lists as Source0..N, and where each comes from (repo-relative). */
export function specSources(): { name: string; from: string }[] {
  return [
    ...ARCHES.map((a) => ({ name: a.binary, from: `dist/${a.binary}` })),
    { name: "nvwa.service", from: "rpm/nvwa.service" },
    { name: "nvwa-restore.yaml", from: "rpm/nvwa-restore.yaml" },
    { name: "nvwa-server.yaml", from: "rpm/nvwa-server.yaml" },
    { name: "nvwa.bash-completion", from: "rpm/nvwa.bash-completion" },
    { name: "LICENSE", from: "rpm/LICENSE" },
    { name: "README.md", from: "README.md" },
  ];
}

export interface RpmbuildInput {
  spec: string;
  topdir: string;
  sourcedir: string;
  arch: RpmArch;
  version: string;
  release: string;
  packager?: string | undefined;
}

export function rpmbuildArgv(i: RpmbuildInput): string[] {
  return [
    "rpmbuild", "-bb", "--quiet",
    "--target", `${i.arch}-linux`,
    "--define", `_topdir ${i.topdir}`,
    "--define", `_sourcedir ${i.sourcedir}`,
    // rpmbuild checks BuildRequires against the rpm database, which on a Debian build host is
    // empty; the spec has none, but be explicit that nothing is resolved here.
    "--nodeps",
    "--define", `nvwa_version ${i.version}`,
    "--define", `nvwa_release ${i.release}`,
    ...(i.packager === undefined ? [] : ["--define", `packager ${i.packager}`]),
    i.spec,
  ];
}

export interface SignInput {
  files: string[];
  keyId: string;
  gnupgHome: string;
  gpg: string;
  /** A file holding the key's passphrase, for keys that have one (CI secrets). */
  passphraseFile?: string | undefined;
}

export function rpmsignArgv(i: SignInput): string[] {
  return [
    "rpmsign", "--addsign",
    "--define", `_gpg_name ${i.keyId}`,
    "--define", `_gpg_path ${i.gnupgHome}`,
    "--define", `__gpg ${i.gpg}`,
    ...(i.passphraseFile === undefined
      ? []
      : ["--define", `_gpg_sign_cmd_extra_args --pinentry-mode loopback --passphrase-file ${i.passphraseFile}`]),
    ...i.files,
  ];
}

export const THROWAWAY_UID = "nvwa package signing (throw-away build key) <nvwa-build@invalid>";

export function gpgKeygenArgv(gnupgHome: string, uid = THROWAWAY_UID): string[] {
  // No passphrase: the key lives only as long as the build's temporary GNUPGHOME. No expiry
  // either: the public half keeps verifying the packages long after the secret half is gone.
  return ["gpg", "--homedir", gnupgHome, "--batch", "--passphrase", "", "--quick-gen-key", uid, "rsa3072", "sign", "never"];
}

/** Fingerprints of the keys in `gpg --with-colons --list-(secret-)keys` output, primary keys only. */
export function fingerprintsOf(colons: string): string[] {
  const out: string[] = [];
  let wantFpr = false;
  for (const line of colons.split("\n")) {
    const f = line.split(":");
    if (f[0] === "sec" || f[0] === "pub") wantFpr = true;
    else if (f[0] === "ssb" || f[0] === "sub") wantFpr = false;
    else if (f[0] === "fpr" && wantFpr) {
      if (f[9] !== undefined && f[9] !== "") out.push(f[9]);
      wantFpr = false;
    }
  }
  return out;
}

export const KEY_FILE = "RPM-GPG-KEY-nvwa";
export const REPO_FILE = "nvwa.repo";

/**
 * The .repo file of the install guide, for a repo mounted at `baseurl` (the ISO at /mnt, or a
 * directory). gpgcheck=1 always: an unsigned or altered package must be refused.
 */
export function repoFileText(baseurl = "file:///mnt", id = "nvwa-local"): string {
  const base = baseurl.replace(/\/+$/, "");
  return [
    `[${id}]`,
    "name=nvwa local repository",
    `baseurl=${base}`,
    "enabled=1",
    "gpgcheck=1",
    `gpgkey=${base}/${KEY_FILE}`,
    "",
  ].join("\n");
}

/** ISO 9660 volume ids are at most 32 characters of A-Z, 0-9 and '_'. */
export function isoVolumeId(version: string): string {
  return `NVWA_${version.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`.slice(0, 32);
}

/** What `rpmkeys --checksig` must say of a package signed by a key the database trusts. */
export function checksigOk(line: string): boolean {
  // rpm 4.18: "<file>: digests signatures OK"; older rpms say "rsa sha1 (md5) pgp md5 OK".
  return /:\s.*signatures OK$/.test(line.trim()) || /:\s.*pgp.* OK$/.test(line.trim());
}
