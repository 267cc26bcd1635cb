/**
 * Facts about the machine that preflight judges besides the kernel and the targets: the disk
 * under criu_dir, the update lock, systemd's watchdog settings, Secure Boot, SELinux, the kernel
 * config, /proc/iomem, kexec_file_load support. Only reads.
 */
import { readTextOrNull } from "../read-text.ts";
import { existsSync, readdirSync, readFileSync, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { probeKexecFileLoad, type KexecFileLoadSupport } from "../../ffi/kexec.ts";
import { parseIomem, type Iomem } from "../mem/iomem.ts";
import { lockHolder } from "../state/lock.ts";
import type { CriuDirFacts, LockFacts } from "./facts-types.ts";
import type { SystemConfFile } from "./preflight-watchdog.ts";

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
  const text = readTextOrNull(path);
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
  const main = readTextOrNull(join(etc, "system.conf"));
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
    const t = readTextOrNull(p);
    if (t !== null) files.push({ path: p, text: t });
  }
  return files;
}

export function watchdogDevices(): string[] {
  try {
    return readdirSync("/dev")
      .filter((n) => /^watchdog\d*$/.test(n))
      .map((n) => `/dev/${n}`);
  } catch {
    return [];
  }
}

// --- misc -------------------------------------------------------------------------------------

export function readSecureBoot(): boolean | null {
  try {
    const b = readFileSync("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
    return b[b.length - 1] === 1;
  } catch {
    return null;
  }
}

export function readSelinux(): "enforcing" | "permissive" | null {
  const t = readTextOrNull("/sys/fs/selinux/enforce");
  if (t === null) return null;
  return t.trim() === "1" ? "enforcing" : "permissive";
}

/** Pure: CONFIG_NR_CPUS from a kernel config text. */
export function nrCpusFromConfig(text: string): number | null {
  const m = /^CONFIG_NR_CPUS=(\d+)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

export function readKernelConfig(rel: string): string | null {
  const boot = readTextOrNull(`/boot/config-${rel}`);
  if (boot !== null) return boot;
  try {
    return gunzipSync(readFileSync("/proc/config.gz")).toString("utf8");
  } catch {
    return null;
  }
}

export function readIomem(): Iomem | null {
  const t = readTextOrNull("/proc/iomem");
  if (t === null) return null;
  try {
    return parseIomem(t);
  } catch {
    return null;
  }
}

export function safeProbeFileLoad(): KexecFileLoadSupport {
  try {
    return probeKexecFileLoad();
  } catch {
    return { kind: "unexpected", errno: -1 };
  }
}
