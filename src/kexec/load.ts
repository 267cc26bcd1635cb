/**
 * Loading and unloading the new kernel. planKernelLoad() decides everything (files, format,
 * command line, loader) and changes nothing; loadKernel() carries the plan out and reads
 * /sys/kernel/kexec_loaded back; unloadKernel() undoes it on rollback.
 */
import { closeSync, existsSync, openSync, readFileSync, statSync } from "node:fs";
import { currentArch, type Arch } from "../../ffi/arch.ts";
import { kexecFileLoad, kexecFileUnload, probeKexecFileLoad, type KexecFileLoadSupport } from "../../ffi/kexec.ts";
import { SyscallError } from "../../ffi/libc.ts";
import { closeFd, memfdFromBytes, memfdPath } from "../../ffi/memfd.ts";
import type { KexecLoaderChoice } from "../config/types.ts";
import { NvwaError } from "../errors.ts";
import { cpuParkRange, QUICK_KEXEC_REGION } from "../mem/accel.ts";
import { findRegions, type Iomem, type Range } from "../mem/iomem.ts";
import { describeLayout, loadArm64Native, readRootIomem, unloadArm64Native } from "./arm64/load.ts";
import { ignoreNotes, note, type OnNote } from "../note.ts";
import { composeCmdline, type CmdlineChanges } from "./cmdline.ts";
import { explainKexecFileLoad } from "./explain.ts";
import { unwrapKernel } from "./format.ts";
import { exeExists, kexecExeLoadArgv, kexecExeUnloadArgv, runKexecExe } from "./kexec-exe.ts";
import { chooseLoader, type Loader } from "./loader.ts";
import { locateKernel, type LocateOptions } from "./locate.ts";
import { FIRMWARE_FDT, KEXEC_LOADED_PATH, readKexecLoaded, readKexecLoadDisabled, readLockdown } from "./state.ts";

export interface LoadKernelOptions extends LocateOptions {
  version: string;
  append?: CmdlineChanges["append"];
  remove?: CmdlineChanges["remove"];
  /** openEuler quick kexec (enable_quick_kexec): kexec_load with KEXEC_QUICK (natively on arm64, kexec_exe -q elsewhere). */
  quick?: boolean;
  kexecExe: string;
  /** nvwa-server.yaml kexec_loader (default "auto"). */
  kexecLoader?: KexecLoaderChoice;
  /** The running command line; read from /proc/cmdline when absent. */
  currentCmdline?: string;
  arch?: Arch;
  /** Probed when absent. */
  fileLoad?: KexecFileLoadSupport;
  /** What is loaded, with which loader and why; the command line used. */
  onNote?: OnNote;
}

export interface KernelLoadPlan {
  loader: Loader;
  /** Why this loader, in one sentence (shown by `nvwa check` and logged on load). */
  loaderReason: string;
  version: string;
  kernelPath: string;
  initrdPath: string | null;
  /** e.g. "arm64 Image (little-endian, signed)" or "EFI zboot image (gzip payload) → arm64 Image (…)". */
  format: string;
  /** Layers removed in user space; non-empty means the kernel gets a memfd, not the file. */
  unwrapped: string[];
  cmdline: string;
  removedParams: string[];
  unmatchedRemovals: string[];
  kernelBytes: number;
  initrdBytes: number;
  kexecExe: string;
  quick: boolean;
}

export interface LoadedKernel {
  loader: Loader;
  kernelPath: string;
  initrdPath: string | null;
  format: string;
  cmdline: string;
}

interface PreparedPlan {
  plan: KernelLoadPlan;
  image: Uint8Array;
}

function fileSize(path: string | null): number {
  if (path === null) return 0;
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function readKernelFile(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new NvwaError("kexec.kernel-unreadable", `cannot read ${path}: ${err.code ?? err.message}`, {
      hint: "run nvwa as root; check the file's permissions",
      cause: e,
      details: { path },
    });
  }
}

function prepare(opts: LoadKernelOptions): PreparedPlan {
  const files = locateKernel(opts.version, opts);
  const arch = opts.arch ?? currentArch();
  const raw = readKernelFile(files.kernelPath);
  const u = unwrapKernel(raw, arch, files.kernelPath);
  const current = opts.currentCmdline ?? readFileSync("/proc/cmdline", "utf8").trim();
  const composed = composeCmdline(current, { append: opts.append, remove: opts.remove });
  const choice = chooseLoader({
    arch,
    prefer: opts.kexecLoader ?? "auto",
    firmwareFdt: existsSync(FIRMWARE_FDT),
    kexecCore: readKexecLoaded() !== null,
    fileLoad: opts.fileLoad ?? probeKexecFileLoad(),
    quick: opts.quick ?? false,
    kexecExe: opts.kexecExe,
    kexecExeExists: exeExists(opts.kexecExe),
    lockdown: readLockdown(),
    kexecLoadDisabled: readKexecLoadDisabled(),
  });
  if (!choice.ok) throw choice.error;
  return {
    image: u.image,
    plan: {
      loader: choice.loader,
      loaderReason: choice.reason,
      version: files.version,
      kernelPath: files.kernelPath,
      initrdPath: files.initrdPath,
      format: u.description,
      unwrapped: u.unwrapped,
      cmdline: composed.cmdline,
      removedParams: composed.removed,
      unmatchedRemovals: composed.unmatched,
      kernelBytes: u.image.length,
      initrdBytes: fileSize(files.initrdPath),
      kexecExe: opts.kexecExe,
      quick: opts.quick ?? false,
    },
  };
}

/** Decides how the kernel would be loaded, without loading it. Throws what loadKernel would. */
export function planKernelLoad(opts: LoadKernelOptions): KernelLoadPlan {
  return prepare(opts).plan;
}

function openOrThrow(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new NvwaError("kexec.file-unreadable", `cannot open ${path}: ${err.code ?? err.message}`, { hint: "run nvwa as root", cause: e, details: { path } });
  }
}

function loadNative(p: KernelLoadPlan, image: Uint8Array): void {
  // A file that needed no unwrapping is passed as itself, so IMA and signature checks see the
  // real file; an unwrapped image goes through a memfd and never touches the disk.
  const kernelFd = p.unwrapped.length > 0 ? memfdFromBytes(`nvwa-kernel-${p.version}`, image) : openOrThrow(p.kernelPath);
  let initrdFd: number | null = null;
  try {
    initrdFd = p.initrdPath === null ? null : openOrThrow(p.initrdPath);
    kexecFileLoad({ kernelFd, initrdFd, cmdline: p.cmdline });
  } catch (e) {
    if (e instanceof SyscallError) {
      throw explainKexecFileLoad(e.errno, {
        kernelPath: p.kernelPath,
        initrdPath: p.initrdPath,
        format: p.format,
        unwrapped: p.unwrapped.length > 0,
        lockdown: readLockdown(),
        kexecLoadDisabled: readKexecLoadDisabled(),
        kexecExe: p.kexecExe,
      });
    }
    throw e;
  } finally {
    if (initrdFd !== null) closeSync(initrdFd);
    closeFd(kernelFd);
  }
}

function loadWithExe(p: KernelLoadPlan, image: Uint8Array, onNote: OnNote): void {
  const memfd = p.unwrapped.length > 0 ? memfdFromBytes(`nvwa-kernel-${p.version}`, image) : null;
  try {
    const argv = kexecExeLoadArgv({
      exe: p.kexecExe,
      mode: p.loader === "kexec_exe -q" ? "-q" : "-c",
      kernelPath: memfd === null ? p.kernelPath : memfdPath(memfd),
      initrdPath: p.initrdPath,
      cmdline: p.cmdline,
    });
    runKexecExe(argv, `load ${p.kernelPath}`, onNote);
  } finally {
    if (memfd !== null) closeFd(memfd);
  }
}

/** The region quick kexec loads into (its size was checked by the preflight). */
function quickRegion(iomem: Iomem): Range {
  const region = findRegions(iomem, QUICK_KEXEC_REGION)[0];
  if (region === undefined) {
    throw new NvwaError("kexec.quick-region-missing", `quick kexec is enabled but /proc/iomem has no "${QUICK_KEXEC_REGION}" region`, {
      hint: "boot with quickkexec=<size> on an openEuler kernel with CONFIG_QUICK_KEXEC, or set enable_quick_kexec: false",
    });
  }
  return region;
}

function loadArm64(p: KernelLoadPlan, image: Uint8Array, currentCmdline: string, onNote: OnNote): void {
  const park = cpuParkRange({ cmdline: currentCmdline, nrCpus: null });
  const iomem = readRootIomem();
  const load = loadArm64Native({
    image,
    iomem,
    initrdPath: p.initrdPath,
    cmdline: p.cmdline,
    kernelPath: p.kernelPath,
    quickRegion: p.quick ? quickRegion(iomem) : null,
    avoid: park === null ? [] : [park],
  });
  onNote(
    note(
      "info",
      `kexec_load segments: ${describeLayout(load)}; entry stub at 0x${load.entry.toString(16)}; device tree ${load.changes.uefi ? "from UEFI (linux,uefi-* kept)" : load.memoryNodes ? "with /memory nodes" : "without /memory nodes"}, fresh kaslr-seed and rng-seed${load.changes.dropped.length > 0 ? `, dropped ${load.changes.dropped.join(", ")}` : ""}`,
    ),
  );
}

/** Carries out a plan made by planKernelLoad (or made here when given options). */
export function loadKernel(opts: LoadKernelOptions): LoadedKernel {
  const { plan, image } = prepare(opts);
  const onNote = opts.onNote ?? ignoreNotes;
  if (readKexecLoaded() === true) onNote(note("warn", "a kernel is already loaded for kexec; it will be replaced"));
  onNote(note("info", `loading ${plan.kernelPath} (${plan.format}) with ${plan.loader}: ${plan.loaderReason}`));
  if (plan.loader === "kexec_file_load") loadNative(plan, image);
  else if (plan.loader === "kexec_load") loadArm64(plan, image, opts.currentCmdline ?? readFileSync("/proc/cmdline", "utf8").trim(), onNote);
  else loadWithExe(plan, image, onNote);
  if (readKexecLoaded() !== true) {
    throw new NvwaError("kexec.not-loaded", `${plan.loader} reported success but ${KEXEC_LOADED_PATH} does not read 1`, {
      hint: "another tool may have unloaded it at the same time (kdump, a kexec-load service); check `dmesg`",
      details: { loader: plan.loader, kernelPath: plan.kernelPath },
    });
  }
  onNote(note("info", `kernel ${plan.version} loaded with ${plan.loader}; command line: ${plan.cmdline}`));
  return { loader: plan.loader, kernelPath: plan.kernelPath, initrdPath: plan.initrdPath, format: plan.format, cmdline: plan.cmdline };
}

/**
 * The loader to unload with when nobody recorded which one loaded (`nvwa init` after a load by
 * hand or a lost manifest): the kernel's own where it has one. kexec_load with no segments
 * unloads whatever is loaded, as does kexec_file_load's UNLOAD.
 */
export function defaultUnloader(arch: Arch = currentArch()): Loader {
  if (probeKexecFileLoad().kind === "available") return "kexec_file_load";
  return arch === "arm64" ? "kexec_load" : "kexec_exe -c";
}

/** Unloads the kernel loaded for kexec (rollback). `kexecExe` is needed for the kexec_exe loaders. */
export function unloadKernel(loader: Loader, kexecExe?: string, onNote: OnNote = ignoreNotes): void {
  if (loader === "kexec_file_load" || loader === "kexec_load") {
    try {
      if (loader === "kexec_file_load") kexecFileUnload();
      else unloadArm64Native();
    } catch (e) {
      if (e instanceof SyscallError) {
        throw new NvwaError(`kexec.unload.${e.errnoName}`, `could not unload the kernel loaded for kexec (${loader === "kexec_load" ? "kexec_load with no segments" : "kexec_file_load UNLOAD"}: ${e.errnoName})`, {
          hint: "a reboot now would start the new kernel: unload it by hand with `kexec -u` before rebooting",
          cause: e,
          details: { errno: e.errno },
        });
      }
      throw e;
    }
  } else {
    if (kexecExe === undefined) {
      throw new NvwaError("internal.unload-without-exe", `unloadKernel(${loader}) needs the kexec_exe path`, { hint: "this is a bug in nvwa" });
    }
    runKexecExe(kexecExeUnloadArgv(kexecExe), "unload the kernel loaded for kexec", onNote);
  }
  if (readKexecLoaded() === true) {
    throw new NvwaError("kexec.still-loaded", `${KEXEC_LOADED_PATH} still reads 1 after unloading`, {
      hint: "a reboot now would start the new kernel: run `kexec -u` by hand and check again",
    });
  }
  onNote(note("info", "kexec kernel unloaded"));
}
