/**
 * `--latest`: which installed kernel an unattended rollout (Ansible, kured, a timer) moves to.
 * The rule is the one an operator would apply by eye: the newest kernel by version order, and
 * only if it is newer than the running one. The newest is taken as it is: when it lacks its
 * initramfs the answer is an error naming it, not a quiet fall-back to an older kernel the
 * operator did not mean (a half-installed package is something automation must report).
 *
 * Version order is dpkg's (`dpkg --compare-versions` on the whole release string): digits
 * compare as numbers, `~` sorts before everything, letters before other characters. Kernel
 * releases of Debian (6.12.95+deb12-cloud-amd64), Fedora/openEuler (5.10.0-136.12.0.86.oe2203sp1.aarch64)
 * and upstream (6.18.0-rc3) all order as their packages do.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, NvwaError } from "../errors.ts";
import { candidatePaths } from "./locate.ts";
import { releaseProblem } from "./release.ts";

/** dpkg's character weight in the non-digit part: `~` lowest, end of string next, letters, then the rest. */
function weight(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === "~") return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

/** Pure: <0, 0, >0 as a is older than, equal to, newer than b (dpkg's verrevcmp). */
export function compareReleases(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // The non-digit run, character by character.
    while ((i < a.length && !/[0-9]/.test(a[i] ?? "")) || (j < b.length && !/[0-9]/.test(b[j] ?? ""))) {
      const ca = i < a.length && !/[0-9]/.test(a[i] ?? "") ? a[i] : undefined;
      const cb = j < b.length && !/[0-9]/.test(b[j] ?? "") ? b[j] : undefined;
      const d = weight(ca) - weight(cb);
      if (d !== 0) return d;
      if (ca !== undefined) i++;
      if (cb !== undefined) j++;
    }
    // The digit run, as a number (leading zeros do not count).
    let na = "";
    let nb = "";
    while (i < a.length && /[0-9]/.test(a[i] ?? "")) na += a[i++];
    while (j < b.length && /[0-9]/.test(b[j] ?? "")) nb += b[j++];
    na = na.replace(/^0+/, "");
    nb = nb.replace(/^0+/, "");
    if (na.length !== nb.length) return na.length - nb.length;
    if (na !== nb) return na < nb ? -1 : 1;
  }
  return 0;
}

export interface InstalledKernel {
  version: string;
  /** Its initramfs, or null when none of the usual names exists. */
  initrd: string | null;
}

/** What `--latest` decided: a kernel to move to, or that the running one is already the newest. */
export type LatestChoice = { kind: "newer"; version: string; running: string } | { kind: "current"; running: string; newest: string | null };

/**
 * Pure: the newest installed kernel if it is newer than `running`. Throws (exit 2) when that
 * newest kernel has no initramfs: the rollout must stop and say so.
 */
export function pickLatest(installed: InstalledKernel[], running: string): LatestChoice {
  const sorted = [...installed].sort((x, y) => compareReleases(y.version, x.version));
  const newest = sorted[0];
  if (newest === undefined || compareReleases(newest.version, running) <= 0) return { kind: "current", running, newest: newest?.version ?? null };
  if (newest.initrd === null) {
    throw new NvwaError("kexec.latest-initrd-missing", `the newest installed kernel, ${newest.version}, has no initramfs`, {
      hint: `build it (\`update-initramfs -c -k ${newest.version}\` on Debian, \`dracut --kver ${newest.version}\` elsewhere) or remove that kernel; nvwa does not fall back to an older one`,
      exitCode: ExitCode.usage,
      details: { version: newest.version, running },
    });
  }
  return { kind: "newer", version: newest.version, running };
}

/** Pure: the release in a /boot entry name (`vmlinuz-<ver>`), or null for anything else (rescue images, .old links, signatures). */
export function releaseOfBootEntry(name: string): string | null {
  if (!name.startsWith("vmlinuz-")) return null;
  const ver = name.slice("vmlinuz-".length);
  if (releaseProblem(ver) !== null || /rescue/.test(ver) || /\.(old|sig|hmac)$/.test(ver)) return null;
  return ver;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The kernels installed in bootDir (vmlinuz-<ver>) and modulesDir (<ver>/vmlinuz), each once, with its initramfs. */
export function installedKernels(bootDir = "/boot", modulesDir = "/usr/lib/modules"): InstalledKernel[] {
  const versions = new Set<string>();
  for (const name of entries(bootDir)) {
    const ver = releaseOfBootEntry(name);
    if (ver !== null && isFile(join(bootDir, name))) versions.add(ver);
  }
  for (const ver of entries(modulesDir)) {
    if (releaseProblem(ver) === null && isFile(join(modulesDir, ver, "vmlinuz"))) versions.add(ver);
  }
  return [...versions].map((version) => ({ version, initrd: candidatePaths(version, bootDir, modulesDir).initrds.find(isFile) ?? null }));
}

/** The choice for this machine: its /boot and /usr/lib/modules against the running kernel. */
export function chooseLatest(running: string, bootDir = "/boot", modulesDir = "/usr/lib/modules"): LatestChoice {
  return pickLatest(installedKernels(bootDir, modulesDir), running);
}
