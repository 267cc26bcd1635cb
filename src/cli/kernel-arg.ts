/**
 * `<kernel-version | --latest>`: `update` needs exactly one of the two, `check` takes at most
 * one. Pure; the version itself is checked by assertRelease where it is used.
 */
import { ExitCode, NvwaError } from "../errors.ts";

export type KernelArg = { kind: "version"; version: string } | { kind: "latest" } | { kind: "none" };

export function kernelArg(command: "update" | "check", version: string | undefined, latest: boolean): KernelArg {
  const given = version !== undefined && version !== "";
  if (given && latest) {
    throw new NvwaError("cli.usage", `\`nvwa ${command}\` takes a kernel version or --latest, not both`, {
      exitCode: ExitCode.usage,
      hint: `drop one: \`nvwa ${command} ${version}\` or \`nvwa ${command} --latest\``,
    });
  }
  if (given) return { kind: "version", version };
  if (latest) return { kind: "latest" };
  if (command === "update") {
    throw new NvwaError("cli.usage", "`nvwa update` needs <kernel-version> or --latest", {
      exitCode: ExitCode.usage,
      hint: "give the release as `uname -r` prints it for that kernel (ls /boot/vmlinuz-* lists them), or --latest for the newest installed one",
    });
  }
  return { kind: "none" };
}
