/** The validated, normalised configuration every other module receives. */
export interface RestoreConfig {
  /** Processes to checkpoint, by pid (each with its whole tree). */
  pids: number[];
  /** systemd services to checkpoint, normalised to full unit names ("redis.service"). */
  services: string[];
  /**
   * podman containers to checkpoint, by name or id as written (src/container/). Resolved to one
   * container each, and checked against pids and services, by the preflight: that needs podman.
   */
  containers: string[];
  restoreNet: boolean;
  enableQuickKexec: boolean;
  enablePinMemory: boolean;
  /**
   * Pre-dump each target's memory while it runs, so the freeze writes only what changed since
   * (src/update/pre-dump.ts). Needs soft-dirty (x86_64); elsewhere the dump is in full, and says so.
   */
  enablePreDump: boolean;
  /**
   * Restore each target before its private memory is back: criu's lazy-pages daemon copies it in
   * after the process runs again (src/restore/lazy.ts). Off by default: a daemon that dies early
   * leaves pages reading as zeros, so nvwa kills such a tree and reports it.
   */
  enableLazyRestore: boolean;
  /** Keep images and pass criu -v4 (from `enable_debug_mode`, or the legacy `enbale_debug_mode`). */
  debug: boolean;
}

export type KexecLoaderChoice = "auto" | "kexec_exe";

export interface ServerConfig {
  /** Where images, logs per target and the manifest live. Must survive the jump (not tmpfs). */
  criuDir: string;
  criuExe: string;
  kexecExe: string;
  /**
   * "auto": the kernel's own loaders (kexec_file_load; on arm64 kexec_load natively where that is
   * missing or for quick kexec; kexec-tools only on x86_64 without kexec_file_load or for quick
   * kexec). "kexec_exe": always kexec-tools, the escape hatch.
   */
  kexecLoader: KexecLoaderChoice;
  systemdEtc: string;
  logDir: string;
}

export interface NvwaConfig {
  restore: RestoreConfig;
  server: ServerConfig;
  /** Absolute paths of the files read (absent files are listed as null: defaults applied). */
  files: { restore: string | null; server: string | null };
}

export const DEFAULT_CONFIG_DIR = "/etc/nvwa";
export const RESTORE_FILE = "nvwa-restore.yaml";
export const SERVER_FILE = "nvwa-server.yaml";

export const SERVER_DEFAULTS: ServerConfig = {
  criuDir: "/var/nvwa/running/",
  criuExe: "/usr/sbin/criu",
  kexecExe: "/usr/sbin/kexec",
  kexecLoader: "auto",
  systemdEtc: "/etc/systemd/system/",
  logDir: "/etc/nvwa/log/",
};

export const RESTORE_DEFAULTS: RestoreConfig = {
  pids: [],
  services: [],
  containers: [],
  restoreNet: false,
  enableQuickKexec: false,
  enablePinMemory: false,
  enablePreDump: false,
  enableLazyRestore: false,
  debug: false,
};
