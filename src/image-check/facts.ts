/**
 * What scan.ts finds in an image tree and judge.ts judges: plain data, no functions. Paths named
 * `path` are as the image names them ("/boot/vmlinuz-6.1.0-18-amd64"); `hostPath`s are where
 * they are on this machine (under the tree's root), for messages that tell someone to chown.
 */
import type { ConfigProblem } from "../config/parse.ts";
import type { RestoreConfig, ServerConfig } from "../config/types.ts";
import type { KernelConfig } from "./kernel-config.ts";
import type { KexecTools } from "./requirements.ts";

/** An executable the image must hold: criu, nvwa, kexec-tools. */
export interface ExecutableFacts {
  path: string;
  /** null when it is there and executable; else what is wrong, as a phrase ("… does not exist in the image"). */
  problem: string | null;
}

export interface KernelImageFacts {
  /** "x86 bzImage (boot protocol 2.15, 64-bit)", or why nvwa could not load it. */
  format?: string;
  problem?: { message: string; hint: string };
}

export interface ImageKernel {
  /** What follows `vmlinuz-` (or the /usr/lib/modules/<ver>/ directory's name). */
  version: string;
  /** Why that is not a kernel release name (src/kexec/release.ts), or null. */
  versionProblem: string | null;
  /** dracut's rescue image (vmlinuz-0-rescue-<machine id>): not a kernel anyone updates to. */
  rescue: boolean;
  /** The kernel file, or null when the name found leads to no file (a dangling link). */
  kernel: string | null;
  triedKernels: string[];
  initrd: string | null;
  triedInitrds: string[];
  config: { path: string; options: KernelConfig } | null;
  /** The config file found but not usable (unreadable, not a kernel config). */
  configProblem: string | null;
  triedConfigs: string[];
  /** The kernel file as nvwa would load it; null when its architecture is unknown (no config). */
  image: KernelImageFacts | null;
}

/** One of the two YAML files, as load.ts would read it on the running system. */
export interface ConfigFileFacts {
  path: string;
  hostPath: string;
  /** absent: defaults apply (as load.ts treats a missing file). */
  present: boolean;
  /** Ownership, mode, reading and parsing problems, each with its hint. */
  problems: ConfigProblem[];
}

export interface UnitFacts {
  name: string;
  /** The unit file systemd would use (after resolving links in the tree), or null. */
  path: string | null;
  tried: string[];
  /** Linked to /dev/null (or empty): systemd refuses to start it. */
  masked: boolean;
}

export interface EnablementFacts {
  /** [Install]'s WantedBy= and RequiredBy= targets, as `<target>.wants` / `<target>.requires`. */
  wantsDirs: string[];
  /** Links (or copies) found in those directories that lead to a file. */
  links: string[];
  /** Links found that lead nowhere in the image, with where they point. */
  dangling: { link: string; target: string }[];
}

export interface ImageFacts {
  /** The tree's root on this machine (absolute). */
  root: string;
  kernels: ImageKernel[];
  /** The places looked in for kernels, for a message when there is none. */
  kernelDirs: string[];
  kexecTools: KexecTools;
  criu: ExecutableFacts & { fromConfig: boolean };
  /** nvwa's own unit; `enablement` is null when its file is missing, masked or unreadable. */
  unit: UnitFacts & { unreadable: boolean; enablement: EnablementFacts | null };
  nvwa: ExecutableFacts;
  restore: ConfigFileFacts & { config: RestoreConfig };
  server: ConfigFileFacts & { config: ServerConfig };
  services: UnitFacts[];
}
