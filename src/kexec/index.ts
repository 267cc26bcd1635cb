/** The kexec side of nvwa: find, read, load and unload the new kernel; know whether one is loaded. */
export { defaultUnloader, loadKernel, planKernelLoad, unloadKernel, type KernelLoadPlan, type LoadedKernel, type LoadKernelOptions } from "./load.ts";
export { assertKexecLoaded, isKexecLoaded, readKexecLoaded, readLockdown } from "./state.ts";
export { composeCmdline, type CmdlineChanges, type ComposedCmdline } from "./cmdline.ts";
export { detectFormat, describeFormat, unwrapKernel, type ImageFormat } from "./format.ts";
export { chooseLoader, type Loader } from "./loader.ts";
export { locateKernel, candidatePaths } from "./locate.ts";
export { assertRelease, releaseProblem } from "./release.ts";
