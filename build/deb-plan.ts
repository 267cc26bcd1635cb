/**
 * Pure decisions for the Debian package, the apt repository and the tarballs: what goes in them
 * (read from rpm/nvwa.spec, so the .deb, the tarball and the RPM cannot drift apart), the control
 * file, the maintainer scripts, the Packages and Release texts, names and versions. Nothing here
 * touches the disk or runs anything (test/unit/deb-plan.test.ts).
 *
 * The payload comes from the spec's %files (paths, modes, owners, %dir, %config) and %install
 * (which Source each file is, per %ifarch). Only the documentation moves: rpm's
 * /usr/share/doc/nvwa-<v>/README.md and /usr/share/licenses/nvwa-<v>/LICENSE are Debian's
 * /usr/share/doc/nvwa/README.md and /usr/share/doc/nvwa/copyright.
 *
 * Unit handling, the spec's scriptlets in Debian's terms (debhelper's order, plain systemctl):
 *
 *   rpm                                   deb
 *   %post, first install: preset          postinst configure, no previous version: preset
 *   (systemd's rpm file trigger reloads)  postinst configure: daemon-reload if systemd runs
 *   %preun erase: disable [--now]         prerm remove: stop if systemd runs (the executable goes)
 *                                         postrm purge: disable (the enablement is configuration,
 *                                         kept by remove like the conffiles, as debhelper does)
 *   %postun: daemon-reload if running     postrm remove|purge: daemon-reload if systemd runs
 *   never restart on upgrade              never start, restart or stop on install or upgrade
 *
 * Debian has no file trigger that reloads systemd, hence the postinst reload. Keeping the
 * enablement until purge means `apt-get remove nvwa; apt-get install nvwa` leaves nvwa.service
 * enabled as it was (dpkg passes the kept config's version to postinst, so no preset runs then).
 */
import { ExitCode, NvwaError } from "../src/errors.ts";
import type { ArchPlan, BunArch } from "./rpm-plan.ts";

export type DebArch = "amd64" | "arm64";

const DEB_ARCH: Record<BunArch, DebArch> = { x64: "amd64", arm64: "arm64" };

export function debArchOf(arch: BunArch): DebArch {
  return DEB_ARCH[arch];
}

// --- versions and names ----------------------------------------------------------------------

const DEB_UPSTREAM = /^[0-9][A-Za-z0-9.+~]*$/;
const DEB_REVISION = /^[A-Za-z0-9.+~]+$/;

/**
 * package.json's semver as a Debian version "<upstream>-<revision>": a pre-release sorts before
 * its release with a tilde, as in rpm ("1.2.0-rc.1" → "1.2.0~rc.1-1"). Further dashes become
 * dots: dpkg splits the revision off at the last dash, and '_' (rpm's choice) is not allowed.
 */
export function debVersionOf(semver: string, release: string): string {
  const dash = semver.indexOf("-");
  const upstream = dash < 0 ? semver : `${semver.slice(0, dash)}~${semver.slice(dash + 1).replaceAll("-", ".")}`;
  if (!DEB_UPSTREAM.test(upstream)) {
    throw new NvwaError("package.bad-version", `package.json version "${semver}" cannot be a Debian version`, {
      exitCode: ExitCode.usage,
      hint: "use a semver version such as 1.2.3 or 1.2.3-rc.1 in package.json",
    });
  }
  if (!DEB_REVISION.test(release)) {
    throw new NvwaError("package.bad-release", `release "${release}" is not a valid Debian revision`, {
      exitCode: ExitCode.usage,
      hint: "use a number such as 1 or 2 (letters, digits, '.', '+', '~' are allowed)",
    });
  }
  return `${upstream}-${release}`;
}

export function debFileName(debVersion: string, arch: DebArch): string {
  return `nvwa_${debVersion}_${arch}.deb`;
}

// --- the spec, read ----------------------------------------------------------------------------

export interface SpecFile {
  /** Absolute, macros expanded. */
  path: string;
  dir: boolean;
  mode: number;
  owner: string;
  group: string;
  /** %config (rpm) / conffile (dpkg). */
  config: boolean;
}

export interface SpecInstall {
  /** The %ifarch it is under, or undefined for every arch. */
  arch: string | undefined;
  /** The Source name (rpm/nvwa.spec's SourceN value). */
  source: string;
  path: string;
}

export interface SpecFacts {
  name: string;
  summary: string;
  url: string;
  requires: string[];
  /** %description, line by line. */
  description: string[];
  /** The newest %changelog entry's author, "Name <mail>". */
  changelogAuthor: string | undefined;
  sources: string[];
  installs: SpecInstall[];
  files: SpecFile[];
  docs: { kind: "license" | "doc"; name: string }[];
}

/** The macros %files and %install use; anything else is refused rather than guessed. */
const MACROS: Record<string, string> = {
  _prefix: "/usr",
  _bindir: "/usr/bin",
  _sbindir: "/usr/sbin",
  _sysconfdir: "/etc",
  _datadir: "/usr/share",
  _localstatedir: "/var",
  _unitdir: "/usr/lib/systemd/system",
};

function specError(what: string): NvwaError {
  return new NvwaError("package.spec-unsupported", `rpm/nvwa.spec: ${what}`, {
    hint: "the .deb and the tarball are made from the spec's %files and %install: keep them in the simple forms build/deb-plan.ts reads",
  });
}

function expand(path: string): string {
  const out = path.replace(/%\{(\w+)\}/g, (m, name: string) => MACROS[name] ?? m);
  if (out.includes("%") || !out.startsWith("/")) throw specError(`cannot read the path ${path}`);
  return out;
}

/** Lines of a section, from its header to the next section header. */
function section(lines: string[], header: RegExp): string[] {
  const start = lines.findIndex((l) => header.test(l));
  if (start < 0) return [];
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (/^%(prep|build|install|check|clean|files|changelog|description|package|pre|post|preun|postun|pretrans|posttrans)\b/.test(l)) break;
    out.push(l);
  }
  return out;
}

function tag(lines: string[], name: string): string {
  const re = new RegExp(`^${name}:\\s*(.*?)\\s*$`);
  for (const l of lines) {
    const m = re.exec(l);
    if (m?.[1] !== undefined) return m[1];
  }
  throw specError(`no ${name}: tag`);
}

function parseFilesLine(line: string): SpecFile | { kind: "license" | "doc"; names: string[] } | undefined {
  const words = line.trim().split(/\s+/).filter((w) => w !== "");
  if (words.length === 0 || words[0]?.startsWith("#")) return undefined;
  if (words[0] === "%license" || words[0] === "%doc") return { kind: words[0] === "%license" ? "license" : "doc", names: words.slice(1) };
  let dir = false;
  let config = false;
  let attr: { mode: number; owner: string; group: string } | undefined;
  let path: string | undefined;
  for (const w of words) {
    const a = /^%attr\((\d+),(\w+),(\w+)\)$/.exec(w);
    if (w === "%dir") dir = true;
    else if (/^%config(\(noreplace\))?$/.test(w)) config = true;
    else if (a !== null) attr = { mode: Number.parseInt(a[1] ?? "", 8), owner: a[2] ?? "", group: a[3] ?? "" };
    else if (path === undefined && !w.startsWith("%")) path = w;
    else if (path === undefined && w.startsWith("%{")) path = w;
    else throw specError(`cannot read the %files line "${line.trim()}"`);
  }
  if (path === undefined) throw specError(`no path in the %files line "${line.trim()}"`);
  // Every mode is spelled out: the .deb and the tarball must not depend on a build host's umask.
  if (attr === undefined) throw specError(`the %files line "${line.trim()}" has no %attr(mode,owner,group)`);
  return { path: expand(path), dir, config, ...attr };
}

export function parseSpec(text: string): SpecFacts {
  const lines = text.split("\n");
  const header = lines.slice(0, Math.max(0, lines.findIndex((l) => /^%description\b/.test(l))));
  const sources: string[] = [];
  for (const l of header) {
    const m = /^Source(\d+):\s*(\S+)\s*$/.exec(l);
    if (m !== null) sources[Number(m[1])] = m[2] ?? "";
  }
  const requires = header.flatMap((l) => /^Requires:\s*(.+)$/.exec(l)?.[1]?.split(/\s*,\s*/) ?? []).map((r) => r.trim()).filter((r) => r !== "");

  const description = section(lines, /^%description\s*$/);
  while (description.length > 0 && description.at(-1)?.trim() === "") description.pop();

  const installs: SpecInstall[] = [];
  const archStack: (string | undefined)[] = [];
  for (const l of section(lines, /^%install\b/)) {
    const t = l.trim();
    const ifarch = /^%ifarch\s+(\S+)$/.exec(t);
    if (ifarch !== null) archStack.push(ifarch[1]);
    else if (t === "%endif") archStack.pop();
    else if (t.startsWith("%if") || t === "%else") throw specError(`%install uses "${t}"; only %ifarch … %endif is read`);
    const m = /^install\s.*-m\s+\d+\s+%\{SOURCE(\d+)\}\s+%\{buildroot\}(\S+)$/.exec(t);
    if (m !== null) {
      const source = sources[Number(m[1])];
      if (source === undefined) throw specError(`%install names SOURCE${m[1]}, which is not declared`);
      installs.push({ arch: archStack.at(-1), source, path: expand(m[2] ?? "") });
    }
  }

  const files: SpecFile[] = [];
  const docs: { kind: "license" | "doc"; name: string }[] = [];
  for (const l of section(lines, /^%files\s*$/)) {
    const f = parseFilesLine(l);
    if (f === undefined) continue;
    if ("kind" in f) for (const name of f.names) docs.push({ kind: f.kind, name });
    else files.push(f);
  }
  if (files.length === 0) throw specError("%files lists nothing");

  const changelog = section(lines, /^%changelog\b/);
  const author = changelog.map((l) => /^\*\s+\w{3}\s+\w{3}\s+\d{1,2}\s+\d{4}\s+(.+?<[^>]+>)/.exec(l)?.[1]).find((a) => a !== undefined);

  return {
    name: tag(header, "Name"),
    summary: tag(header, "Summary"),
    url: tag(header, "URL"),
    requires,
    description,
    changelogAuthor: author,
    sources,
    installs,
    files,
    docs,
  };
}

// --- the payload ---------------------------------------------------------------------------------

export interface PayloadEntry {
  /** Absolute path as installed on Debian (and in the tarball). */
  path: string;
  type: "file" | "dir";
  mode: number;
  /** A conffile: dpkg keeps the operator's edits (rpm's %config(noreplace)). */
  conffile: boolean;
  /** For a file: the Source it is (a name of rpm-plan.ts's specSources()). */
  source: string | undefined;
  /** What the RPM of the same version calls this entry (differs only for the documentation). */
  rpmPaths: string[];
}

export const DEB_DOC_DIR = "/usr/share/doc/nvwa";

/** What the .deb and the tarball hold for one arch: the spec's %files, in path order. */
export function payloadOf(spec: SpecFacts, arch: ArchPlan, rpmVersion: string): PayloadEntry[] {
  const out: PayloadEntry[] = [];
  for (const f of spec.files) {
    if (f.owner !== "root" || f.group !== "root") throw specError(`${f.path} is owned by ${f.owner}:${f.group}; the .deb is built with every file root:root`);
    if (f.dir) {
      out.push({ path: f.path, type: "dir", mode: f.mode, conffile: false, source: undefined, rpmPaths: [f.path] });
      continue;
    }
    const from = spec.installs.filter((i) => i.path === f.path && (i.arch === undefined || i.arch === arch.rpmArch));
    if (from.length !== 1 || from[0] === undefined) {
      throw specError(`%install puts ${from.length === 0 ? "no" : from.length} Source file${from.length === 1 ? "" : "s"} at ${f.path} for ${arch.rpmArch}`);
    }
    out.push({ path: f.path, type: "file", mode: f.mode, conffile: f.config, source: from[0].source, rpmPaths: [f.path] });
  }
  if (spec.docs.length > 0) {
    const dirs = new Set<string>();
    for (const d of spec.docs) {
      if (!spec.sources.includes(d.name)) throw specError(`%${d.kind} ${d.name} is not a Source`);
      const rpmDir = `${d.kind === "license" ? "/usr/share/licenses" : "/usr/share/doc"}/${spec.name}-${rpmVersion}`;
      dirs.add(rpmDir);
      // Debian policy: the license is the package's copyright file.
      const path = d.kind === "license" ? `${DEB_DOC_DIR}/copyright` : `${DEB_DOC_DIR}/${d.name}`;
      out.push({ path, type: "file", mode: 0o644, conffile: false, source: d.name, rpmPaths: [`${rpmDir}/${d.name}`] });
    }
    out.push({ path: DEB_DOC_DIR, type: "dir", mode: 0o755, conffile: false, source: undefined, rpmPaths: [...dirs].sort() });
  }
  const seen = new Set<string>();
  for (const e of out) {
    if (seen.has(e.path)) throw specError(`${e.path} is listed twice`);
    seen.add(e.path);
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The directories above the payload that it does not own ("/usr", "/usr/lib/systemd", ...):
 * dpkg-deb puts them in the archive, 0755 root:root, as every package does.
 */
export function parentDirsOf(payload: PayloadEntry[]): string[] {
  const owned = new Set(payload.map((e) => e.path));
  const parents = new Set<string>();
  for (const e of payload) {
    let p = e.path;
    for (;;) {
      p = p.slice(0, p.lastIndexOf("/"));
      if (p === "") break;
      if (!owned.has(p)) parents.add(p);
    }
  }
  return [...parents].sort();
}

/** dpkg's Installed-Size: KiB, each file rounded up, one per directory (as dpkg-gencontrol counts). */
export function installedSizeKiB(sizes: { type: "file" | "dir"; bytes: number }[]): number {
  return sizes.reduce((sum, s) => sum + (s.type === "dir" ? 1 : Math.ceil(s.bytes / 1024)), 0);
}

// --- DEBIAN/ -------------------------------------------------------------------------------------

/** rpm's "criu >= 3.15" is dpkg's "criu (>= 3.15)". */
export function debDependsOf(requires: string[]): string {
  return requires
    .map((r) => {
      const m = /^([\w.+-]+)(?:\s*(<=|>=|=|<|>)\s*(\S+))?$/.exec(r);
      if (m === null) throw specError(`cannot read "Requires: ${r}"`);
      const op = m[2] === "<" ? "<<" : m[2] === ">" ? ">>" : m[2];
      return op === undefined ? (m[1] ?? "") : `${m[1]} (${op} ${m[3]})`;
    })
    .join(", ");
}

export const DEFAULT_MAINTAINER = "nvwa maintainers <nvwa-maintainers@invalid>";

export interface ControlInput {
  spec: SpecFacts;
  version: string;
  arch: DebArch;
  installedSizeKiB: number;
  /** NVWA_PACKAGER, or the spec's newest changelog author. */
  maintainer: string;
}

export function controlText(c: ControlInput): string {
  const long = c.spec.description.map((l) => (l.trim() === "" ? " ." : ` ${l}`));
  return [
    `Package: ${c.spec.name}`,
    `Version: ${c.version}`,
    `Architecture: ${c.arch}`,
    `Maintainer: ${c.maintainer}`,
    `Installed-Size: ${c.installedSizeKiB}`,
    ...(c.spec.requires.length === 0 ? [] : [`Depends: ${debDependsOf(c.spec.requires)}`]),
    "Section: admin",
    "Priority: optional",
    `Homepage: ${c.spec.url}`,
    `Description: ${c.spec.summary}`,
    ...long,
    "",
  ].join("\n");
}

export function conffilesText(payload: PayloadEntry[]): string {
  return payload.filter((e) => e.conffile).map((e) => `${e.path}\n`).join("");
}

/** DEBIAN/md5sums (what `dpkg --verify` and debsums check); conffiles are left out, as dh_md5sums does. */
export function md5sumsText(files: { path: string; md5: string }[]): string {
  return files.map((f) => `${f.md5}  ${f.path.replace(/^\//, "")}\n`).join("");
}

export interface MaintainerScripts {
  postinst: string;
  prerm: string;
  postrm: string;
}

/** The units the payload installs (their names), whose enablement the scripts look after. */
export function unitsOf(payload: PayloadEntry[]): string[] {
  return payload.filter((e) => e.type === "file" && /^\/usr\/lib\/systemd\/system\/[^/]+\.service$/.test(e.path)).map((e) => e.path.slice(e.path.lastIndexOf("/") + 1));
}

/** The scripts in the header's table. Every systemctl failure is ignored, as rpm's pcall does. */
export function maintainerScripts(units: string[]): MaintainerScripts {
  const u = units.join(" ");
  const head = ["#!/bin/sh", "# Generated by build/deb-plan.ts from rpm/nvwa.spec's scriptlets; see its header.", "set -e", ""];
  const running = "[ -d /run/systemd/system ] && [ -x /usr/bin/systemctl ]";
  /** A `case` that reloads systemd, if it runs, for these script arguments. */
  const reloadOn = (cases: string, comment: string[] = []): string[] => [
    'case "$1" in',
    `${cases})`,
    ...comment,
    `\tif ${running}; then`,
    "\t\tsystemctl daemon-reload || true",
    "\tfi",
    "\t;;",
    "esac",
  ];
  return {
    postinst: [
      ...head,
      'case "$1" in',
      "configure)",
      "\t# First install (no configured version before): enable or not, as the system's presets say.",
      `\tif [ -z "$2" ] && [ -x /usr/bin/systemctl ]; then`,
      `\t\tsystemctl --no-reload preset ${u} || true`,
      "\tfi",
      "\t;;",
      "esac",
      ...reloadOn("configure | abort-upgrade | abort-deconfigure | abort-remove", [
        "\t# systemd must see the unit file as it is now. Never start or restart nvwa here: it may be",
        "\t# restoring the workloads after a kernel jump; the new executable runs from its next start.",
      ]),
      "exit 0",
      "",
    ].join("\n"),
    prerm: [
      ...head,
      "# Removal, not upgrade: the executable is about to go, so the daemon stops (its restored",
      "# processes stay: KillMode=process).",
      `if [ "$1" = remove ] && ${running}; then`,
      `\tsystemctl stop ${u} || true`,
      "fi",
      "exit 0",
      "",
    ].join("\n"),
    postrm: [
      ...head,
      "# Purge: the enablement goes with the rest of the configuration.",
      `if [ "$1" = purge ] && [ -x /usr/bin/systemctl ]; then`,
      `\tsystemctl --no-reload disable ${u} || true`,
      "fi",
      ...reloadOn("remove | purge"),
      "exit 0",
      "",
    ].join("\n"),
  };
}

// --- the apt repository --------------------------------------------------------------------------

export const APT_SUITE = "stable";
export const APT_COMPONENT = "main";
/** The public key, armored, as apt's Signed-By takes it (a .asc file). */
export const APT_KEY_FILE = "nvwa-archive-keyring.asc";
export const APT_SOURCES_FILE = "nvwa.sources";
/** Where the install guide puts the key (Debian's place for keys of third-party repositories). */
export const APT_KEYRING_DEST = `/etc/apt/keyrings/${APT_KEY_FILE}`;

export function poolPath(fileName: string): string {
  return `pool/${APT_COMPONENT}/n/nvwa/${fileName}`;
}

/** dists/<suite>/<component>/binary-<arch>, relative to dists/<suite> as Release names it. */
export function packagesDir(arch: DebArch): string {
  return `${APT_COMPONENT}/binary-${arch}`;
}

export interface PoolFile {
  /** Relative to the repo root: pool/main/n/nvwa/<file>.deb. */
  filename: string;
  size: number;
  md5: string;
  sha256: string;
}

/** One Packages entry: the .deb's own control fields plus where it is and its digests. */
export function packagesStanza(control: string, file: PoolFile): string {
  const lines = control.replace(/\n+$/, "").split("\n");
  const at = lines.findIndex((l) => l.startsWith("Description:"));
  const extra = [`Filename: ${file.filename}`, `Size: ${file.size}`, `MD5sum: ${file.md5}`, `SHA256: ${file.sha256}`];
  if (at < 0) return `${[...lines, ...extra].join("\n")}\n`;
  return `${[...lines.slice(0, at), ...extra, ...lines.slice(at)].join("\n")}\n`;
}

export function packagesText(stanzas: string[]): string {
  return stanzas.join("\n");
}

export interface ReleaseIndex {
  /** Relative to dists/<suite>: main/binary-amd64/Packages(.gz). */
  path: string;
  size: number;
  md5: string;
  sha256: string;
}

/** RFC 2822 in UTC, as Debian's archive writes Release dates. */
export function releaseDate(d: Date): string {
  return d.toUTCString().replace(/GMT$/, "UTC");
}

export function releaseText(r: { date: Date; architectures: DebArch[]; indexes: ReleaseIndex[] }): string {
  const width = Math.max(...r.indexes.map((i) => String(i.size).length), 1);
  const rows = (hash: "md5" | "sha256"): string[] => r.indexes.map((i) => ` ${i[hash]} ${String(i.size).padStart(width)} ${i.path}`);
  return [
    "Origin: nvwa",
    "Label: nvwa",
    `Suite: ${APT_SUITE}`,
    `Codename: ${APT_SUITE}`,
    `Date: ${releaseDate(r.date)}`,
    `Architectures: ${[...r.architectures].sort().join(" ")}`,
    `Components: ${APT_COMPONENT}`,
    "Description: nvwa, kernel hot upgrade",
    "MD5Sum:",
    ...rows("md5"),
    "SHA256:",
    ...rows("sha256"),
    "",
  ].join("\n");
}

/** The deb822 source of the install guide, for the repo at `uri`, trusting only `keyPath`. */
export function sourcesText(uri = "file:///mnt", keyPath = APT_KEYRING_DEST): string {
  return [
    "Types: deb",
    `URIs: ${uri.replace(/\/+$/, "")}`,
    `Suites: ${APT_SUITE}`,
    `Components: ${APT_COMPONENT}`,
    `Signed-By: ${keyPath}`,
    "",
  ].join("\n");
}

export interface GpgKeyRef {
  fingerprint: string;
  gnupgHome: string;
  passphraseFile: string | undefined;
}

/** InRelease (clear-signed) or Release.gpg (detached, armored); SHA-512: apt refuses SHA-1. */
export function aptSignArgv(key: GpgKeyRef, mode: "clearsign" | "detach", input: string, output: string): string[] {
  return [
    "gpg", "--homedir", key.gnupgHome, "--batch", "--yes",
    ...(key.passphraseFile === undefined ? [] : ["--pinentry-mode", "loopback", "--passphrase-file", key.passphraseFile]),
    "--local-user", key.fingerprint, "--digest-algo", "SHA512", "--armor",
    mode === "clearsign" ? "--clearsign" : "--detach-sign",
    "--output", output, input,
  ];
}

/** `gpg --status-fd 1 --verify` output: the fingerprint of a good signature, if it is one. */
export function validSigOf(status: string): string | undefined {
  if (!/^\[GNUPG:\] GOODSIG /m.test(status)) return undefined;
  return /^\[GNUPG:\] VALIDSIG ([0-9A-F]+) /m.exec(status)?.[1];
}

/**
 * SOURCE_DATE_EPOCH when set (reproducible builds), else the newest input: the same inputs then
 * give the same archive bytes.
 */
export function buildEpoch(env: Record<string, string | undefined>, inputMtimesMs: number[]): number {
  const s = env.SOURCE_DATE_EPOCH;
  if (s !== undefined && s !== "") {
    if (!/^\d+$/.test(s)) {
      throw new NvwaError("package.bad-epoch", `SOURCE_DATE_EPOCH="${s}" is not a number of seconds`, {
        exitCode: ExitCode.usage,
        hint: "set it to a Unix time such as $(git log -1 --format=%ct), or unset it",
      });
    }
    return Number(s);
  }
  return Math.floor(Math.max(0, ...inputMtimesMs) / 1000);
}
