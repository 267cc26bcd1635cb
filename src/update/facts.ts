/**
 * probeFacts(): reads what preflight judges. Only reads: files under /proc, /sys, /boot, /etc,
 * statfs, one harmless kexec_file_load probe (invalid flags, see ffi/kexec.ts) and, unless
 * told otherwise, `<criu_exe> check`. Nothing is written, loaded or started.
 */
import { probeContainers, unitOf, type ContainerFacts } from "../container/facts.ts";
import { readTextOrNull } from "../read-text.ts";
import { snapshotProcesses, treeOf } from "../criu/proc.ts";
import { serviceRootPid } from "../systemd/service-root.ts";
import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { release } from "node:os";
import { currentArch, type Arch } from "../../ffi/arch.ts";
import type { NvwaConfig } from "../config/types.ts";
import { isNvwaError } from "../errors.ts";
import { exeExists } from "../kexec/kexec-exe.ts";
import { checkArgv } from "../criu/argv.ts";
import { featureSupported } from "../criu/probe.ts";
import { candidatePaths } from "../kexec/locate.ts";
import { peSignature, unwrapKernel } from "../kexec/format.ts";
import { releaseProblem } from "../kexec/release.ts";
import { FIRMWARE_FDT, readKexecLoaded, readKexecLoadDisabled, readLockdown } from "../kexec/state.ts";
import { currentBootId } from "../state/lock.ts";
import { readManifestIfAny } from "../state/manifest-file.ts";
import type { CriuCheckFacts, Facts, KernelFacts, KexecFacts, PidFacts } from "./facts-types.ts";
import { SystemdManager, type SystemdConnectOptions } from "../systemd/manager.ts";
import type { ServiceProperties } from "../systemd/units.ts";
import { mergeWatchdogSettings } from "./preflight-watchdog.ts";
import { nrCpusFromConfig, probeCriuDir, probeLock, readIomem, readKernelConfig, readSecureBoot, readSelinux, safeProbeFileLoad, systemConfFiles, watchdogDevices } from "./facts-machine.ts";

export { nrCpusFromConfig, parseLockPid, probeCriuDir, probeLock, systemConfFiles, FS_MAGIC } from "./facts-machine.ts";

// --- kernel -----------------------------------------------------------------------------------

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

export function probeKernel(version: string, arch: Arch, bootDir = "/boot", modulesDir = "/usr/lib/modules"): KernelFacts {
  const problem = releaseProblem(version);
  if (problem !== null) {
    return { version, versionProblem: problem, kernelPath: null, initrdPath: null, triedKernels: [], triedInitrds: [], image: null, initrdBytes: null };
  }
  const c = candidatePaths(version, bootDir, modulesDir);
  const kernelPath = c.kernels.find(isFile) ?? null;
  const initrdPath = c.initrds.find(isFile) ?? null;
  let image: KernelFacts["image"] = null;
  if (kernelPath !== null) {
    try {
      const u = unwrapKernel(new Uint8Array(readFileSync(kernelPath)), arch, kernelPath);
      const sig = peSignature(u.image);
      image = { ok: true, format: u.description, unwrapped: u.unwrapped, bytes: u.image.length, signed: sig === null ? null : sig.size > 0 };
    } catch (e) {
      image = isNvwaError(e)
        ? { ok: false, message: e.message, ...(e.hint === undefined ? {} : { hint: e.hint }) }
        : { ok: false, message: `cannot read ${kernelPath}: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  return {
    version,
    versionProblem: null,
    kernelPath,
    initrdPath,
    triedKernels: c.kernels,
    triedInitrds: c.initrds,
    image,
    initrdBytes: initrdPath === null ? null : statSync(initrdPath).size,
  };
}

// --- processes --------------------------------------------------------------------------------
// One reader of /proc for the whole program: src/criu/proc.ts (the plan reads the same).

/** Pure: VmRSS of /proc/<pid>/status in bytes (0 for kernel threads and zombies). */
export function parseVmRss(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

export function probePids(pids: number[]): PidFacts[] {
  if (pids.length === 0) return [];
  const procs = snapshotProcesses();
  return pids.map((pid) => {
    const s = procs.get(pid);
    if (s === undefined) return { pid, alive: false, zombie: false, kernelThread: false, comm: null, treePids: [], rssBytes: 0 };
    const tree = treeOf(pid, procs).processes;
    const rss = tree.reduce((sum, p) => sum + parseVmRss(readTextOrNull(`/proc/${p}/status`) ?? ""), 0);
    return {
      pid,
      alive: s.state !== "Z" && s.state !== "X",
      zombie: s.state === "Z",
      kernelThread: s.kernelThread,
      comm: s.comm,
      treePids: tree,
      rssBytes: rss,
    };
  });
}

// --- criu -------------------------------------------------------------------------------------

/** `<criu_exe> check`: whether criu works on this kernel, and its own words when it does not. */
export function probeCriuCheck(exe: string, timeoutMs = 60_000, memTrack = false, uffd = false): CriuCheckFacts {
  if (!exeExists(exe)) return { exe, exists: false, exitCode: null, output: "", timedOut: false, memTrack: null };
  const p = Bun.spawnSync({ cmd: [exe, "check"], stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: timeoutMs });
  const dirty = memTrack ? Bun.spawnSync({ cmd: [exe, ...checkArgv("mem_dirty_track")], stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: timeoutMs }) : null;
  const lazy = uffd ? Bun.spawnSync({ cmd: [exe, ...checkArgv("uffd-noncoop")], stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: timeoutMs }) : null;
  return {
    exe,
    exists: true,
    exitCode: p.exitCode,
    output: `${p.stdout.toString()}${p.stderr.toString()}`.trim(),
    timedOut: p.exitedDueToTimeout === true,
    memTrack: dirty === null ? null : featureSupported(dirty.exitCode, `${dirty.stdout.toString()}${dirty.stderr.toString()}`, "mem_dirty_track"),
    ...(lazy === null ? {} : { uffd: featureSupported(lazy.exitCode, `${lazy.stdout.toString()}${lazy.stderr.toString()}`, "uffd-noncoop") }),
  };
}

/**
 * Unit properties of each service from PID 1 (private socket, else the system bus), on one
 * connection. No second try: a call PID 1 left unanswered was nvwa's client sending its first
 * call after BEGIN in a way sd-bus can strand (fixed in dbus-auth.ts authRequest), not PID 1.
 */
export async function probeServicesOverDbus(units: string[], connect: SystemdConnectOptions = {}): Promise<ServiceProperties[]> {
  const mgr = await SystemdManager.connect({ timeoutMs: 5000, ...connect });
  try {
    const out: ServiceProperties[] = [];
    for (const u of units) out.push(await mgr.serviceProperties(u));
    return out;
  } finally {
    mgr.close();
  }
}

export interface ProbeOptions {
  version?: string | null;
  /** Skip `criu check` (it takes seconds): the criu check is then left out. */
  skipCriuCheck?: boolean;
  /** Reads the services' unit properties; defaults to asking PID 1 over D-Bus. */
  probeServices?: (units: string[]) => Promise<ServiceProperties[]>;
  bootDir?: string;
  modulesDir?: string;
  /** Asks podman about the configured containers; defaults to its API socket. */
  probeContainers?: (names: readonly string[]) => Promise<ContainerFacts>;
}

const NAMESPACES = ["mnt", "net", "uts", "ipc", "pid", "user", "cgroup"] as const;

function nsLink(pid: number | "self", ns: string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return null;
  }
}

/** The namespaces pid does not share with this process (criu runs from here); none when unreadable. */
function ownNamespaces(pid: number): string[] {
  if (pid <= 0) return [];
  return NAMESPACES.filter((ns) => {
    const theirs = nsLink(pid, ns);
    const ours = nsLink("self", ns);
    return theirs !== null && ours !== null && theirs !== ours;
  });
}

/** A service's tree root for memory accounting; 0 when it has none (preflight reports that). */
function rootOrZero(p: ServiceProperties): number {
  try {
    return serviceRootPid(p);
  } catch {
    return 0;
  }
}

/** The manifest's few facts preflight needs; a damaged manifest has its own check, so null here. */
function lastUpdate(criuDir: string): KexecFacts["nvwaUpdate"] {
  try {
    const m = readManifestIfAny(criuDir);
    if (m === null) return null;
    const boot = currentBootId();
    return {
      updateId: m.updateId,
      phase: m.phase,
      ...(m.kernel.loader === undefined ? {} : { loader: m.kernel.loader }),
      sameBoot: boot !== undefined && (m.bootId ?? m.createdBootId) === boot,
    };
  } catch {
    return null;
  }
}

export async function probeFacts(config: NvwaConfig, opts: ProbeOptions = {}): Promise<Facts> {
  const arch = currentArch();
  const rel = release();
  const kconfig = readKernelConfig(rel);
  let services: ServiceProperties[] | undefined;
  let servicesProbeError: string | undefined;
  if (config.restore.services.length > 0) {
    try {
      services = await (opts.probeServices ?? probeServicesOverDbus)(config.restore.services);
    } catch (e) {
      servicesProbeError = isNvwaError(e) ? e.message : e instanceof Error ? e.message : String(e);
    }
  }
  const containers = config.restore.containers.length > 0 ? await (opts.probeContainers ?? probeContainers)(config.restore.containers) : undefined;
  // A container run by a unit is kept through that unit: what systemd says of it decides whether it can be.
  const ctrUnits = [...new Set((containers?.containers ?? []).flatMap((c) => unitOf(c) ?? []))];
  if (containers !== undefined && ctrUnits.length > 0) {
    let props: ServiceProperties[] | null = null;
    try {
      props = await (opts.probeServices ?? probeServicesOverDbus)(ctrUnits);
    } catch {
      // reported per container as "systemd could not be asked"
    }
    for (const c of containers.containers) {
      const u = unitOf(c);
      if (u !== undefined) c.unitProps = props?.find((p) => p.unit === u) ?? null;
    }
  }
  return {
    arch,
    runningRelease: rel,
    uid: process.getuid?.() ?? -1,
    pid: process.pid,
    cmdline: (readTextOrNull("/proc/cmdline") ?? "").trim(),
    kexec: {
      core: readKexecLoaded() !== null,
      loaded: readKexecLoaded(),
      nvwaUpdate: lastUpdate(config.server.criuDir),
      fileLoad: safeProbeFileLoad(),
      loadDisabled: readKexecLoadDisabled(),
      exe: config.server.kexecExe,
      exeExists: exeExists(config.server.kexecExe),
      firmwareFdt: existsSync(FIRMWARE_FDT),
    },
    lockdown: readLockdown(),
    secureBoot: readSecureBoot(),
    selinux: readSelinux(),
    iomem: readIomem(),
    devPinmem: existsSync("/dev/pinmem"),
    nrCpus: kconfig === null ? null : nrCpusFromConfig(kconfig),
    kernel: opts.version ? probeKernel(opts.version, arch, opts.bootDir, opts.modulesDir) : null,
    criu: opts.skipCriuCheck ? null : probeCriuCheck(config.server.criuExe, 60_000, config.restore.enablePreDump, config.restore.enableLazyRestore),
    pids: probePids(config.restore.pids),
    ...(services === undefined
      ? {}
      : {
          services,
          serviceTrees: probePids(services.map(rootOrZero).filter((p) => p > 0)),
          serviceNamespaces: Object.fromEntries(services.map((p) => [p.unit, ownNamespaces(rootOrZero(p))])),
        }),
    ...(servicesProbeError === undefined ? {} : { servicesProbeError }),
    ...(containers === undefined ? {} : { containers }),
    criuDir: probeCriuDir(config.server.criuDir),
    lock: probeLock(config.server.criuDir),
    watchdog: mergeWatchdogSettings(systemConfFiles()),
    watchdogDevices: watchdogDevices(),
    // Journal streams are dumped as criu externals and handed back fresh (src/criu/journal.ts).
    capabilities: { journalStdio: true },
  };
}
