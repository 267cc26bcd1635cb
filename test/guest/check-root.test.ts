/**
 * `nvwa check --root` against real Debian kernel packages, without booting anything: the guest
 * images (build-image.sh, cached by their recipe's hash) hold two real Debian kernels each, with
 * their own /boot/config-<ver>. The files a check needs are copied out of the raw ext4 image with
 * `debugfs rdump` (no mount, no loop device), nvwa's unit and configs are installed into that
 * tree as its RPM would, the unit is enabled with the link `systemctl --root=DIR enable` writes
 * (systemctl itself is not among build/dev.sh's packages, so it is not run), and the real CLI
 * judges it.
 *
 * Both architectures: the arm64 image costs 10–12 minutes when it is not cached, but arm64.test.ts
 * in this same stage builds it anyway, so here it is a cache hit (0.1 s) whichever file runs first;
 * its kernels are the interesting ones (no kexec_file_load, no soft-dirty).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Check } from "../../src/update/preflight-types.ts";

const ROOT = join(import.meta.dir, "../..");
const MAIN = join(ROOT, "src/main.ts");
const BUN = process.execPath;

interface Image {
  arch: "x86_64" | "arm64";
  cache: string;
  kverOld: string;
  kverNew: string;
  tree: string;
}

const images: Partial<Record<Image["arch"], Image>> = {};
const made: string[] = [];

function run(cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (exit ${p.exitCode}): ${p.stderr.toString().slice(-2000)}`);
  return p.stdout.toString();
}

function readEnv(path: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

/** Copies `sources` (absolute paths in the raw ext4 image) into `dest`, owners and modes kept. */
function rdump(img: string, sources: string[], dest: string): void {
  mkdirSync(dest, { recursive: true });
  // debugfs prints its banner on stderr and exits 0 even when a path is missing: the tests below
  // find out through the check's rows, which is what they are about.
  run(["debugfs", "-R", `rdump ${sources.join(" ")} ${dest}`, img]);
}

function install(tree: string, source: string, path: string, mode: number): void {
  const p = join(tree, path);
  mkdirSync(dirname(p), { recursive: true });
  copyFileSync(source, p);
  chmodSync(p, mode);
  chownSync(p, 0, 0);
}

const WANTS_LINK = "etc/systemd/system/multi-user.target.wants/nvwa.service";

/**
 * What `systemctl --root=DIR enable nvwa.service` does for nvwa's unit (WantedBy=multi-user.target):
 * one absolute link. The RPM's %post runs `systemctl preset`; an image build enables it explicitly.
 */
function enable(tree: string): void {
  mkdirSync(dirname(join(tree, WANTS_LINK)), { recursive: true });
  symlinkSync("/usr/lib/systemd/system/nvwa.service", join(tree, WANTS_LINK));
}

/** The image's tree as a pipeline would have it before packing: the real files a check reads, and nvwa installed. */
function extract(arch: Image["arch"]): Image {
  const cache = run(["bash", join(ROOT, "test/guest/build-image.sh"), arch]).trim().split("\n").pop() ?? "";
  const env = readEnv(join(cache, "kernels.env"));
  const img = join(cache, "rootfs.img");
  const tree = mkdtempSync(join(tmpdir(), `nvwa-image-${arch}-`));
  made.push(tree);
  rdump(img, ["/boot", "/bin", "/lib", "/sbin"], tree); // the kernels, and merged /usr's top links
  rdump(img, ["/usr/sbin/criu", "/usr/sbin/kexec"], join(tree, "usr/sbin"));
  rdump(img, ["/usr/lib/systemd/system"], join(tree, "usr/lib/systemd"));
  rdump(img, ["/etc/systemd/system"], join(tree, "etc/systemd"));
  // What nvwa's RPM installs (rpm/nvwa.spec %files); the executable itself is a stand-in, since
  // the check only looks for it.
  writeFileSync(join(tree, "nvwa-stand-in"), "#!/bin/sh\nexit 0\n");
  install(tree, join(tree, "nvwa-stand-in"), "usr/bin/nvwa", 0o755);
  rmSync(join(tree, "nvwa-stand-in"));
  install(tree, join(ROOT, "rpm/nvwa.service"), "usr/lib/systemd/system/nvwa.service", 0o644);
  install(tree, join(ROOT, "rpm/nvwa-restore.yaml"), "etc/nvwa/nvwa-restore.yaml", 0o640);
  install(tree, join(ROOT, "rpm/nvwa-server.yaml"), "etc/nvwa/nvwa-server.yaml", 0o640);
  mkdirSync(join(tree, "etc/nvwa/log"), { mode: 0o700 });
  enable(tree);
  return { arch, cache, kverOld: env.KVER_OLD ?? "", kverNew: env.KVER_NEW ?? "", tree };
}

interface Out {
  code: number | null;
  stderr: string;
  ok: boolean;
  root: string;
  checks: Check[];
}

function check(tree: string): Out {
  const p = Bun.spawnSync([BUN, MAIN, "check", "--root", tree, "--json"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, stderr: p.stderr.toString(), ...(JSON.parse(p.stdout.toString()) as { ok: boolean; root: string; checks: Check[] }) };
}

const row = (o: Out, id: string): Check => {
  const c = o.checks.find((x) => x.id === id);
  if (c === undefined) throw new Error(`no row ${id} in ${o.checks.map((x) => x.id).join(", ")}`);
  return c;
};

beforeAll(() => {
  images.x86_64 = extract("x86_64");
  images.arm64 = extract("arm64");
}, 1_800_000);

afterAll(() => {
  for (const t of made) rmSync(t, { recursive: true, force: true });
});

const image = (arch: Image["arch"]): Image => {
  const i = images[arch];
  if (i === undefined) throw new Error(`${arch} image not extracted`);
  return i;
};

describe("Debian bookworm amd64 (6.1 and 6.12 cloud kernels)", () => {
  test("both real kernels pass with everything nvwa uses; the whole image is ready (exit 0)", () => {
    const i = image("x86_64");
    expect(i.kverOld).toMatch(/^6\.1\./);
    expect(i.kverNew).toMatch(/^6\.12\./);
    const o = check(i.tree);
    expect(o.stderr).toBe("");
    expect(o.checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(o.code).toBe(0);
    expect(o.root).toBe(i.tree);
    for (const v of [i.kverOld, i.kverNew]) {
      const k = row(o, `kernel.${v}`);
      expect(k.status).toBe("ok");
      // the signed bzImage, the initramfs-tools file through build-image.sh's initramfs-<ver>.img link, Debian's config
      expect(k.detail).toBe(`/boot/vmlinuz-${v} (x86 bzImage (boot protocol 2.15, signed)), initramfs /boot/initramfs-${v}.img, config /boot/config-${v}; loads the next kernel with kexec_file_load`);
    }
    expect(row(o, "criu").detail).toBe("/usr/sbin/criu (criu_exe in nvwa-server.yaml)");
    expect(row(o, "unit").detail).toBe("/usr/lib/systemd/system/nvwa.service, enabled (/etc/systemd/system/multi-user.target.wants/nvwa.service)");
  });

  test("a real service listed (Redis, installed but disabled in the image) is found; a made-up one fails", () => {
    const i = image("x86_64");
    const restore = join(i.tree, "etc/nvwa/nvwa-restore.yaml");
    const before = readFileSync(restore);
    try {
      writeFileSync(restore, "services: [redis-server, no-such-daemon]\n");
      const o = check(i.tree);
      expect(row(o, "service.redis-server.service")).toMatchObject({ status: "ok", detail: "/usr/lib/systemd/system/redis-server.service" });
      expect(row(o, "service.no-such-daemon.service").status).toBe("fail");
      expect(o.code).toBe(3);
    } finally {
      writeFileSync(restore, before);
    }
  });

  test("nvwa.service disabled (its link removed, as `systemctl --root disable` does): the unit row fails, exit 3; enabled again, exit 0", () => {
    const i = image("x86_64");
    rmSync(join(i.tree, WANTS_LINK));
    try {
      const o = check(i.tree);
      expect(o.checks.filter((c) => c.status !== "ok").map((c) => c.id)).toEqual(["unit"]);
      expect(row(o, "unit").fix).toBe(`systemctl --root=${i.tree} enable nvwa.service`);
      expect(o.code).toBe(3);
    } finally {
      enable(i.tree);
    }
    expect(check(i.tree).code).toBe(0);
  });
});

describe("Debian bookworm arm64 (6.1 and 6.12 cloud kernels)", () => {
  test("both real kernels pass with warnings: nvwa's own kexec_load (the image has no kexec-tools), no soft-dirty on arm64 (exit 0)", () => {
    const i = image("arm64");
    expect(existsSync(join(i.tree, "usr/sbin/kexec"))).toBe(false);
    const o = check(i.tree);
    expect(o.stderr).toBe("");
    expect(o.checks.filter((c) => c.status === "fail")).toEqual([]);
    expect(o.code).toBe(0);
    for (const v of [i.kverOld, i.kverNew]) {
      const k = row(o, `kernel.${v}`);
      expect(k.status).toBe("warn");
      expect(k.detail).toStartWith(`/boot/vmlinuz-${v} (arm64 Image`);
      expect(k.detail).toContain(`initramfs /boot/initramfs-${v}.img, config /boot/config-${v}; loads the next kernel with kexec_load; `);
      expect(k.detail).toContain("CONFIG_KEXEC_FILE is not set: no kexec_file_load: nvwa loads the next kernel with kexec_load itself (no kexec-tools needed), which lockdown (Secure Boot) refuses");
      expect(k.detail).toContain("CONFIG_MEM_SOFT_DIRTY is not set: no incremental pre-dump: the whole memory is written while frozen (nvwa always dumps in full today; pre-dump is planned) (arm64 has no soft-dirty tracking)");
      // and nothing else: checkpoint/restore, nftables, userfaultfd and sock_diag are all there
      expect(k.detail.match(/is not set/g)?.length).toBe(2);
    }
    expect(o.checks.filter((c) => c.status === "warn").map((c) => c.id)).toEqual([`kernel.${i.kverOld}`, `kernel.${i.kverNew}`]);
  });

  test("with kexec_loader: kexec_exe and no kexec-tools in the image the same kernels cannot load anything: fail, exit 3", () => {
    const i = image("arm64");
    const server = join(i.tree, "etc/nvwa/nvwa-server.yaml");
    const saved = readFileSync(server, "utf8");
    writeFileSync(server, `${saved.replace(/^kexec_loader: .*$/m, "")}kexec_loader: kexec_exe\n`);
    try {
      const o = check(i.tree);
      expect(row(o, `kernel.${i.kverOld}`).status).toBe("fail");
      expect(row(o, `kernel.${i.kverNew}`).detail).toContain("the fallback /usr/sbin/kexec (kexec-tools, kexec_load) is not in the image");
      expect(o.code).toBe(3);
    } finally {
      writeFileSync(server, saved);
    }
  });
});
