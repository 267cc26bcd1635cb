import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cmdlineBuffer } from "../../ffi/kexec.ts";
import { COMMAND_LINE_SIZE, composeCmdline, findParam, paramKey, tokenize } from "../../src/kexec/cmdline.ts";
import { isNvwaError } from "../../src/errors.ts";

const FIX = join(import.meta.dir, "../fixtures/iomem");
/** Real command lines: a GRUB-booted Debian one and this host's, which hands arguments to init after "--". */
const GRUB = "BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 root=UUID=0b7c2f3e-56f1-4c8e-9e0a-0f2d3c4b5a69 ro quiet crashkernel=384M-:128M";
const HOST = readFileSync(join(FIX, "x86_64-firecracker-vm.cmdline"), "utf8");

describe("composeCmdline", () => {
  test("drops BOOT_IMAGE and keeps the rest in order", () => {
    expect(composeCmdline(GRUB).cmdline).toBe("root=UUID=0b7c2f3e-56f1-4c8e-9e0a-0f2d3c4b5a69 ro quiet crashkernel=384M-:128M");
  });

  test("appends kernel parameters before the '--' that hands the rest to init", () => {
    const r = composeCmdline(HOST, { append: "nvwa.test=1 loglevel=7" });
    const [kernel, init] = r.cmdline.split(" -- ");
    expect(kernel?.endsWith("nvwa.test=1 loglevel=7")).toBe(true);
    expect(init?.startsWith("--firecracker-init")).toBe(true);
    expect(r.appended).toEqual(["nvwa.test=1", "loglevel=7"]);
  });

  test("removes by name (all values) or by exact name=value, treating - and _ alike", () => {
    const cur = "console=tty0 console=ttyS0,115200 quiet rcu-nocbs=1-3 panic=10";
    expect(composeCmdline(cur, { remove: "console" }).cmdline).toBe("quiet rcu-nocbs=1-3 panic=10");
    expect(composeCmdline(cur, { remove: "console=tty0" }).cmdline).toBe("console=ttyS0,115200 quiet rcu-nocbs=1-3 panic=10");
    const r = composeCmdline(cur, { remove: ["rcu_nocbs", "nosuch"] });
    expect(r.cmdline).toBe("console=tty0 console=ttyS0,115200 quiet panic=10");
    expect(r.removed).toEqual(["rcu-nocbs=1-3"]);
    expect(r.unmatched).toEqual(["nosuch"]);
  });

  test("remove then append replaces a value; an identical parameter is not added twice", () => {
    const r = composeCmdline("root=/dev/vda1 quiet panic=10", { remove: "panic", append: "panic=30 quiet" });
    expect(r.cmdline).toBe("root=/dev/vda1 quiet panic=30");
    expect(r.appended).toEqual(["panic=30"]);
  });

  test("quoted values with spaces survive as one token, quotes kept", () => {
    const cur = 'root=/dev/vda1 dyndbg="file drivers/usb/* +p" quiet';
    expect(tokenize(cur)).toEqual(["root=/dev/vda1", 'dyndbg="file drivers/usb/* +p"', "quiet"]);
    expect(composeCmdline(cur, { remove: "quiet" }).cmdline).toBe('root=/dev/vda1 dyndbg="file drivers/usb/* +p"');
    expect(paramKey('"dyndbg=a b"')).toBe("dyndbg");
  });

  test("refuses unbalanced quotes, '--' as a parameter and lines the kernel would truncate", () => {
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return isNvwaError(e) ? `${e.code}/${e.exitCode}` : "other";
      }
      return undefined;
    };
    expect(code(() => composeCmdline("quiet", { append: 'foo="bar' }))).toBe("kexec.bad-cmdline/2");
    expect(code(() => composeCmdline("quiet", { append: "--" }))).toBe("kexec.bad-cmdline/2");
    expect(code(() => composeCmdline("quiet", { append: `x=${"a".repeat(COMMAND_LINE_SIZE)}` }))).toBe("kexec.bad-cmdline/2");
    // 2047 bytes plus the NUL is exactly the limit.
    expect(composeCmdline("a".repeat(COMMAND_LINE_SIZE - 1)).cmdline.length).toBe(COMMAND_LINE_SIZE - 1);
  });

  test("the buffer handed to kexec_file_load is NUL-terminated and its length counts the NUL", () => {
    const { cmdline } = composeCmdline(GRUB, { append: "nvwa=é" });
    const buf = cmdlineBuffer(cmdline);
    expect(buf[buf.length - 1]).toBe(0);
    expect(buf.length).toBe(Buffer.byteLength(cmdline) + 1);
    expect(buf.subarray(0, -1).includes(0)).toBe(false);
  });
});

describe("findParam", () => {
  test("last occurrence wins and init's arguments are not kernel parameters", () => {
    expect(findParam("a=1 quickkexec=64M b quickkexec=128M", "quickkexec")).toBe("128M");
    expect(findParam("quiet", "quickkexec")).toBeNull();
    expect(findParam("quiet -- pinmemory=1G@0x0", "pinmemory")).toBeNull();
    expect(findParam("max-pin-pid-num=8", "max_pin_pid_num")).toBe("8");
    expect(findParam("nosmt", "nosmt")).toBe("");
  });
});
