/**
 * The jump: the update's last step, the only one without an undo. Two ways into the loaded kernel:
 *
 *   orderly  systemd's kexec.target over D-Bus ("replace-irreversibly"): units stopped,
 *            filesystems unmounted, then systemd's own reboot(KEXEC). The default.
 *   fast     sync() + reboot(LINUX_REBOOT_CMD_KEXEC) from this process (ffi/reboot.ts), `--fast`.
 *
 * Both refuse unless a kernel is loaded: systemd silently reboots through the firmware when none is,
 * losing every checkpointed process. The fast jump ends the machine's current life from nvwa's own
 * process, so it sits behind a guard a test on a developer's host cannot satisfy by accident
 * (jumpRefusal): the environment must say NVWA_ALLOW_REBOOT=1 (the packaged nvwa.service sets it; a
 * shell, a test runner or CI does not), and the manifest on disk must be this update's, committed.
 */
import { readTextOrNull } from "../read-text.ts";
import { rebootKexecSyscall } from "../../ffi/reboot.ts";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import { assertKexecLoaded, readKexecLoaded } from "../kexec/state.ts";
import { parseManifest } from "../state/manifest.ts";
import type { SystemdManager } from "../systemd/manager.ts";

export interface JumpContext {
  env: Record<string, string | undefined>;
  /** Contents of the manifest, or null when it cannot be read. */
  manifestText: string | null;
  /** /sys/kernel/kexec_loaded: true/false, or null when the file does not exist. */
  kexecLoaded: boolean | null;
}

function refuse(why: string, hint: string, details: Record<string, unknown> = {}): NvwaError {
  return new NvwaError("reboot.refused", `refusing to reboot into the new kernel: ${why}`, { hint, exitCode: ExitCode.failed, details });
}

/** Pure: why the fast jump of update `updateId` must not happen, or null when every condition holds. */
export function jumpRefusal(updateId: string, manifestPath: string, ctx: JumpContext): NvwaError | null {
  if (ctx.env.NVWA_ALLOW_REBOOT !== "1") {
    return refuse(
      "NVWA_ALLOW_REBOOT=1 is not set in this process",
      "the jump is made by nvwa.service, which sets it; never set it in a shell on a machine you care about",
    );
  }
  if (ctx.manifestText === null) {
    return refuse(`the manifest ${manifestPath} cannot be read`, "an update must be committed before the jump", { manifestPath });
  }
  let m;
  try {
    m = parseManifest(ctx.manifestText, manifestPath);
  } catch (e) {
    return refuse(`the manifest is damaged: ${toNvwaError(e).message}`, "do not jump; roll back (nvwa init)", { manifestPath });
  }
  if (m.updateId !== updateId) {
    return refuse(`the manifest belongs to update ${m.updateId}, not ${updateId}`, "another update replaced this one; do not jump", { manifestPath });
  }
  // "jumping" is written just before the jump itself, so the restore side can tell it started.
  if (m.phase !== "committed" && m.phase !== "jumping") {
    return refuse(`update ${updateId} is in phase "${m.phase}", not "committed"`, "commit the checkpoint before jumping", { manifestPath, phase: m.phase });
  }
  if (ctx.kexecLoaded !== true) {
    return refuse(
      ctx.kexecLoaded === null ? "this kernel has no kexec support (/sys/kernel/kexec_loaded is missing)" : "no kernel is loaded for kexec (/sys/kernel/kexec_loaded is 0)",
      "load the new kernel first; jumping now would reboot through the firmware and lose every checkpointed process",
    );
  }
  return null;
}

/**
 * The fast jump. Returns only by throwing: the guard refused, or the syscall failed (then the
 * machine is still up and the update's commit undo restores the targets here).
 */
export function fastJump(updateId: string, manifestPath: string): never {
  const refusal = jumpRefusal(updateId, manifestPath, { env: process.env, manifestText: readTextOrNull(manifestPath), kexecLoaded: readKexecLoaded() });
  if (refusal) throw refusal;
  rebootKexecSyscall();
  throw new NvwaError("reboot.returned", "reboot(LINUX_REBOOT_CMD_KEXEC) returned without rebooting", {
    hint: "the loaded kernel may have been unloaded concurrently; check /sys/kernel/kexec_loaded and roll back",
  });
}

/** The orderly jump: queues kexec.target; systemd then stops everything, this daemon included. */
export async function orderlyJump(mgr: SystemdManager, opts: { kexecLoadedPath?: string } = {}): Promise<string> {
  assertKexecLoaded(opts.kexecLoadedPath);
  return mgr.startUnit("kexec.target", "replace-irreversibly");
}
