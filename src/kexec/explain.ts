/**
 * kexec_file_load errnos as sentences a person can act on. Pure: the caller says which image,
 * format and machine state were involved, this says what went wrong and what to do.
 */
import { ERRNO, errnoName } from "../../ffi/errno.ts";
import { NvwaError } from "../errors.ts";

export interface LoadContext {
  kernelPath: string;
  initrdPath: string | null;
  /** describeFormat() of what was handed to the kernel, e.g. "arm64 Image (little-endian, signed)". */
  format: string;
  /** Whether the bytes were unwrapped in user space (then they carry no signature). */
  unwrapped: boolean;
  /** /sys/kernel/security/lockdown mode, or null when unknown. */
  lockdown: string | null;
  /** /proc/sys/kernel/kexec_load_disabled, or null when unknown. */
  kexecLoadDisabled: boolean | null;
  kexecExe: string;
}

/** Pure: the NvwaError for a failed kexec_file_load. */
export function explainKexecFileLoad(e: number, ctx: LoadContext): NvwaError {
  const name = errnoName(e);
  const details = { call: "kexec_file_load", errno: e, errnoName: name, kernelPath: ctx.kernelPath, initrdPath: ctx.initrdPath, format: ctx.format };
  const err = (message: string, hint: string): NvwaError =>
    new NvwaError(`kexec.load.${name}`, `kexec_file_load of ${ctx.kernelPath} failed (${name}): ${message}`, { hint, details });
  const locked = ctx.lockdown !== null && ctx.lockdown !== "none";
  switch (e) {
    case ERRNO.ENOSYS:
      return err(
        "the running kernel was built without kexec_file_load (CONFIG_KEXEC_FILE is not set)",
        `nvwa falls back to the legacy loader: install kexec-tools so ${ctx.kexecExe} exists (it loads with \`kexec -c\`, i.e. kexec_load)`,
      );
    case ERRNO.EPERM: {
      if (ctx.kexecLoadDisabled) {
        return err(
          "kexec is disabled on this machine (/proc/sys/kernel/kexec_load_disabled is 1)",
          "the switch is one-way until the next boot; remove whatever sets kernel.kexec_load_disabled=1 (sysctl.d) and reboot once",
        );
      }
      if (locked) {
        return err(
          `the kernel is in lockdown (${ctx.lockdown}) and refused the image as unverified${ctx.unwrapped ? "; it was unwrapped from a compressed container, and a signature on the container does not cover the payload" : ""}`,
          ctx.unwrapped
            ? "under lockdown arm64 kernels must be installed as a signed raw Image; or disable Secure Boot/lockdown"
            : "install a kernel signed by a key the running kernel trusts (distribution-signed, or enrolled with mokutil), or disable Secure Boot/lockdown",
        );
      }
      return err(
        "not permitted: the process lacks CAP_SYS_BOOT (not root, or inside a container), or a security module refused it",
        "run nvwa as root on the host itself (nvwa.service does); check the audit log for an LSM denial",
      );
    }
    case ERRNO.EKEYREJECTED:
    case ERRNO.ENOKEY:
    case ERRNO.EBADMSG:
    case ERRNO.EKEYEXPIRED:
    case ERRNO.EKEYREVOKED:
      return err(
        e === ERRNO.ENOKEY
          ? "the image is signed with a key the running kernel does not know"
          : e === ERRNO.EBADMSG
            ? "the image's signature is malformed or does not match its contents"
            : "the image's signature was rejected",
        ctx.unwrapped
          ? "the image was unwrapped in user space; a signature on its container does not carry over — install a signed raw Image, or disable signature enforcement"
          : "install a kernel signed by a trusted key (distribution-signed or enrolled with mokutil), or boot without enforced kexec signatures (KEXEC_SIG_FORCE/lockdown)",
      );
    case ERRNO.EBUSY:
      return err(
        "another kexec load or unload is in progress",
        "wait for the other kexec (kdump's loader, another nvwa) to finish and retry",
      );
    case ERRNO.EINVAL:
    case ERRNO.ENOEXEC:
      return err(
        `the kernel rejected the image as ${ctx.format}`,
        "make sure the image matches this machine's architecture and was not truncated; on arm64 only a raw little-endian Image is accepted, which nvwa unwraps from gzip/EFI zboot",
      );
    case ERRNO.ENOMEM:
      return err(
        "not enough contiguous memory to stage the kernel and initramfs",
        "free memory (stop large processes or drop caches) and retry; a smaller initramfs helps too",
      );
    case ERRNO.EBADF:
      return err("the kernel or initramfs file descriptor was not readable", "this is a bug in nvwa; please report it");
    case ERRNO.EFBIG:
    case ERRNO.E2BIG:
      return err("the kernel, initramfs or command line is too large for the loader", "shrink the initramfs or the command line");
    default:
      return err("unexpected error from the kernel", "check `dmesg` for kexec messages");
  }
}
