/**
 * scanImage(root): reads what judge.ts needs from an OS image tree: kernels with their initramfs
 * and config, criu and kexec-tools, nvwa's unit and its enablement links, the two config files,
 * the unit files of the services they list. Reads only, and only under `root`: every path is
 * resolved inside the tree (tree-path.ts); nothing of the running system is looked at (no /proc,
 * no D-Bus, not this machine's /etc/nvwa).
 */
import { readdirSync, readFileSync, statSync, type Stats } from "node:fs";
import { resolve } from "node:path";
import { insecurityOf } from "../config/load.ts";
import { checkConfigText, checkRestoreParsed, serverFromParsed, type ConfigProblem, type Parsed } from "../config/parse.ts";
import { RESTORE_KEYS, SERVER_KEYS, type KeySchemas } from "../config/schema.ts";
import { DEFAULT_CONFIG_DIR, RESTORE_FILE, SERVER_FILE } from "../config/types.ts";
import { ExitCode, NvwaError, isNvwaError } from "../errors.ts";
import { unwrapKernel } from "../kexec/format.ts";
import { candidatePaths } from "../kexec/locate.ts";
import { releaseProblem } from "../kexec/release.ts";
import { readTextOrNull } from "../read-text.ts";
import type { ConfigFileFacts, EnablementFacts, ExecutableFacts, ImageFacts, ImageKernel, KernelImageFacts, UnitFacts } from "./facts.ts";
import { configArch, looksLikeKernelConfig, parseKernelConfig } from "./kernel-config.ts";
import { describeMiss, found, isExecutableFile, linkTextInTree, lookupInTree, type TreeEntry } from "./tree-path.ts";
import { parseUnitFile } from "./unit-file.ts";

/** The unit name nvwa's package installs (rpm/nvwa.spec). */
export const NVWA_UNIT = "nvwa.service";

/**
 * systemd's system unit directories that an image can hold, highest priority first (/run is
 * empty in an image). /lib/systemd/system is where distributions without a merged /usr keep
 * them; in a merged tree it is the same directory and found twice, harmlessly.
 */
const UNIT_DIRS = ["/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

/** Where modules (and, in kernel-install layouts, the kernel, initrd and config) live. */
const MODULE_DIRS = ["/usr/lib/modules", "/lib/modules"];

/** Config files are a few lines (load.ts refuses more than this too). */
const MAX_CONFIG_BYTES = 256 * 1024;
/** Kernel configs are 100–300 KiB; kernel images tens of MiB. Beyond these it is not one. */
const MAX_KERNEL_CONFIG_BYTES = 8 * 2 ** 20;
const MAX_KERNEL_BYTES = 512 * 2 ** 20;

function fileInTree(root: string, path: string): TreeEntry | null {
  const l = lookupInTree(root, path);
  return found(l) && l.stats.isFile() ? l : null;
}

/** The first of `paths` (in the image) that leads to a regular file, with where it is. */
function firstFile(root: string, paths: string[]): { path: string; entry: TreeEntry } | null {
  for (const path of paths) {
    const entry = fileInTree(root, path);
    if (entry !== null) return { path, entry };
  }
  return null;
}

function listDir(root: string, path: string): string[] {
  const l = lookupInTree(root, path);
  if (!found(l) || !l.stats.isDirectory()) return [];
  try {
    return readdirSync(l.hostPath).sort();
  } catch {
    return [];
  }
}

const unique = (xs: string[]): string[] => [...new Set(xs)];

function executableInTree(root: string, path: string): ExecutableFacts {
  if (!path.startsWith("/")) return { path, problem: `${path} is not an absolute path` };
  const l = lookupInTree(root, path);
  if (!found(l)) return { path, problem: describeMiss(l, path) };
  const via = l.imagePath === path ? "" : ` (it leads to ${l.imagePath})`;
  if (!l.stats.isFile()) return { path, problem: `${path} is not a regular file${via}` };
  if (!isExecutableFile(l.stats)) return { path, problem: `${path} is not executable (mode ${(l.stats.mode & 0o777).toString(8)})${via}` };
  return { path, problem: null };
}

// --- kernels ----------------------------------------------------------------------------------

function kernelVersions(root: string): string[] {
  const versions: string[] = [];
  for (const name of listDir(root, "/boot")) if (name.startsWith("vmlinuz-") && name.length > "vmlinuz-".length) versions.push(name.slice("vmlinuz-".length));
  for (const dir of MODULE_DIRS) for (const ver of listDir(root, dir)) if (fileInTree(root, `${dir}/${ver}/vmlinuz`) !== null) versions.push(ver);
  return unique(versions).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

function kernelImage(entry: TreeEntry, arch: "x64" | "arm64"): KernelImageFacts {
  if (entry.stats.size > MAX_KERNEL_BYTES) return { problem: { message: `${entry.imagePath} is ${entry.stats.size} bytes, too large for a kernel image`, hint: "check that the right file is in place" } };
  try {
    // The same unwrapping nvwa does before loading (src/kexec/format.ts), for the kernel's own architecture.
    return { format: unwrapKernel(new Uint8Array(readFileSync(entry.hostPath)), arch, entry.imagePath).description };
  } catch (e) {
    if (isNvwaError(e)) return { problem: { message: e.message, hint: e.hint ?? "reinstall the kernel package" } };
    return { problem: { message: `cannot read ${entry.imagePath}: ${e instanceof Error ? e.message : String(e)}`, hint: "check the file's permissions" } };
  }
}

function scanKernel(root: string, version: string): ImageKernel {
  const none = { kernel: null, triedKernels: [], initrd: null, triedInitrds: [], config: null, configProblem: null, triedConfigs: [], image: null };
  if (version.startsWith("0-rescue-")) return { version, versionProblem: null, rescue: true, ...none };
  const problem = releaseProblem(version);
  if (problem !== null) return { version, versionProblem: problem, rescue: false, ...none };

  const candidates = MODULE_DIRS.map((m) => candidatePaths(version, "/boot", m));
  const kernels = unique(candidates.flatMap((c) => c.kernels));
  const initrds = unique(candidates.flatMap((c) => c.initrds));
  const configs = unique([`/boot/config-${version}`, ...MODULE_DIRS.map((m) => `${m}/${version}/config`)]);

  const kernelFile = firstFile(root, kernels);
  const initrd = firstFile(root, initrds)?.path ?? null;
  const configFile = firstFile(root, configs);

  let config: ImageKernel["config"] = null;
  let configProblem: string | null = null;
  if (configFile !== null) {
    const { path, entry } = configFile;
    if (entry.stats.size > MAX_KERNEL_CONFIG_BYTES) {
      configProblem = `${path} is ${entry.stats.size} bytes, too large for a kernel config`;
    } else {
      try {
        const options = parseKernelConfig(readFileSync(entry.hostPath, "utf8"));
        if (looksLikeKernelConfig(options)) config = { path, options };
        else configProblem = `${path} has no CONFIG_ lines: it is not a kernel config`;
      } catch (e) {
        configProblem = `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
      }
    }
  }
  const arch = config === null ? null : configArch(config.options);
  return {
    version,
    versionProblem: null,
    rescue: false,
    kernel: kernelFile?.path ?? null,
    triedKernels: kernels,
    initrd,
    triedInitrds: initrds,
    config,
    configProblem,
    triedConfigs: configs,
    image: kernelFile === null || arch === null ? null : kernelImage(kernelFile.entry, arch),
  };
}

// --- systemd units ----------------------------------------------------------------------------

/** The unit file systemd would load for `name` in the tree, and its host path to read it. */
function findUnit(root: string, name: string): { facts: UnitFacts; hostPath: string | null } {
  const tried: string[] = [];
  // An instance (getty@tty1.service) is loaded from its own file, else from its template's.
  const template = /^(.+@)[^@]+(\.service)$/.exec(name);
  const names = template === null ? [name] : [name, `${template[1]}${template[2]}`];
  for (const n of names) {
    for (const dir of UNIT_DIRS) {
      const path = `${dir}/${n}`;
      tried.push(path);
      if (linkTextInTree(root, path) === "/dev/null") return { facts: { name, path, tried, masked: true }, hostPath: null };
      const l = lookupInTree(root, path);
      if (!found(l)) continue;
      if (l.stats.isCharacterDevice()) return { facts: { name, path, tried, masked: true }, hostPath: null };
      if (!l.stats.isFile()) continue;
      // systemd treats an empty unit file as masked, as it does a link to /dev/null.
      return { facts: { name, path, tried, masked: l.stats.size === 0 }, hostPath: l.hostPath };
    }
  }
  return { facts: { name, path: null, tried, masked: false }, hostPath: null };
}

/** Where `systemctl enable` put (or would put) its links for the unit, and what is there. */
function enablementOf(root: string, unit: string, wantedBy: string[], requiredBy: string[]): EnablementFacts {
  const wantsDirs = unique([...wantedBy.map((t) => `${t}.wants`), ...requiredBy.map((t) => `${t}.requires`)]);
  const links: string[] = [];
  const dangling: EnablementFacts["dangling"] = [];
  const seen = new Set<string>();
  // /etc is where systemctl enable writes; /usr/lib is where a package may enable statically.
  for (const w of wantsDirs) {
    for (const dir of UNIT_DIRS) {
      const path = `${dir}/${w}/${unit}`;
      const self = lookupInTree(root, path, false);
      if (!found(self) || seen.has(self.hostPath)) continue;
      seen.add(self.hostPath);
      if (fileInTree(root, path) !== null) links.push(path);
      else dangling.push({ link: path, target: linkTextInTree(root, path) ?? "?" });
    }
  }
  return { wantsDirs, links, dangling };
}

// --- config files -----------------------------------------------------------------------------

function unreadable(path: string, what: string): ConfigProblem {
  return { error: new NvwaError("config.unreadable", `${path}: ${what}`, { hint: "check the file in the image", exitCode: ExitCode.usage }) };
}

/** One YAML file as load.ts reads it, ownership judged as for root, which nvwa runs as in the image. */
function readConfigFile(root: string, file: string, keys: KeySchemas): { facts: ConfigFileFacts; parsed: Parsed } {
  const path = `${DEFAULT_CONFIG_DIR}/${file}`;
  const l = lookupInTree(root, path);
  if (!found(l)) {
    const hostPath = `${root}${path}`;
    // Missing is the documented way to take the defaults (load.ts); anything else is a problem.
    if (l.why === "missing") return { facts: { path, hostPath, present: false, problems: [] }, parsed: {} };
    return { facts: { path, hostPath, present: true, problems: [unreadable(hostPath, describeMiss(l, path))] }, parsed: {} };
  }
  const hostPath = l.hostPath;
  const problems: ConfigProblem[] = [];
  const facts = { path, hostPath, present: true, problems };
  if (!l.stats.isFile()) return { facts: { ...facts, problems: [unreadable(hostPath, "is not a regular file")] }, parsed: {} };
  const insecure = insecurityOf(hostPath, l.stats, 0);
  if (insecure !== undefined) problems.push({ error: insecure });
  if (l.stats.size > MAX_CONFIG_BYTES) {
    problems.push(unreadable(hostPath, `is ${l.stats.size} bytes; a config file is at most ${MAX_CONFIG_BYTES}`));
    return { facts, parsed: {} };
  }
  let text: string;
  try {
    text = readFileSync(hostPath, "utf8");
  } catch (e) {
    problems.push(unreadable(hostPath, `cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`));
    return { facts, parsed: {} };
  }
  const checked = checkConfigText(hostPath, text, keys);
  problems.push(...checked.problems);
  return { facts, parsed: checked.parsed };
}

// --- the whole tree ---------------------------------------------------------------------------

/** Everything judge.ts needs about the tree at `root` (an absolute path to an existing directory). */
export function scanImage(root: string): ImageFacts {
  const restoreFile = readConfigFile(root, RESTORE_FILE, RESTORE_KEYS);
  const restore = checkRestoreParsed(restoreFile.facts.hostPath, restoreFile.parsed);
  const serverFile = readConfigFile(root, SERVER_FILE, SERVER_KEYS);
  const server = serverFromParsed(serverFile.parsed);

  const unit = findUnit(root, NVWA_UNIT);
  let enablement: EnablementFacts | null = null;
  let unreadableUnit = false;
  let nvwaExe = "/usr/bin/nvwa";
  const unitText = unit.hostPath === null || unit.facts.masked ? null : readTextOrNull(unit.hostPath);
  if (unit.hostPath !== null && !unit.facts.masked && unitText === null) unreadableUnit = true;
  if (unitText !== null) {
    const settings = parseUnitFile(unitText);
    enablement = enablementOf(root, NVWA_UNIT, settings.wantedBy, settings.requiredBy);
    if (settings.execStart !== null) nvwaExe = settings.execStart;
  }

  return {
    root,
    kernels: kernelVersions(root).map((v) => scanKernel(root, v)),
    kernelDirs: ["/boot", ...MODULE_DIRS],
    kexecTools: { path: server.kexecExe, executable: executableInTree(root, server.kexecExe).problem === null, prefer: server.kexecLoader },
    criu: { ...executableInTree(root, server.criuExe), fromConfig: serverFile.parsed.criu_exe != null },
    unit: { ...unit.facts, unreadable: unreadableUnit, enablement },
    nvwa: executableInTree(root, nvwaExe),
    restore: { ...restoreFile.facts, problems: [...restoreFile.facts.problems, ...restore.problems], config: restore.config },
    server: { ...serverFile.facts, config: server },
    services: restore.config.services.map((s) => findUnit(root, s).facts),
  };
}

/**
 * The tree's root as an absolute path, or a usage error naming it: it must be an existing
 * directory (a typo must not pass as "an image with nothing in it").
 */
export function imageRoot(dir: string): string {
  const usage = (what: string): NvwaError =>
    new NvwaError("check.root", `--root ${dir}: ${what}`, { exitCode: ExitCode.usage, hint: "give the directory that holds the image's /boot, /etc and /usr", details: { root: dir } });
  if (dir === "") throw usage("an empty path");
  const abs = resolve(dir);
  let st: Stats;
  try {
    st = statSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw usage(code === "ENOENT" ? "no such directory" : `cannot be read (${code ?? String(e)})`);
  }
  if (!st.isDirectory()) throw usage("not a directory");
  return abs;
}
