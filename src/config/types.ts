/** The validated, normalised configuration every other module receives. */
export interface RestoreConfig {
  /** Processes to checkpoint, by pid (each with its whole tree). */
  pids: number[];
  /** systemd services to checkpoint, normalised to full unit names ("redis.service"). */
  services: string[];
  restoreNet: boolean;
  enableQuickKexec: boolean;
  enablePinMemory: boolean;
  /** Keep images and pass criu -v4 (from `enable_debug_mode`, or the legacy `enbale_debug_mode`). */
  debug: boolean;
}

export interface ServerConfig {
  /** Where images, logs per target and the manifest live. Must survive the jump (not tmpfs). */
  criuDir: string;
  criuExe: string;
  kexecExe: string;
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
  systemdEtc: "/etc/systemd/system/",
  logDir: "/etc/nvwa/log/",
};

export const RESTORE_DEFAULTS: RestoreConfig = {
  pids: [],
  services: [],
  restoreNet: false,
  enableQuickKexec: false,
  enablePinMemory: false,
  debug: false,
};
