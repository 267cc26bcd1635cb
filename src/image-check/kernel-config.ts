/**
 * A kernel's build configuration (/boot/config-<ver>, /usr/lib/modules/<ver>/config) as the
 * kernel's own scripts/kconfig writes it: `CONFIG_X=y`, `CONFIG_X=m`, `CONFIG_X=123`,
 * `CONFIG_X="text"` and `# CONFIG_X is not set`. Pure.
 */

/** An option's value: "y", "m", "n" (written as not set), or the text/number it was given. */
export type OptionValue = string;

export interface KernelConfig {
  /** Every option the file names, without the `CONFIG_` prefix ("KEXEC_FILE" → "y"). */
  readonly options: ReadonlyMap<string, OptionValue>;
}

const SET = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/;
const NOT_SET = /^# CONFIG_([A-Za-z0-9_]+) is not set$/;

/** Pure: the options of a .config text. Lines of any other shape (comments, blanks) are skipped. */
export function parseKernelConfig(text: string): KernelConfig {
  const options = new Map<string, OptionValue>();
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    const set = SET.exec(line);
    if (set !== null) {
      const value = set[2] ?? "";
      // Strings are written quoted with \" and \\ escaped; what matters is the text.
      options.set(set[1] ?? "", value.startsWith('"') && value.endsWith('"') && value.length >= 2 ? value.slice(1, -1).replace(/\\(["\\])/g, "$1") : value);
      continue;
    }
    const off = NOT_SET.exec(line);
    if (off !== null) options.set(off[1] ?? "", "n");
  }
  return { options };
}

/**
 * Whether the option is built in or a module. An option the file does not name counts as off: it
 * does not exist on that architecture or version (MEM_SOFT_DIRTY on arm64), or its dependencies
 * are off, and kconfig then writes nothing for it.
 */
export function isEnabled(c: KernelConfig, option: string): boolean {
  const v = c.options.get(option);
  return v === "y" || v === "m";
}

/** True when the file has at least one option: an empty or foreign file is not a kernel config. */
export function looksLikeKernelConfig(c: KernelConfig): boolean {
  return c.options.size > 0;
}

/** The architecture the kernel was built for, from its config; null when the config says neither. */
export function configArch(c: KernelConfig): "x64" | "arm64" | null {
  if (c.options.get("X86_64") === "y") return "x64";
  if (c.options.get("ARM64") === "y") return "arm64";
  return null;
}
