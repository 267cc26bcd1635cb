/**
 * Everything preflight looks at, probed once by probeFacts() (src/update/facts.ts) and judged
 * by the pure checks in preflight.ts. Tests build these by hand from fixtures.
 */
import type { ContainerFacts } from "../container/facts.ts";
import type { Arch } from "../../ffi/arch.ts";
import type { KexecFileLoadSupport } from "../../ffi/kexec.ts";
import type { Iomem } from "../mem/iomem.ts";
import type { ServiceProperties } from "../systemd/units.ts";
import type { WatchdogSettings } from "./preflight-watchdog.ts";

export type KernelImageFacts =
  | {
      ok: true;
      /** "EFI zboot image (gzip payload) → arm64 Image (little-endian)". */
      format: string;
      unwrapped: string[];
      /** Bytes of the image as handed to the kernel. */
      bytes: number;
      /** Authenticode signature present on what is handed to the kernel; null: not a PE file. */
      signed: boolean | null;
    }
  | { ok: false; message: string; hint?: string };

export interface KernelFacts {
  version: string;
  /** Why the version string itself is refused, or null. */
  versionProblem: string | null;
  kernelPath: string | null;
  initrdPath: string | null;
  triedKernels: string[];
  triedInitrds: string[];
  /** null when there is no kernel file to look at. */
  image: KernelImageFacts | null;
  initrdBytes: number | null;
}

export interface PidFacts {
  pid: number;
  alive: boolean;
  zombie: boolean;
  /** A kernel thread (PF_KTHREAD): there is no user space to checkpoint. */
  kernelThread: boolean;
  comm: string | null;
  /** The pid and all its descendants (what criu dumps). */
  treePids: number[];
  rssBytes: number;
}

export interface CriuCheckFacts {
  exe: string;
  exists: boolean;
  exitCode: number | null;
  output: string;
  timedOut: boolean;
  /** `criu check --feature mem_dirty_track` passed (asked only with enable_pre_dump; else null). */
  memTrack: boolean | null;
  /** `criu check --feature uffd-noncoop` passed (asked only with enable_lazy_restore). */
  uffd?: boolean;
}

export interface CriuDirFacts {
  path: string;
  /** The path itself or its nearest existing ancestor (the directory is created on first use). */
  probedPath: string;
  fsType: string;
  freeBytes: number | null;
}

export interface LockFacts {
  path: string;
  exists: boolean;
  /** The pid written in it, when one could be read. */
  pid: number | null;
  alive: boolean | null;
}

export interface KexecFacts {
  /** /sys/kernel/kexec_loaded exists. */
  core: boolean;
  loaded: boolean | null;
  /** nvwa's last update as its manifest records it (null: none, or unreadable), to tell nvwa's own loaded kernel from another's. */
  nvwaUpdate: { updateId: string; phase: string; loader?: string; sameBoot: boolean } | null;
  fileLoad: KexecFileLoadSupport;
  loadDisabled: boolean | null;
  exe: string;
  exeExists: boolean;
  /** /sys/firmware/fdt exists: the tree the native arm64 loader hands on. */
  firmwareFdt: boolean;
}

export interface Facts {
  arch: Arch;
  runningRelease: string;
  uid: number;
  pid: number;
  cmdline: string;
  kexec: KexecFacts;
  /** Active lockdown mode or null when the lockdown LSM is absent. */
  lockdown: string | null;
  secureBoot: boolean | null;
  /** "enforcing" / "permissive", or null when SELinux is not enabled. */
  selinux: "enforcing" | "permissive" | null;
  iomem: Iomem | null;
  devPinmem: boolean;
  nrCpus: number | null;
  /** null when `nvwa check` was run without a version. */
  kernel: KernelFacts | null;
  /** null when the criu check was not run. */
  criu: CriuCheckFacts | null;
  pids: PidFacts[];
  /** The process trees of the configured services (MainPID, or a oneshot's cgroup tree). */
  serviceTrees?: PidFacts[];
  /** undefined: systemd could not be asked (servicesProbeError says why); reported as unchecked. */
  services?: ServiceProperties[];
  servicesProbeError?: string;
  /** By unit: the namespaces (mnt, net, …) its main process does not share with nvwa. */
  serviceNamespaces?: Record<string, string[]>;
  /** Asked only with containers: configured (src/container/facts.ts). */
  containers?: ContainerFacts;
  criuDir: CriuDirFacts;
  lock: LockFacts;
  watchdog: WatchdogSettings;
  watchdogDevices: string[];
  capabilities: {
    /** Services logging to the journal can be checkpointed (journal stream handover implemented). */
    journalStdio: boolean;
  };
}
