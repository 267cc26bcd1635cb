/**
 * What every packaging run shares, whether it makes the RPMs and everything (package.ts
 * packageAll) or the apt repo alone (apt-repo.ts buildAptRepo): the spec read and parsed, its
 * Source files found and checked (the executables for their arch), the build epoch, the .debs
 * built from the spec's payload, and output trees built beside their place and swapped in whole.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { NvwaError } from "../src/errors.ts";
import { buildDeb, type BuiltDebFile } from "./deb-build.ts";
import { DEFAULT_MAINTAINER, buildEpoch, parseSpec, payloadOf, type DebArch, type SpecFacts } from "./deb-plan.ts";
import { ARCHES, elfMachineOf, specSources, type ArchPlan } from "./rpm-plan.ts";

export interface Dirs {
  /** The checkout: package.json, README.md, rpm/, dist/. */
  root: string;
  /** Spec and its plain-file sources. */
  rpmDir: string;
  /** Where the executables are. */
  distDir: string;
}

export interface BuiltDeb {
  arch: DebArch;
  path: string;
  bytes: number;
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

/**
 * Where each Source of the spec is on this machine, checked: the executables of the arches
 * being built (present, right arch) and every plain file. An executable of an arch not being
 * built maps to undefined when it is missing.
 */
export function locateSources(d: Dirs, arches: ArchPlan[]): Map<string, string | undefined> {
  const found = new Map<string, string | undefined>();
  for (const s of specSources()) {
    const archOfBinary = ARCHES.find((a) => a.binary === s.name);
    if (archOfBinary !== undefined) {
      const from = join(d.distDir, s.name);
      if (arches.includes(archOfBinary)) checkExecutable(from, archOfBinary);
      found.set(s.name, existsSync(from) ? from : undefined);
      continue;
    }
    const from = s.from.startsWith("rpm/") ? join(d.rpmDir, s.from.slice("rpm/".length)) : join(d.root, s.from);
    if (!existsSync(from)) {
      throw new NvwaError("package.missing-source", `${from} is missing; rpm/nvwa.spec needs it`, {
        hint: s.name === "nvwa.service" ? "rpm/nvwa.service is the daemon's systemd unit; restore it from git" : `restore ${s.from} from git`,
      });
    }
    found.set(s.name, from);
  }
  return found;
}

export function fileOfSource(sources: Map<string, string | undefined>): (name: string) => string {
  return (name) => {
    const path = sources.get(name);
    if (path === undefined) throw new NvwaError("package.missing-source", `no file for the spec's Source ${name}`, { hint: "build the executables first: bun run build" });
    return path;
  };
}

export async function readSpec(rpmDir: string): Promise<{ path: string; facts: SpecFacts }> {
  const path = join(rpmDir, "nvwa.spec");
  if (!existsSync(path)) throw new NvwaError("package.missing-source", `${path} is missing`, { hint: "restore rpm/ from git" });
  return { path, facts: parseSpec(await Bun.file(path).text()) };
}

export async function packageJsonVersion(root: string): Promise<string> {
  return ((await Bun.file(join(root, "package.json")).json()) as { version: string }).version;
}

/** The .debs' and tarballs' mtimes and, with SOURCE_DATE_EPOCH, Release's Date. */
export function epochs(env: Record<string, string | undefined>, sources: Map<string, string | undefined>): { files: number; release: Date } {
  const mtimes = [...sources.values()].filter((p): p is string => p !== undefined).map((p) => statSync(p).mtimeMs);
  const files = buildEpoch(env, mtimes);
  const fixed = env.SOURCE_DATE_EPOCH !== undefined && env.SOURCE_DATE_EPOCH !== "";
  return { files, release: fixed ? new Date(files * 1000) : new Date() };
}

export function maintainerOf(env: Record<string, string | undefined>, spec: SpecFacts): string {
  return env.NVWA_PACKAGER || spec.changelogAuthor || DEFAULT_MAINTAINER;
}

export interface DebPlanned {
  spec: SpecFacts;
  arches: ArchPlan[];
  rpmVersion: string;
  debVersion: string;
  maintainer: string;
  fileOf: (name: string) => string;
  epoch: number;
}

/** One .deb per arch, all at once, into `stage`. */
export function buildDebs(p: DebPlanned, stage: string): Promise<BuiltDebFile[]> {
  return Promise.all(
    p.arches.map((arch) =>
      buildDeb({ spec: p.spec, payload: payloadOf(p.spec, arch, p.rpmVersion), arch, version: p.debVersion, maintainer: p.maintainer, fileOf: p.fileOf, epoch: p.epoch, stage }),
    ),
  );
}

export function since(t: number): number {
  return Math.round((performance.now() - t) / 100) / 10;
}

/** A directory to build `out`'s replacement in, beside it (same filesystem: the swap is a rename). */
export function freshBeside(out: string): string {
  mkdirSync(dirname(out), { recursive: true });
  const fresh = `${out}.new-${process.pid}`;
  rmSync(fresh, { recursive: true, force: true });
  mkdirSync(fresh);
  return fresh;
}

/** Replaces `out` with the finished `fresh`: a repo is never seen half-written, and a failed run never got here. */
export function swapInto(fresh: string, out: string): void {
  const old = `${out}.old-${process.pid}`;
  if (existsSync(out)) renameSync(out, old);
  renameSync(fresh, out);
  rmSync(old, { recursive: true, force: true });
}
