/**
 * Where the kernel and initramfs of a version live. The seed's naming (openEuler, Fedora,
 * dracut) is /boot/vmlinuz-<ver> + /boot/initramfs-<ver>.img; Debian's initramfs-tools writes
 * /boot/initrd.img-<ver>; newer Debian and kernel-install layouts keep the image in
 * /usr/lib/modules/<ver>/vmlinuz.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, NvwaError } from "../errors.ts";
import { assertRelease } from "./release.ts";

export interface KernelFiles {
  version: string;
  kernelPath: string;
  /** null when no initramfs exists and the caller allowed that. */
  initrdPath: string | null;
}

export interface Candidates {
  kernels: string[];
  initrds: string[];
}

/** Pure: the paths tried, in order of preference. */
export function candidatePaths(ver: string, bootDir = "/boot", modulesDir = "/usr/lib/modules"): Candidates {
  return {
    kernels: [join(bootDir, `vmlinuz-${ver}`), join(modulesDir, ver, "vmlinuz")],
    initrds: [join(bootDir, `initramfs-${ver}.img`), join(bootDir, `initrd.img-${ver}`), join(modulesDir, ver, "initrd")],
  };
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

export interface LocateOptions {
  bootDir?: string;
  modulesDir?: string;
  /** Load without an initramfs (KEXEC_FILE_NO_INITRAMFS) when none is found. */
  allowNoInitrd?: boolean;
}

export function locateKernel(ver: string, opts: LocateOptions = {}): KernelFiles {
  assertRelease(ver);
  const c = candidatePaths(ver, opts.bootDir, opts.modulesDir);
  const kernelPath = c.kernels.find(isFile);
  if (kernelPath === undefined) {
    throw new NvwaError("kexec.kernel-missing", `no kernel image for ${ver}: tried ${c.kernels.join(", ")}`, {
      hint: `install the kernel package for ${ver} first (ls ${opts.bootDir ?? "/boot"}/vmlinuz-* lists what is installed)`,
      exitCode: ExitCode.usage,
      details: { version: ver, tried: c.kernels },
    });
  }
  const initrdPath = c.initrds.find(isFile) ?? null;
  if (initrdPath === null && !opts.allowNoInitrd) {
    throw new NvwaError("kexec.initrd-missing", `no initramfs for ${ver}: tried ${c.initrds.join(", ")}`, {
      hint: `build it first: \`dracut --kver ${ver}\` (openEuler/Fedora) or \`update-initramfs -c -k ${ver}\` (Debian)`,
      exitCode: ExitCode.usage,
      details: { version: ver, tried: c.initrds },
    });
  }
  return { version: ver, kernelPath, initrdPath };
}
