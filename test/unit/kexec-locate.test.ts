/** Version validation, /boot lookup and the kexec_exe argv and runner. */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError } from "../../src/errors.ts";
import { kexecExeLoadArgv, kexecExeUnloadArgv, runKexecExe } from "../../src/kexec/kexec-exe.ts";
import { locateKernel } from "../../src/kexec/locate.ts";
import { assertRelease, releaseProblem } from "../../src/kexec/release.ts";

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isNvwaError(e) ? e.code : "not-an-NvwaError";
  }
  return undefined;
}

describe("kernel versions", () => {
  test("real release strings pass", () => {
    for (const v of ["6.1.0-18-amd64", "6.12.117+deb13-arm64", "5.10.0-136.12.0.86.oe2203sp1.aarch64", "6.5.6-300.fc39.x86_64", "4.19.90-2102.2.0.0062.ctl2.x86_64", "6.8.0-rc3~bpo"]) {
      expect(releaseProblem(v)).toBeNull();
    }
  });
  test("paths, dots, odd characters and non-releases are refused as usage errors", () => {
    expect(releaseProblem("../../etc/passwd")).toContain("'/'");
    expect(releaseProblem("6.1..0")).toContain("'..'");
    expect(releaseProblem("6.1.0 amd64")).toContain('" "');
    expect(releaseProblem("6.1.0;reboot")).toContain('";"');
    expect(releaseProblem("latest")).toContain("start with a digit");
    expect(releaseProblem("")).toBe("it is empty");
    expect(releaseProblem(`6${"x".repeat(64)}`)).toContain("at most 64");
    let exit: number | undefined;
    try {
      assertRelease("a/b");
    } catch (e) {
      if (isNvwaError(e)) exit = e.exitCode;
    }
    expect(exit).toBe(2);
  });
});

describe("locateKernel", () => {
  const withBoot = (files: string[], f: (boot: string, mods: string) => void): void => {
    const root = mkdtempSync(join(tmpdir(), "nvwa-locate-"));
    const boot = join(root, "boot");
    const mods = join(root, "modules");
    try {
      for (const name of files) {
        const p = join(root, name);
        mkdirSync(join(p, ".."), { recursive: true });
        writeFileSync(p, "x");
      }
      mkdirSync(boot, { recursive: true });
      f(boot, mods);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };

  test("the seed's naming first, Debian's initrd.img as fallback", () => {
    withBoot(["boot/vmlinuz-6.6.0", "boot/initramfs-6.6.0.img", "boot/initrd.img-6.6.0"], (boot, mods) => {
      expect(locateKernel("6.6.0", { bootDir: boot, modulesDir: mods }).initrdPath).toBe(join(boot, "initramfs-6.6.0.img"));
    });
    withBoot(["boot/vmlinuz-6.1.0-18-amd64", "boot/initrd.img-6.1.0-18-amd64"], (boot, mods) => {
      expect(locateKernel("6.1.0-18-amd64", { bootDir: boot, modulesDir: mods })).toEqual({
        version: "6.1.0-18-amd64",
        kernelPath: join(boot, "vmlinuz-6.1.0-18-amd64"),
        initrdPath: join(boot, "initrd.img-6.1.0-18-amd64"),
      });
    });
  });

  test("/usr/lib/modules/<ver>/vmlinuz when /boot has no image", () => {
    withBoot(["modules/7.2.13+deb14-arm64/vmlinuz", "boot/initrd.img-7.2.13+deb14-arm64"], (boot, mods) => {
      expect(locateKernel("7.2.13+deb14-arm64", { bootDir: boot, modulesDir: mods }).kernelPath).toBe(join(mods, "7.2.13+deb14-arm64", "vmlinuz"));
    });
  });

  test("missing kernel or initramfs: usage errors listing the paths tried; allowNoInitrd loads without", () => {
    withBoot(["boot/vmlinuz-6.6.0"], (boot, mods) => {
      expect(codeOf(() => locateKernel("6.6.1", { bootDir: boot, modulesDir: mods }))).toBe("kexec.kernel-missing");
      expect(codeOf(() => locateKernel("6.6.0", { bootDir: boot, modulesDir: mods }))).toBe("kexec.initrd-missing");
      expect(locateKernel("6.6.0", { bootDir: boot, modulesDir: mods, allowNoInitrd: true }).initrdPath).toBeNull();
      expect(codeOf(() => locateKernel("../6.6.0", { bootDir: boot }))).toBe("kexec.bad-version");
    });
  });
});

describe("kexec_exe", () => {
  test("argv for the fallback and for quick kexec; unload", () => {
    const base = { exe: "/usr/sbin/kexec", kernelPath: "/boot/vmlinuz-6.1", initrdPath: "/boot/initrd.img-6.1", cmdline: 'root=/dev/vda1 dyndbg="a b"' };
    expect(kexecExeLoadArgv({ ...base, mode: "-c" })).toEqual(["/usr/sbin/kexec", "-l", "-c", "/boot/vmlinuz-6.1", "--initrd=/boot/initrd.img-6.1", '--command-line=root=/dev/vda1 dyndbg="a b"']);
    expect(kexecExeLoadArgv({ ...base, mode: "-q", initrdPath: null })).toEqual(["/usr/sbin/kexec", "-q", "/boot/vmlinuz-6.1", '--command-line=root=/dev/vda1 dyndbg="a b"']);
    expect(kexecExeUnloadArgv("/usr/sbin/kexec")).toEqual(["/usr/sbin/kexec", "-u"]);
  });

  test("a missing program and a failing program are reported with what they said", () => {
    expect(codeOf(() => runKexecExe(["/nonexistent/kexec", "-u"], "unload"))).toBe("kexec.exe-missing");
    try {
      runKexecExe(["/bin/sh", "-c", "echo 'kexec_load failed: Device or resource busy' >&2; exit 1"], "load /boot/vmlinuz-6.1");
      throw new Error("no error");
    } catch (e) {
      expect(isNvwaError(e) && e.code).toBe("kexec.exe-failed");
      expect((e as Error).message).toBe("/bin/sh failed to load /boot/vmlinuz-6.1: kexec_load failed: Device or resource busy");
    }
  });
});
