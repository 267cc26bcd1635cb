/**
 * `nvwa check --root DIR` on real trees built under a temporary directory (as root: the trees
 * need files owned by root and by uid 1000): a complete image passes, and each tree that lacks
 * one thing shows that thing's row and exit 3. The real CLI is run as well, once as an
 * unprivileged user, and with this machine's own config dir pointed at a broken config, which
 * --root must not read. Real Debian kernels' configs are test/guest/check-root.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { runCheck } from "../../src/cli/check.ts";
import type { Check } from "../../src/update/preflight-types.ts";

const ROOT = join(import.meta.dir, "../..");
const MAIN = join(ROOT, "src/main.ts");
const BUN = process.execPath;
const OLD = "6.1.0-18-amd64";
const NEW = "6.12.9-amd64";

/** The options nvwa judges, as Debian's amd64 kernels have them. */
const CONFIG = [
  "CONFIG_X86_64=y",
  "CONFIG_KEXEC=y",
  "CONFIG_KEXEC_FILE=y",
  "# CONFIG_KEXEC_SIG_FORCE is not set",
  "CONFIG_CHECKPOINT_RESTORE=y",
  "CONFIG_NF_TABLES=m",
  "CONFIG_NF_TABLES_INET=y",
  "CONFIG_MEM_SOFT_DIRTY=y",
  "CONFIG_USERFAULTFD=y",
  "CONFIG_UNIX_DIAG=m",
  "CONFIG_INET_DIAG=m",
  "",
].join("\n");

/** The first bytes of an x86_64 bzImage as src/kexec/format.ts reads them: boot protocol 2.15, 64-bit entry. */
function bzImage(): Uint8Array {
  const b = new Uint8Array(4096);
  const dv = new DataView(b.buffer);
  dv.setUint16(0x1fe, 0xaa55, true);
  dv.setUint32(0x202, 0x53726448, true); // "HdrS"
  dv.setUint16(0x206, 0x020f, true);
  dv.setUint16(0x236, 1, true); // XLF_KERNEL_64
  return b;
}

const trees: string[] = [];
afterAll(() => {
  for (const t of trees) rmSync(t, { recursive: true, force: true });
});

function put(root: string, path: string, content: string | Uint8Array, mode = 0o644): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content);
  chmodSync(p, mode);
  chownSync(p, 0, 0);
}

function link(root: string, path: string, target: string): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  rmSync(p, { force: true });
  symlinkSync(target, p);
}

/**
 * A complete image as nvwa's RPM leaves it, with a merged /usr: one kernel in /boot (Debian's
 * layout, initramfs-tools' name), one in /usr/lib/modules/<ver>/ (kernel-install's), criu,
 * nvwa, its unit enabled by an absolute link as systemctl writes it, both configs root-owned
 * 0640, a listed service with its unit.
 */
function completeTree(): string {
  const root = mkdtempSync(join(tmpdir(), "nvwa-image-"));
  trees.push(root);
  chmodSync(root, 0o755);
  link(root, "lib", "usr/lib");
  link(root, "sbin", "usr/sbin");
  link(root, "bin", "usr/bin");
  put(root, `boot/vmlinuz-${OLD}`, bzImage());
  put(root, `boot/initrd.img-${OLD}`, "initrd");
  put(root, `boot/config-${OLD}`, CONFIG);
  put(root, `usr/lib/modules/${NEW}/vmlinuz`, bzImage());
  put(root, `usr/lib/modules/${NEW}/initrd`, "initrd");
  put(root, `usr/lib/modules/${NEW}/config`, CONFIG);
  put(root, "usr/sbin/criu", "#!/bin/sh\n", 0o755);
  put(root, "usr/sbin/kexec", "#!/bin/sh\n", 0o755);
  put(root, "usr/bin/nvwa", "#!/bin/sh\n", 0o755);
  put(root, "usr/lib/systemd/system/nvwa.service", readFileSync(join(ROOT, "rpm/nvwa.service")));
  link(root, "etc/systemd/system/multi-user.target.wants/nvwa.service", "/usr/lib/systemd/system/nvwa.service");
  put(root, "usr/lib/systemd/system/redis-server.service", "[Service]\nExecStart=/usr/bin/redis-server\n[Install]\nWantedBy=multi-user.target\n");
  put(root, "etc/nvwa/nvwa-restore.yaml", "pids: []\nservices: [redis-server]\nrestore_net: true\n", 0o640);
  put(root, "etc/nvwa/nvwa-server.yaml", readFileSync(join(ROOT, "rpm/nvwa-server.yaml")), 0o640);
  return root;
}

interface Result {
  code: number;
  ok: boolean;
  root: string;
  checks: Check[];
}

async function check(root: string): Promise<Result> {
  let out = "";
  const code = await runCheck({ root, json: true }, { write: (s) => void (out += s) });
  return { code, ...(JSON.parse(out) as Omit<Result, "code">) };
}

const row = (r: Result, id: string): Check => {
  const c = r.checks.find((x) => x.id === id);
  if (c === undefined) throw new Error(`no row ${id} in ${r.checks.map((x) => x.id).join(", ")}`);
  return c;
};

/** The rows that are not ok, as [id, status]. */
const notOk = (r: Result): [string, string][] => r.checks.filter((c) => c.status !== "ok").map((c) => [c.id, c.status]);

describe("a complete image", () => {
  test("passes: exit 0, every row ok", async () => {
    const root = completeTree();
    const r = await check(root);
    expect(notOk(r)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.ok).toBe(true);
    expect(r.root).toBe(root);
    expect(r.checks.map((c) => c.id)).toEqual([`kernel.${OLD}`, `kernel.${NEW}`, "criu", "unit", "nvwa", "config.restore", "config.server", "service.redis-server.service"]);
    expect(row(r, `kernel.${OLD}`).detail).toBe(
      `/boot/vmlinuz-${OLD} (x86 bzImage (boot protocol 2.15)), initramfs /boot/initrd.img-${OLD}, config /boot/config-${OLD}; loads the next kernel with kexec_file_load`,
    );
    expect(row(r, `kernel.${NEW}`).detail).toStartWith(`/usr/lib/modules/${NEW}/vmlinuz (x86 bzImage (boot protocol 2.15)), initramfs /usr/lib/modules/${NEW}/initrd, config /usr/lib/modules/${NEW}/config;`);
    expect(row(r, "unit").detail).toBe("/usr/lib/systemd/system/nvwa.service, enabled (/etc/systemd/system/multi-user.target.wants/nvwa.service)");
    expect(row(r, "criu").detail).toBe("/usr/sbin/criu (criu_exe in nvwa-server.yaml)");
    expect(row(r, "config.restore").detail).toBe("/etc/nvwa/nvwa-restore.yaml: valid: 1 service, restore_net on");
  });

  test("the real CLI: JSON with root, exit 0, this machine's config dir never read", () => {
    const root = completeTree();
    // A broken config where $NVWA_CONFIG_DIR points: --root reads the image's /etc/nvwa only.
    const hostConfig = mkdtempSync(join(tmpdir(), "nvwa-hostcfg-"));
    trees.push(hostConfig);
    writeFileSync(join(hostConfig, "nvwa-restore.yaml"), "pids: [oops\n");
    const p = Bun.spawnSync([BUN, MAIN, "check", "--root", root, "--json"], { env: { ...process.env, NVWA_CONFIG_DIR: hostConfig }, stdout: "pipe", stderr: "pipe" });
    expect(p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
    const out = JSON.parse(p.stdout.toString()) as { ok: boolean; root: string; checks: Check[] };
    expect(out.ok).toBe(true);
    expect(out.root).toBe(root);
    expect(out.checks.length).toBe(8);
  });

  test("the real CLI as an unprivileged user, on a tree it can read: no root needed", () => {
    const root = completeTree();
    for (const f of ["nvwa-restore.yaml", "nvwa-server.yaml"]) chmodSync(join(root, "etc/nvwa", f), 0o644);
    const p = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BUN, MAIN, "check", "--root", root], {
      cwd: "/",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/nonexistent", BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(p.stderr.toString()).toBe("");
    expect(p.stdout.toString()).toContain("8 ok, 0 warning(s), 0 failure(s): the image is ready for nvwa");
    expect(p.exitCode).toBe(0);
  });
});

describe("an image that lacks something: its row, and exit 3", () => {
  /** A complete tree changed by `change`; the result must have exactly `expected` rows not ok. */
  async function broken(change: (root: string) => void): Promise<Result> {
    const root = completeTree();
    change(root);
    return check(root);
  }

  test("no initramfs for one kernel", async () => {
    const r = await broken((root) => unlinkSync(join(root, `boot/initrd.img-${OLD}`)));
    expect(notOk(r)).toEqual([[`kernel.${OLD}`, "fail"]]);
    expect(row(r, `kernel.${OLD}`).detail).toContain(`no initramfs (tried /boot/initramfs-${OLD}.img, /boot/initrd.img-${OLD}, /usr/lib/modules/${OLD}/initrd`);
    expect(row(r, `kernel.${OLD}`).fix).toContain(`update-initramfs -c -k ${OLD}`);
    expect(r.code).toBe(3);
    expect(r.ok).toBe(false);
  });

  test("the initramfs a dangling link: missing too", async () => {
    const r = await broken((root) => {
      unlinkSync(join(root, `boot/initrd.img-${OLD}`));
      link(root, `boot/initramfs-${OLD}.img`, `initrd.img-${OLD}`);
    });
    expect(notOk(r)).toEqual([[`kernel.${OLD}`, "fail"]]);
  });

  test("a kernel config without CHECKPOINT_RESTORE", async () => {
    const r = await broken((root) => put(root, `boot/config-${OLD}`, CONFIG.replace("CONFIG_CHECKPOINT_RESTORE=y", "# CONFIG_CHECKPOINT_RESTORE is not set")));
    expect(notOk(r)).toEqual([[`kernel.${OLD}`, "fail"]]);
    expect(row(r, `kernel.${OLD}`).detail).toContain("CONFIG_CHECKPOINT_RESTORE is not set: criu cannot checkpoint or restore anything");
    expect(row(r, `kernel.${OLD}`).fix).toBe("build the kernel with CONFIG_CHECKPOINT_RESTORE=y");
    expect(r.code).toBe(3);
  });

  test("no kernel config at all", async () => {
    const r = await broken((root) => unlinkSync(join(root, `usr/lib/modules/${NEW}/config`)));
    expect(notOk(r)).toEqual([[`kernel.${NEW}`, "fail"]]);
    expect(row(r, `kernel.${NEW}`).detail).toContain(`no kernel config (tried /boot/config-${NEW}, /usr/lib/modules/${NEW}/config, /lib/modules/${NEW}/config)`);
    expect(r.code).toBe(3);
  });

  test("optional options missing: a warning naming each cost, exit 0", async () => {
    const r = await broken((root) => put(root, `boot/config-${OLD}`, CONFIG.replace("CONFIG_USERFAULTFD=y", "").replace("CONFIG_NF_TABLES=m", "# CONFIG_NF_TABLES is not set")));
    expect(notOk(r)).toEqual([[`kernel.${OLD}`, "warn"]]);
    expect(row(r, `kernel.${OLD}`).detail).toContain("CONFIG_NF_TABLES is not set: TCP connections cannot be kept (the TCP lock uses nftables)");
    expect(row(r, `kernel.${OLD}`).detail).toContain("CONFIG_USERFAULTFD is not set: no lazy restore");
    expect(r.code).toBe(0);
  });

  test("a kernel without kexec_file_load: kexec_load through the image's kexec-tools (warn); without them, fail", async () => {
    const noFile = CONFIG.replace("CONFIG_KEXEC_FILE=y", "# CONFIG_KEXEC_FILE is not set");
    const r = await broken((root) => put(root, `boot/config-${OLD}`, noFile));
    expect(notOk(r)).toEqual([[`kernel.${OLD}`, "warn"]]);
    expect(row(r, `kernel.${OLD}`).detail).toContain("loads the next kernel with kexec_load; CONFIG_KEXEC_FILE is not set: no kexec_file_load: nvwa loads the next kernel with /usr/sbin/kexec -c (kexec_load)");
    const r2 = await broken((root) => {
      put(root, `boot/config-${OLD}`, noFile);
      unlinkSync(join(root, "usr/sbin/kexec"));
    });
    expect(notOk(r2)).toEqual([[`kernel.${OLD}`, "fail"]]);
    expect(row(r2, `kernel.${OLD}`).detail).toContain("the fallback /usr/sbin/kexec (kexec-tools, kexec_load) is not in the image");
  });

  test("a kernel file nvwa cannot load", async () => {
    const r = await broken((root) => put(root, `boot/vmlinuz-${OLD}`, "not a kernel at all, just text"));
    expect(notOk(r)).toEqual([[`kernel.${OLD}`, "fail"]]);
    expect(row(r, `kernel.${OLD}`).detail).toContain("is an unrecognised file, not a kernel image this machine can load");
  });

  test("no kernel at all", async () => {
    const r = await broken((root) => {
      rmSync(join(root, "boot"), { recursive: true });
      rmSync(join(root, "usr/lib/modules"), { recursive: true });
    });
    expect(notOk(r)).toEqual([["kernels", "fail"]]);
    expect(r.code).toBe(3);
  });

  test("criu missing", async () => {
    const r = await broken((root) => unlinkSync(join(root, "usr/sbin/criu")));
    expect(notOk(r)).toEqual([["criu", "fail"]]);
    expect(row(r, "criu").detail).toBe("/usr/sbin/criu does not exist in the image (criu_exe in nvwa-server.yaml)");
    expect(r.code).toBe(3);
  });

  test("criu an absolute link to a file this machine has (/bin/sh) but the image lacks: missing", async () => {
    expect(existsSync("/bin/sh")).toBe(true);
    const r = await broken((root) => {
      unlinkSync(join(root, "usr/sbin/criu"));
      link(root, "usr/sbin/criu", "/bin/sh");
    });
    expect(notOk(r)).toEqual([["criu", "fail"]]);
    expect(row(r, "criu").detail).toStartWith("/usr/sbin/criu does not exist in the image");
  });

  test("criu not executable", async () => {
    const r = await broken((root) => chmodSync(join(root, "usr/sbin/criu"), 0o644));
    expect(notOk(r)).toEqual([["criu", "fail"]]);
    expect(row(r, "criu").detail).toBe("/usr/sbin/criu is not executable (mode 644) (criu_exe in nvwa-server.yaml)");
  });

  test("criu_exe in the image's nvwa-server.yaml is where criu is looked for, in the image", async () => {
    const r = await broken((root) => {
      unlinkSync(join(root, "usr/sbin/criu"));
      put(root, "opt/criu/bin/criu", "#!/bin/sh\n", 0o755);
      put(root, "etc/nvwa/nvwa-server.yaml", "criu_exe: /opt/criu/bin/criu\n", 0o640);
    });
    expect(notOk(r)).toEqual([]);
    expect(row(r, "criu").detail).toBe("/opt/criu/bin/criu (criu_exe in nvwa-server.yaml)");
  });

  test("nvwa.service not enabled", async () => {
    const r = await broken((root) => unlinkSync(join(root, "etc/systemd/system/multi-user.target.wants/nvwa.service")));
    expect(notOk(r)).toEqual([["unit", "fail"]]);
    expect(row(r, "unit").detail).toContain("/usr/lib/systemd/system/nvwa.service is not enabled: no link in /etc/systemd/system/multi-user.target.wants/");
    expect(row(r, "unit").fix).toBe(`systemctl --root=${r.root} enable nvwa.service`);
    expect(r.code).toBe(3);
  });

  test("nvwa.service enabled by a link that leads nowhere in the image", async () => {
    const r = await broken((root) => link(root, "etc/systemd/system/multi-user.target.wants/nvwa.service", "/opt/elsewhere/nvwa.service"));
    expect(notOk(r)).toEqual([["unit", "fail"]]);
    expect(row(r, "unit").detail).toContain("points at /opt/elsewhere/nvwa.service, which is not in the image");
  });

  test("nvwa.service masked", async () => {
    const r = await broken((root) => link(root, "etc/systemd/system/nvwa.service", "/dev/null"));
    expect(notOk(r)).toEqual([["unit", "fail"]]);
    expect(row(r, "unit").detail).toBe("/etc/systemd/system/nvwa.service is masked");
  });

  test("nvwa not installed: no unit, no executable", async () => {
    const r = await broken((root) => {
      unlinkSync(join(root, "usr/lib/systemd/system/nvwa.service"));
      unlinkSync(join(root, "usr/bin/nvwa"));
    });
    expect(notOk(r)).toEqual([
      ["unit", "fail"],
      ["nvwa", "fail"],
    ]);
  });

  test("a world-writable config", async () => {
    const r = await broken((root) => chmodSync(join(root, "etc/nvwa/nvwa-restore.yaml"), 0o666));
    expect(notOk(r)).toEqual([["config.restore", "fail"]]);
    const file = join(r.root, "etc/nvwa/nvwa-restore.yaml");
    expect(row(r, "config.restore")).toMatchObject({ detail: `${file} is world-writable (mode 666); nvwa runs as root and refuses it`, fix: `chmod go-w ${file}` });
    expect(r.code).toBe(3);
  });

  test("a config owned by uid 1000", async () => {
    const r = await broken((root) => chownSync(join(root, "etc/nvwa/nvwa-server.yaml"), 1000, 1000));
    expect(notOk(r)).toEqual([["config.server", "fail"]]);
    const file = join(r.root, "etc/nvwa/nvwa-server.yaml");
    expect(row(r, "config.server")).toMatchObject({ detail: `${file} is owned by uid 1000, not root; nvwa runs as root and refuses it`, fix: `chown root:root ${file}` });
    expect(r.code).toBe(3);
  });

  test("an invalid config key, with the parser's position and suggestion", async () => {
    const r = await broken((root) => put(root, "etc/nvwa/nvwa-restore.yaml", "services: [redis-server]\nrestore_nett: true\n", 0o640));
    expect(notOk(r)).toEqual([["config.restore", "fail"]]);
    expect(row(r, "config.restore").detail).toBe(`${join(r.root, "etc/nvwa/nvwa-restore.yaml")}:2:1: unknown key "restore_nett"`);
    expect(row(r, "config.restore").fix).toStartWith('did you mean "restore_net"?');
    expect(r.code).toBe(3);
  });

  test("pids in the image's config: a warning, not a failure", async () => {
    const r = await broken((root) => put(root, "etc/nvwa/nvwa-restore.yaml", "pids: [1234]\nservices: [redis-server]\n", 0o640));
    expect(notOk(r)).toEqual([["config.pids", "warn"]]);
    expect(r.code).toBe(0);
  });

  test("a listed service whose unit file is not in the image", async () => {
    const r = await broken((root) => put(root, "etc/nvwa/nvwa-restore.yaml", "services: [redis-server, nginx]\n", 0o640));
    expect(notOk(r)).toEqual([["service.nginx.service", "fail"]]);
    expect(row(r, "service.nginx.service").fix).toContain("remove it from services in nvwa-restore.yaml");
    expect(r.code).toBe(3);
  });
});

describe("the command line", () => {
  const cli = (...args: string[]) => Bun.spawnSync([BUN, MAIN, ...args], { stdout: "pipe", stderr: "pipe" });

  test("a directory that does not exist: one line naming it, exit 2", () => {
    const p = cli("check", "--root", "/nonexistent/image", "--json");
    expect(p.exitCode).toBe(2);
    expect(p.stdout.toString()).toBe("");
    expect(p.stderr.toString()).toBe("nvwa: --root /nonexistent/image: no such directory — give the directory that holds the image's /boot, /etc and /usr [check.root]\n");
  });

  test("a file instead of a directory: exit 2", () => {
    const file = join(completeTree(), "boot", `config-${OLD}`);
    const p = cli("check", "--root", file);
    expect(p.exitCode).toBe(2);
    expect(p.stderr.toString()).toStartWith(`nvwa: --root ${file}: not a directory`);
  });

  test("--root with a kernel version or --rehearse: exit 2", () => {
    const root = completeTree();
    for (const extra of [[OLD], ["--rehearse"]]) {
      const p = cli("check", "--root", root, ...extra);
      expect(p.exitCode).toBe(2);
      expect(p.stderr.toString()).toContain("--root checks an image offline and cannot be combined with");
      expect(p.stderr.toString().trimEnd().split("\n").length).toBe(1);
    }
  });

  test("a failing image: the table, its fixes, exit 3", () => {
    const root = completeTree();
    unlinkSync(join(root, "etc/systemd/system/multi-user.target.wants/nvwa.service"));
    const p = cli("check", "--root", root);
    expect(p.exitCode).toBe(3);
    const out = p.stdout.toString();
    expect(out).toMatch(/^FAIL {4}nvwa\.service {2,}\/usr\/lib\/systemd\/system\/nvwa\.service is not enabled/m);
    expect(out).toContain(`fix: systemctl --root=${root} enable nvwa.service`);
    expect(out.trimEnd().split("\n").at(-1)).toBe("7 ok, 0 warning(s), 1 failure(s): the image is not ready for nvwa");
  });
});
