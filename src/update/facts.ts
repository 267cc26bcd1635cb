/**
 * probeFacts(): reads what preflight judges. Only reads: files under /proc, /sys, /boot, /etc,
 * statfs, one harmless kexec_file_load probe (invalid flags, see ffi/kexec.ts) and, unless
 * told otherwise, `<criu_exe> check`. Nothing is written, loaded or started.
 */
import { serviceRootPid } from "../systemd/service-root.ts";
import { existsSync, readdirSync, readFileSync, statfsSync, statSync } from "node:fs";
import { release } from "node:os";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { currentArch, type Arch } from "../../ffi/arch.ts";
import { probeKexecFileLoad, type KexecFileLoadSupport } from "../../ffi/kexec.ts";
import type { NvwaConfig } from "../config/types.ts";
import { isNvwaError } from "../errors.ts";
import { exeExists } from "../kexec/kexec-exe.ts";
import { candidatePaths } from "../kexec/locate.ts";
import { peSignature, unwrapKernel } from "../kexec/format.ts";
import { releaseProblem } from "../kexec/release.ts";
import { readKexecLoaded, readKexecLoadDisabled, readLockdown } from "../kexec/state.ts";
import { parseIomem, type Iomem } from "../mem/iomem.ts";
import { lockHolder } from "../state/lock.ts";
import type { CriuCheckFacts, CriuDirFacts, Facts, KernelFacts, LockFacts, PidFacts } from "./facts-types.ts";
import { log } from "../log.ts";
import { SystemdManager, type SystemdConnectOptions } from "../systemd/manager.ts";
import type { ServiceProperties } from "../systemd/units.ts";
import { mergeWatchdogSettings, type SystemConfFile } from "./preflight-watchdog.ts";

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

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

interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  flags: number;
}

/** include/linux/sched.h: the task is a kernel thread (nothing criu could dump). */
const PF_KTHREAD = 0x00200000;

/** Pure: /proc/<pid>/stat, whose comm may itself contain spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  const rest = text.slice(close + 2).split(" ");
  return { pid: Number(text.slice(0, open).trim()), comm: text.slice(open + 1, close), state: rest[0] ?? "?", ppid: Number(rest[1]), flags: Number(rest[6] ?? 0) };
}

/** Pure: VmRSS of /proc/<pid>/status in bytes (0 for kernel threads and zombies). */
export function parseVmRss(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

function allStats(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const t = readText(`/proc/${name}/stat`);
    const s = t === null ? null : parseProcStat(t);
    if (s) out.set(s.pid, s);
  }
  return out;
}

/** Pure: pid plus every descendant, from a pid → stat table. */
export function descendants(root: number, stats: Map<number, ProcStat>): number[] {
  const children = new Map<number, number[]>();
  for (const s of stats.values()) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s.pid]);
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

export function probePids(pids: number[]): PidFacts[] {
  if (pids.length === 0) return [];
  const stats = allStats();
  return pids.map((pid) => {
    const s = stats.get(pid);
    if (s === undefined) return { pid, alive: false, zombie: false, kernelThread: false, comm: null, treePids: [], rssBytes: 0 };
    const tree = descendants(pid, stats);
    const rss = tree.reduce((sum, p) => sum + parseVmRss(readText(`/proc/${p}/status`) ?? ""), 0);
    return {
      pid,
      alive: s.state !== "Z" && s.state !== "X",
      zombie: s.state === "Z",
      kernelThread: (s.flags & PF_KTHREAD) !== 0,
      comm: s.comm,
      treePids: tree,
      rssBytes: rss,
    };
  });
}

// --- criu -------------------------------------------------------------------------------------

/** `<criu_exe> check`: whether criu works on this kernel, and its own words when it does not. */
export function probeCriuCheck(exe: string, timeoutMs = 60_000): CriuCheckFacts {
  if (!exeExists(exe)) return { exe, exists: false, exitCode: null, output: "", timedOut: false };
  const p = Bun.spawnSync({ cmd: [exe, "check"], stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: timeoutMs });
  return {
    exe,
    exists: true,
    exitCode: p.exitCode,
    output: `${p.stdout.toString()}${p.stderr.toString()}`.trim(),
    timedOut: p.exitedDueToTimeout === true,
  };
}

// --- criu_dir ---------------------------------------------------------------------------------

/** statfs f_type values (include/uapi/linux/magic.h) for the filesystems worth naming. */
export const FS_MAGIC: Record<number, string> = {
  0x01021994: "tmpfs",
  0x858458f6: "ramfs",
  0xef53: "ext4",
  0x58465342: "xfs",
  0x9123683e: "btrfs",
  0x794c7630: "overlay",
  0x6969: "nfs",
  0x2fc12fc1: "zfs",
  0x4d44: "vfat",
  0xf2f52010: "f2fs",
  0x73717368: "squashfs",
  0xef51: "ext2",
  0x65735546: "fuse",
  0x01161970: "gfs2",
  0x5346414f: "afs",
  0x62656572: "sysfs",
  0x9fa0: "proc",
};

export function probeCriuDir(path: string): CriuDirFacts {
  let probed = path;
  while (!existsSync(probed) && dirname(probed) !== probed) probed = dirname(probed);
  try {
    const st = statfsSync(probed);
    return { path, probedPath: probed, fsType: FS_MAGIC[st.type] ?? `0x${st.type.toString(16)}`, freeBytes: st.bavail * st.bsize };
  } catch {
    return { path, probedPath: probed, fsType: "unknown", freeBytes: null };
  }
}

// --- lock -------------------------------------------------------------------------------------

/** Pure: the pid in a lock file, written as a bare number or as JSON {"pid": n}. */
export function parseLockPid(text: string): number | null {
  const t = text.trim();
  try {
    const j: unknown = JSON.parse(t);
    if (typeof j === "number" && Number.isInteger(j)) return j;
    if (typeof j === "object" && j !== null && "pid" in j) {
      const p = (j as { pid: unknown }).pid;
      if (typeof p === "number" && Number.isInteger(p)) return p;
    }
  } catch {
    // not JSON: fall through to a bare number
  }
  const m = /^(\d+)/.exec(t);
  return m ? Number(m[1]) : null;
}

export function probeLock(criuDir: string): LockFacts {
  const path = join(criuDir, "nvwa.lock");
  const text = readText(path);
  if (text === null) return { path, exists: existsSync(path), pid: null, alive: null };
  // Whether the lock is held is flock's answer (state/lock.ts), not the pid in the file: after a
  // reboot that pid may well belong to some other live process.
  const holder = lockHolder(path);
  const pid = holder !== null && holder.pid > 0 ? holder.pid : parseLockPid(text);
  // The daemon takes the lock before it runs these checks: its own hold is not "another update".
  return { path, exists: true, pid, alive: holder !== null && pid !== process.pid };
}

// --- systemd watchdog -------------------------------------------------------------------------

export function systemConfFiles(etc = "/etc/systemd", others = ["/run/systemd", "/usr/local/lib/systemd", "/usr/lib/systemd", "/lib/systemd"]): SystemConfFile[] {
  const files: SystemConfFile[] = [];
  const main = readText(join(etc, "system.conf"));
  if (main !== null) files.push({ path: join(etc, "system.conf"), text: main });
  // Drop-ins: sorted by file name; for equal names the earlier directory (/etc first) wins.
  const byName = new Map<string, string>();
  for (const dir of [etc, ...others].map((d) => join(d, "system.conf.d"))) {
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith(".conf"));
    } catch {
      continue;
    }
    for (const n of names) if (!byName.has(n)) byName.set(n, join(dir, n));
  }
  for (const n of [...byName.keys()].sort()) {
    const p = byName.get(n) as string;
    const t = readText(p);
    if (t !== null) files.push({ path: p, text: t });
  }
  return files;
}

function watchdogDevices(): string[] {
  try {
    return readdirSync("/dev")
      .filter((n) => /^watchdog\d*$/.test(n))
      .map((n) => `/dev/${n}`);
  } catch {
    return [];
  }
}

// --- misc -------------------------------------------------------------------------------------

function readSecureBoot(): boolean | null {
  try {
    const b = readFileSync("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
    return b[b.length - 1] === 1;
  } catch {
    return null;
  }
}

function readSelinux(): "enforcing" | "permissive" | null {
  const t = readText("/sys/fs/selinux/enforce");
  if (t === null) return null;
  return t.trim() === "1" ? "enforcing" : "permissive";
}

/** Pure: CONFIG_NR_CPUS from a kernel config text. */
export function nrCpusFromConfig(text: string): number | null {
  const m = /^CONFIG_NR_CPUS=(\d+)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

function readKernelConfig(rel: string): string | null {
  const boot = readText(`/boot/config-${rel}`);
  if (boot !== null) return boot;
  try {
    return gunzipSync(readFileSync("/proc/config.gz")).toString("utf8");
  } catch {
    return null;
  }
}

function readIomem(): Iomem | null {
  const t = readText("/proc/iomem");
  if (t === null) return null;
  try {
    return parseIomem(t);
  } catch {
    return null;
  }
}

function safeProbeFileLoad(): KexecFileLoadSupport {
  try {
    return probeKexecFileLoad();
  } catch {
    return { kind: "unexpected", errno: -1 };
  }
}

/** How long preflight waits for each of PID 1's answers before asking again on a new connection. */
const PROBE_CALL_TIMEOUT_MS = 10_000;

/**
 * Unit properties of each service from PID 1 (private socket, else the system bus). These are
 * reads, so a call left unanswered is asked once more on a fresh connection. Seen once in the
 * guest (services scenario, 2026-12-01): PID 1 left a LoadUnit on a new connection unanswered
 * for 25 s, logging nothing, while the `nvwa check` seconds before had been answered at once;
 * that failed the whole update before anything was frozen.
 */
export async function probeServicesOverDbus(units: string[], connect: SystemdConnectOptions = {}): Promise<ServiceProperties[]> {
  const once = async (): Promise<ServiceProperties[]> => {
    const mgr = await SystemdManager.connect({ timeoutMs: 5000, callTimeoutMs: PROBE_CALL_TIMEOUT_MS, ...connect });
    try {
      const out: ServiceProperties[] = [];
      for (const u of units) out.push(await mgr.serviceProperties(u));
      return out;
    } finally {
      mgr.close();
    }
  };
  try {
    return await once();
  } catch (e) {
    if (!(isNvwaError(e) && (e.code === "dbus.timeout" || e.code === "dbus.disconnected"))) throw e;
    log.warn(`systemd did not answer (${e.message}); asking again on a new connection`);
    return await once();
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
}

/** A service's tree root for memory accounting; 0 when it has none (preflight reports that). */
function rootOrZero(p: ServiceProperties): number {
  try {
    return serviceRootPid(p);
  } catch {
    return 0;
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
  return {
    arch,
    runningRelease: rel,
    uid: process.getuid?.() ?? -1,
    pid: process.pid,
    cmdline: (readText("/proc/cmdline") ?? "").trim(),
    kexec: {
      core: readKexecLoaded() !== null,
      loaded: readKexecLoaded(),
      fileLoad: safeProbeFileLoad(),
      loadDisabled: readKexecLoadDisabled(),
      exe: config.server.kexecExe,
      exeExists: exeExists(config.server.kexecExe),
    },
    lockdown: readLockdown(),
    secureBoot: readSecureBoot(),
    selinux: readSelinux(),
    iomem: readIomem(),
    devPinmem: existsSync("/dev/pinmem"),
    nrCpus: kconfig === null ? null : nrCpusFromConfig(kconfig),
    kernel: opts.version ? probeKernel(opts.version, arch, opts.bootDir, opts.modulesDir) : null,
    criu: opts.skipCriuCheck ? null : probeCriuCheck(config.server.criuExe),
    pids: probePids(config.restore.pids),
    ...(services === undefined ? {} : { services, serviceTrees: probePids(services.map(rootOrZero).filter((p) => p > 0)) }),
    ...(servicesProbeError === undefined ? {} : { servicesProbeError }),
    criuDir: probeCriuDir(config.server.criuDir),
    lock: probeLock(config.server.criuDir),
    watchdog: mergeWatchdogSettings(systemConfFiles()),
    watchdogDevices: watchdogDevices(),
    capabilities: { journalStdio: false },
  };
}
