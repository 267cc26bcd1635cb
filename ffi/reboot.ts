/**
 * reboot(LINUX_REBOOT_CMD_KEXEC): the fast jump into the loaded kernel. This is the one call in
 * nvwa that ends the machine's current life, so it sits behind a guard that a test on a
 * developer's host cannot satisfy by accident:
 *
 *   1. the environment must say NVWA_ALLOW_REBOOT=1 (the packaged nvwa.service sets it; a shell,
 *      a test runner or CI does not);
 *   2. the caller must name why: a committed update, proven by the manifest on disk having
 *      phase "committed" (or "jumping") and the same id, or a disposable machine, which additionally needs
 *      NVWA_DISPOSABLE_MACHINE=1 (only the QEMU guest harness sets it);
 *   3. /sys/kernel/kexec_loaded must read 1: without a loaded image the call would do nothing
 *      useful, and systemd's equivalent silently turns into a firmware reboot.
 *
 * Only then are filesystems synced (reboot(2) does not) and the syscall made.
 */
import { readFileSync } from "node:fs";
import { ExitCode, NvwaError } from "../src/errors.ts";
import { readKexecLoaded } from "../src/kexec/state.ts";
import { sys, syncAll } from "./libc.ts";

export const LINUX_REBOOT_MAGIC1 = 0xfee1dead;
export const LINUX_REBOOT_MAGIC2 = 672274793;
export const LINUX_REBOOT_CMD_KEXEC = 0x45584543;

export type RebootArming =
  | { kind: "committed-update"; manifestPath: string; updateId: string }
  | { kind: "disposable-machine" };

export interface RebootContext {
  env: Record<string, string | undefined>;
  /** Contents of the manifest, or null when it cannot be read. */
  manifestText: string | null;
  /** /sys/kernel/kexec_loaded: true/false, or null when the file does not exist. */
  kexecLoaded: boolean | null;
}

function refuse(why: string, hint: string, details: Record<string, unknown> = {}): NvwaError {
  return new NvwaError("reboot.refused", `refusing to reboot into the new kernel: ${why}`, {
    hint,
    exitCode: ExitCode.failed,
    details,
  });
}

/** Pure: the reason the guard refuses, or null when every condition holds. */
export function rebootRefusal(arming: RebootArming, ctx: RebootContext): NvwaError | null {
  if (ctx.env.NVWA_ALLOW_REBOOT !== "1") {
    return refuse(
      "NVWA_ALLOW_REBOOT=1 is not set in this process",
      "the jump is made by nvwa.service, which sets it; never set it in a shell on a machine you care about",
    );
  }
  if (arming.kind === "disposable-machine") {
    if (ctx.env.NVWA_DISPOSABLE_MACHINE !== "1") {
      return refuse(
        "asked to treat this as a disposable machine but NVWA_DISPOSABLE_MACHINE=1 is not set",
        "only test guests are disposable; a real update must pass its committed manifest",
      );
    }
  } else {
    if (ctx.manifestText === null) {
      return refuse(`the manifest ${arming.manifestPath} cannot be read`, "an update must be committed before the jump", {
        manifestPath: arming.manifestPath,
      });
    }
    let m: unknown;
    try {
      m = JSON.parse(ctx.manifestText);
    } catch {
      return refuse(`the manifest ${arming.manifestPath} is not valid JSON`, "the update state is damaged; roll back", {
        manifestPath: arming.manifestPath,
      });
    }
    const rec = (typeof m === "object" && m !== null ? m : {}) as Record<string, unknown>;
    const id = rec.id ?? rec.updateId;
    if (id !== arming.updateId) {
      return refuse(
        `the manifest belongs to update ${String(id)}, not ${arming.updateId}`,
        "another update replaced this one; do not jump",
        { manifestPath: arming.manifestPath },
      );
    }
    // "jumping" is written just before the jump itself, so the restore side can tell it started.
    if (rec.phase !== "committed" && rec.phase !== "jumping") {
      return refuse(`update ${arming.updateId} is in phase "${String(rec.phase)}", not "committed"`, "commit the checkpoint before jumping", {
        manifestPath: arming.manifestPath,
        phase: rec.phase,
      });
    }
  }
  if (ctx.kexecLoaded !== true) {
    return refuse(
      ctx.kexecLoaded === null ? "this kernel has no kexec support (/sys/kernel/kexec_loaded is missing)" : "no kernel is loaded for kexec (/sys/kernel/kexec_loaded is 0)",
      "load the new kernel first; jumping now would reboot through the firmware and lose every checkpointed process",
    );
  }
  return null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/**
 * Syncs and reboots into the loaded kernel. Returns only by throwing: the guard refused, or the
 * syscall failed (then the machine is still up and the caller must roll back).
 */
export function rebootKexec(arming: RebootArming): never {
  const refusal = rebootRefusal(arming, {
    env: process.env,
    manifestText: arming.kind === "committed-update" ? readOrNull(arming.manifestPath) : null,
    kexecLoaded: readKexecLoaded(),
  });
  if (refusal) throw refusal;
  syncAll();
  sys("reboot", [LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_KEXEC, null]);
  throw new NvwaError("reboot.returned", "reboot(LINUX_REBOOT_CMD_KEXEC) returned without rebooting", {
    hint: "the loaded kernel may have been unloaded concurrently; check /sys/kernel/kexec_loaded and roll back",
  });
}
