/**
 * `nvwa check --root`'s pure half: the kernel .config parser, what each missing option costs,
 * the unit-file reader, and the rows judged from scanned facts (src/image-check/). The scan on
 * real trees is test/host/check-root.test.ts; real Debian kernels' configs are
 * test/guest/check-root.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rootConflict, runCheck } from "../../src/cli/check.ts";
import { configProblemsError } from "../../src/config/parse.ts";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS } from "../../src/config/types.ts";
import { NvwaError } from "../../src/errors.ts";
import type { ImageFacts, ImageKernel } from "../../src/image-check/facts.ts";
import { judgeImage } from "../../src/image-check/judge.ts";
import { configArch, isEnabled, parseKernelConfig } from "../../src/image-check/kernel-config.ts";
import { judgeKernelConfig, type KexecTools } from "../../src/image-check/requirements.ts";
import { parseUnitFile } from "../../src/image-check/unit-file.ts";
import type { Check } from "../../src/update/preflight-types.ts";

/** What a Debian amd64 kernel's config says about the options nvwa judges (the real files are longer). */
const COMPLETE = `#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.0 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14) 12.2.0"
CONFIG_X86_64=y
CONFIG_KEXEC=y
CONFIG_KEXEC_FILE=y
CONFIG_KEXEC_SIG=y
# CONFIG_KEXEC_SIG_FORCE is not set
CONFIG_CHECKPOINT_RESTORE=y
CONFIG_NF_TABLES=m
CONFIG_NF_TABLES_INET=y
CONFIG_MEM_SOFT_DIRTY=y
CONFIG_USERFAULTFD=y
CONFIG_UNIX_DIAG=m
CONFIG_INET_DIAG=m
CONFIG_NR_CPUS=8192
`;

const TOOLS: KexecTools = { path: "/usr/sbin/kexec", executable: true };
const NO_TOOLS: KexecTools = { path: "/usr/sbin/kexec", executable: false };

/** COMPLETE with each named option's line replaced by `# CONFIG_X is not set`, or set to a value. */
function config(changes: Record<string, string | null> = {}): string {
  let text = COMPLETE;
  for (const [k, v] of Object.entries(changes)) {
    const line = new RegExp(`^(CONFIG_${k}=.*|# CONFIG_${k} is not set)$`, "m");
    const next = v === null ? `# CONFIG_${k} is not set` : `CONFIG_${k}=${v}`;
    text = line.test(text) ? text.replace(line, next) : `${text}${next}\n`;
  }
  return text;
}

const judge = (changes: Record<string, string | null>, tools = TOOLS) => judgeKernelConfig(parseKernelConfig(config(changes)), tools);

describe("parseKernelConfig", () => {
  test("y, m, numbers, quoted strings and `is not set`", () => {
    const c = parseKernelConfig(COMPLETE);
    expect(c.options.get("KEXEC_FILE")).toBe("y");
    expect(c.options.get("NF_TABLES")).toBe("m");
    expect(c.options.get("NR_CPUS")).toBe("8192");
    expect(c.options.get("CC_VERSION_TEXT")).toBe("gcc-12 (Debian 12.2.0-14) 12.2.0");
    expect(c.options.get("KEXEC_SIG_FORCE")).toBe("n");
    expect(c.options.has("DEFINITELY_ABSENT")).toBe(false);
  });
  test("escaped quotes, CRLF line ends and comments that merely mention an option", () => {
    const c = parseKernelConfig('CONFIG_A="say \\"hi\\" \\\\ there"\r\n# CONFIG_B is set somewhere\r\nCONFIG_C=y\r\n# CONFIG_D is not set\r\n');
    expect(c.options.get("A")).toBe('say "hi" \\ there');
    expect(c.options.has("B")).toBe(false);
    expect(c.options.get("C")).toBe("y");
    expect(c.options.get("D")).toBe("n");
  });
  test("enabled means y or m; not set and absent are off; the architecture comes from the config", () => {
    const c = parseKernelConfig(COMPLETE);
    expect(isEnabled(c, "KEXEC")).toBe(true);
    expect(isEnabled(c, "UNIX_DIAG")).toBe(true);
    expect(isEnabled(c, "KEXEC_SIG_FORCE")).toBe(false);
    expect(isEnabled(c, "NOPE")).toBe(false);
    expect(configArch(c)).toBe("x64");
    expect(configArch(parseKernelConfig("CONFIG_ARM64=y\n"))).toBe("arm64");
    expect(configArch(parseKernelConfig("CONFIG_X86_32=y\n"))).toBeNull();
  });
});

describe("judgeKernelConfig", () => {
  test("everything nvwa uses: ok, loaded with kexec_file_load", () => {
    expect(judge({})).toEqual({ status: "ok", loader: "kexec_file_load", findings: [] });
  });

  test("no kexec at all: fail, cannot load a kernel", () => {
    const j = judge({ KEXEC: null, KEXEC_FILE: null });
    expect(j.status).toBe("fail");
    expect(j.loader).toBeNull();
    expect(j.findings).toEqual([expect.objectContaining({ options: ["KEXEC_FILE", "KEXEC"], status: "fail", cost: expect.stringContaining("cannot load a kernel") })]);
  });

  test("KEXEC without KEXEC_FILE: a warning that kexec_load (kexec_exe -c) is used", () => {
    const j = judge({ KEXEC_FILE: null });
    expect(j.status).toBe("warn");
    expect(j.loader).toBe("kexec_load");
    expect(j.findings[0]?.cost).toContain("/usr/sbin/kexec -c (kexec_load)");
  });

  test("KEXEC without KEXEC_FILE and no kexec-tools in the image: fail", () => {
    const j = judge({ KEXEC_FILE: null }, NO_TOOLS);
    expect(j.status).toBe("fail");
    expect(j.loader).toBeNull();
    expect(j.findings[0]?.cost).toContain("/usr/sbin/kexec (kexec-tools, kexec_load) is not in the image");
    expect(j.findings[0]?.fix).toContain("install kexec-tools");
  });

  test("arm64 without KEXEC_FILE: nvwa's own kexec_load, kexec-tools or not; with kexec_loader: kexec_exe they are needed", () => {
    const arm = (tools: KexecTools) => judgeKernelConfig(parseKernelConfig(config({ KEXEC_FILE: null, X86_64: null, ARM64: "y" })), tools);
    for (const tools of [TOOLS, NO_TOOLS]) {
      const j = arm(tools);
      expect(j.loader).toBe("kexec_load");
      expect(j.findings.find((f) => f.options.includes("KEXEC_FILE"))?.cost).toContain("nvwa loads the next kernel with kexec_load itself (no kexec-tools needed)");
      expect(j.findings.every((f) => f.status !== "fail")).toBe(true);
    }
    const exe = arm({ ...NO_TOOLS, prefer: "kexec_exe" });
    expect(exe.status).toBe("fail");
    expect(exe.findings[0]?.cost).toContain("/usr/sbin/kexec (kexec-tools, kexec_load) is not in the image");
    expect(arm({ ...TOOLS, prefer: "kexec_exe" }).findings[0]?.cost).toContain("/usr/sbin/kexec -c (kexec_load)");
  });

  test("kexec_loader: kexec_exe is honoured where kexec_file_load exists too: kexec-tools and CONFIG_KEXEC are needed", () => {
    const j = judgeKernelConfig(parseKernelConfig(config({})), { ...TOOLS, prefer: "kexec_exe" });
    expect(j.loader).toBe("kexec_load");
    expect(j.findings[0]?.cost).toContain("/usr/sbin/kexec -c (kexec_load)");
    expect(judgeKernelConfig(parseKernelConfig(config({})), { ...NO_TOOLS, prefer: "kexec_exe" }).status).toBe("fail");
    const noLoad = judgeKernelConfig(parseKernelConfig(config({ KEXEC: null })), { ...TOOLS, prefer: "kexec_exe" });
    expect(noLoad.status).toBe("fail");
    expect(noLoad.findings[0]?.fix).toContain("kexec_loader: auto");
  });

  test("kexec-tools missing does not matter where kexec_file_load exists", () => {
    expect(judge({}, NO_TOOLS).status).toBe("ok");
  });

  test("KEXEC_SIG_FORCE: a warning that unsigned and unwrapped kernels are refused", () => {
    const j = judge({ KEXEC_SIG_FORCE: "y" });
    expect(j.status).toBe("warn");
    expect(j.findings[0]).toMatchObject({ options: ["KEXEC_SIG_FORCE"], what: "CONFIG_KEXEC_SIG_FORCE=y" });
  });

  test("no CHECKPOINT_RESTORE: fail", () => {
    const j = judge({ CHECKPOINT_RESTORE: null });
    expect(j.status).toBe("fail");
    expect(j.findings).toEqual([expect.objectContaining({ options: ["CHECKPOINT_RESTORE"], status: "fail", fix: "build the kernel with CONFIG_CHECKPOINT_RESTORE=y" })]);
  });

  // Each optional option, and the feature its absence costs.
  const COSTS: [string, string][] = [
    ["NF_TABLES", "TCP connections cannot be kept (the TCP lock uses nftables)"],
    ["NF_TABLES_INET", "TCP connections cannot be kept (the TCP lock uses nftables)"],
    ["MEM_SOFT_DIRTY", "no incremental pre-dump: the whole memory is written while frozen (nvwa always dumps in full today; pre-dump is planned)"],
    ["USERFAULTFD", "no lazy restore (not used by nvwa yet; planned for large targets)"],
    ["UNIX_DIAG", "processes holding a unix socket cannot be checkpointed (criu finds sockets through sock_diag)"],
    ["INET_DIAG", "processes holding a TCP or UDP socket cannot be checkpointed (criu finds sockets through sock_diag)"],
  ];
  for (const [option, cost] of COSTS) {
    test(`no ${option}: warn, "${cost}"`, () => {
      const j = judge({ [option]: null });
      expect(j.status).toBe("warn");
      expect(j.loader).toBe("kexec_file_load");
      expect(j.findings).toEqual([{ options: [option], what: `CONFIG_${option} is not set`, status: "warn", cost, fix: `build the kernel with CONFIG_${option}=y` }]);
    });
  }

  test("an option the file does not name at all counts as not set", () => {
    const j = judgeKernelConfig(parseKernelConfig(COMPLETE.replace("CONFIG_USERFAULTFD=y\n", "")), TOOLS);
    expect(j.findings.map((f) => f.options)).toEqual([["USERFAULTFD"]]);
  });

  test("both nftables options missing: one finding naming both", () => {
    const j = judge({ NF_TABLES: null, NF_TABLES_INET: null });
    expect(j.findings).toEqual([expect.objectContaining({ options: ["NF_TABLES", "NF_TABLES_INET"], what: "CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET are not set" })]);
  });

  test("arm64 without soft-dirty: said to be the architecture's, no rebuild suggested", () => {
    const text = config({ X86_64: null, ARM64: "y" }).replace("CONFIG_MEM_SOFT_DIRTY=y\n", "");
    const f = judgeKernelConfig(parseKernelConfig(text), TOOLS).findings.find((x) => x.options.includes("MEM_SOFT_DIRTY"));
    expect(f?.cost).toContain("(arm64 has no soft-dirty tracking)");
    expect(f?.fix).toBe("none on arm64");
  });

  test("fails come first, then warnings", () => {
    const j = judge({ USERFAULTFD: null, CHECKPOINT_RESTORE: null });
    expect(j.status).toBe("fail");
    expect(j.findings.map((f) => f.status)).toEqual(["fail", "warn"]);
  });
});

describe("parseUnitFile", () => {
  test("nvwa's own unit: WantedBy=multi-user.target, ExecStart /usr/bin/nvwa", async () => {
    const text = await Bun.file(join(import.meta.dir, "../../rpm/nvwa.service")).text();
    expect(parseUnitFile(text)).toEqual({ wantedBy: ["multi-user.target"], requiredBy: [], execStart: "/usr/bin/nvwa" });
  });
  test("lists, resets, continuations, prefixes, quotes and comments", () => {
    const text = [
      "[Service]",
      "ExecStart=/bin/old",
      "ExecStart=",
      'ExecStart=-@"/opt/my tool/run" --flag \\',
      "  more",
      "# WantedBy=commented.target",
      "[Install]",
      "WantedBy=a.target b.target",
      "WantedBy=",
      "WantedBy=c.target",
      "; comment",
      "RequiredBy=d.target",
      "[X-Other]",
      "WantedBy=ignored.target",
    ].join("\n");
    expect(parseUnitFile(text)).toEqual({ wantedBy: ["c.target"], requiredBy: ["d.target"], execStart: "/opt/my tool/run" });
  });
  test("no [Install] and no ExecStart", () => {
    expect(parseUnitFile("[Unit]\nDescription=x\n")).toEqual({ wantedBy: [], requiredBy: [], execStart: null });
  });
});

// --- judgeImage over facts --------------------------------------------------------------------

function kernel(version: string, over: Partial<ImageKernel> = {}, configText = COMPLETE): ImageKernel {
  return {
    version,
    versionProblem: null,
    rescue: false,
    kernel: `/boot/vmlinuz-${version}`,
    triedKernels: [`/boot/vmlinuz-${version}`],
    initrd: `/boot/initrd.img-${version}`,
    triedInitrds: [`/boot/initramfs-${version}.img`, `/boot/initrd.img-${version}`],
    config: { path: `/boot/config-${version}`, options: parseKernelConfig(configText) },
    configProblem: null,
    triedConfigs: [`/boot/config-${version}`, `/usr/lib/modules/${version}/config`],
    image: { format: "x86 bzImage" },
    ...over,
  };
}

function facts(over: Partial<ImageFacts> = {}): ImageFacts {
  return {
    root: "/srv/image",
    kernels: [kernel("6.1.0-18-amd64")],
    kernelDirs: ["/boot", "/usr/lib/modules", "/lib/modules"],
    kexecTools: TOOLS,
    criu: { path: "/usr/sbin/criu", problem: null, fromConfig: true },
    unit: {
      name: "nvwa.service",
      path: "/usr/lib/systemd/system/nvwa.service",
      tried: ["/etc/systemd/system/nvwa.service", "/usr/lib/systemd/system/nvwa.service"],
      masked: false,
      unreadable: false,
      enablement: { wantsDirs: ["multi-user.target.wants"], links: ["/etc/systemd/system/multi-user.target.wants/nvwa.service"], dangling: [] },
    },
    nvwa: { path: "/usr/bin/nvwa", problem: null },
    restore: { path: "/etc/nvwa/nvwa-restore.yaml", hostPath: "/srv/image/etc/nvwa/nvwa-restore.yaml", present: true, problems: [], config: { ...RESTORE_DEFAULTS, services: ["redis.service"] } },
    server: { path: "/etc/nvwa/nvwa-server.yaml", hostPath: "/srv/image/etc/nvwa/nvwa-server.yaml", present: true, problems: [], config: SERVER_DEFAULTS },
    services: [{ name: "redis.service", path: "/usr/lib/systemd/system/redis.service", tried: ["/etc/systemd/system/redis.service", "/usr/lib/systemd/system/redis.service"], masked: false }],
    ...over,
  };
}

const byId = (checks: Check[], id: string): Check | undefined => checks.find((c) => c.id === id);

describe("judgeImage", () => {
  test("a complete image: every row ok, in order", () => {
    const checks = judgeImage(facts());
    expect(checks.map((c) => [c.id, c.status])).toEqual([
      ["kernel.6.1.0-18-amd64", "ok"],
      ["criu", "ok"],
      ["unit", "ok"],
      ["nvwa", "ok"],
      ["config.restore", "ok"],
      ["config.server", "ok"],
      ["service.redis.service", "ok"],
    ]);
    expect(byId(checks, "kernel.6.1.0-18-amd64")?.detail).toBe(
      "/boot/vmlinuz-6.1.0-18-amd64 (x86 bzImage), initramfs /boot/initrd.img-6.1.0-18-amd64, config /boot/config-6.1.0-18-amd64; loads the next kernel with kexec_file_load",
    );
    expect(checks.every((c) => c.fix === undefined)).toBe(true);
  });

  test("every fail and warn carries a fix", () => {
    const broken = facts({
      kernels: [kernel("6.1.0-18-amd64", { initrd: null, config: null }), kernel("6.12.0-1-amd64", {}, config({ USERFAULTFD: null }))],
      criu: { path: "/usr/sbin/criu", problem: "/usr/sbin/criu does not exist in the image", fromConfig: false },
      unit: { ...facts().unit, enablement: { wantsDirs: ["multi-user.target.wants"], links: [], dangling: [] } },
      nvwa: { path: "/usr/bin/nvwa", problem: "/usr/bin/nvwa does not exist in the image" },
      restore: { ...facts().restore, config: { ...RESTORE_DEFAULTS, pids: [1234], services: ["gone.service"] } },
      services: [{ name: "gone.service", path: null, tried: ["/etc/systemd/system/gone.service"], masked: false }],
    });
    const checks = judgeImage(broken);
    const bad = checks.filter((c) => c.status !== "ok");
    expect(bad.length).toBe(7);
    for (const c of bad) expect(c.fix).toBeTruthy();
  });

  test("a kernel without initramfs: fail naming what was tried, with the commands that build one", () => {
    const c = judgeImage(facts({ kernels: [kernel("6.1.0-18-amd64", { initrd: null })] }))[0];
    expect(c?.status).toBe("fail");
    expect(c?.detail).toContain("no initramfs (tried /boot/initramfs-6.1.0-18-amd64.img, /boot/initrd.img-6.1.0-18-amd64)");
    expect(c?.fix).toContain("update-initramfs -c -k 6.1.0-18-amd64");
    expect(c?.fix).toContain("dracut --kver 6.1.0-18-amd64");
  });

  test("a kernel without config: fail, nothing can be judged", () => {
    const c = judgeImage(facts({ kernels: [kernel("6.1.0-18-amd64", { config: null })] }))[0];
    expect(c?.status).toBe("fail");
    expect(c?.detail).toContain("no kernel config (tried /boot/config-6.1.0-18-amd64, /usr/lib/modules/6.1.0-18-amd64/config)");
    expect(c?.detail).not.toContain("loads the next kernel");
  });

  test("a kernel config without CHECKPOINT_RESTORE: fail, naming the option and its cost", () => {
    const c = judgeImage(facts({ kernels: [kernel("6.1.0-18-amd64", {}, config({ CHECKPOINT_RESTORE: null }))] }))[0];
    expect(c?.status).toBe("fail");
    expect(c?.detail).toContain("CONFIG_CHECKPOINT_RESTORE is not set: criu cannot checkpoint or restore anything");
    expect(c?.fix).toBe("build the kernel with CONFIG_CHECKPOINT_RESTORE=y");
  });

  test("optional options missing: warn with each cost, and still the loader", () => {
    const c = judgeImage(facts({ kernels: [kernel("6.1.0-18-amd64", {}, config({ MEM_SOFT_DIRTY: null, NF_TABLES: null }))] }))[0];
    expect(c?.status).toBe("warn");
    expect(c?.detail).toContain("loads the next kernel with kexec_file_load; CONFIG_NF_TABLES is not set: TCP connections cannot be kept (the TCP lock uses nftables); CONFIG_MEM_SOFT_DIRTY is not set: no incremental pre-dump");
  });

  test("a kernel image nvwa cannot load: fail with format.ts's message and hint", () => {
    const c = judgeImage(facts({ kernels: [kernel("6.1.0-18-amd64", { image: { problem: { message: "/boot/vmlinuz-6.1.0-18-amd64: is an arm64 Image", hint: "install the x86_64 build" } } })] }))[0];
    expect(c).toMatchObject({ status: "fail", fix: "install the x86_64 build" });
  });

  test("no kernel at all: one failing row", () => {
    expect(judgeImage(facts({ kernels: [] }))[0]).toMatchObject({ id: "kernels", status: "fail", fix: "install a kernel package in the image" });
  });

  test("a rescue image is listed, not judged; a name that is no release warns", () => {
    const rows = judgeImage(facts({ kernels: [kernel("0-rescue-abc", { rescue: true, config: null }), kernel("old", { versionProblem: "it does not start with a digit" })] }));
    expect(rows[0]).toMatchObject({ id: "kernel.0-rescue-abc", status: "ok" });
    expect(rows[1]).toMatchObject({ id: "kernel.old", status: "warn" });
  });

  test("nvwa.service: missing, masked, without [Install], not enabled, enabled through a dangling link", () => {
    const u = facts().unit;
    const row = (unit: ImageFacts["unit"]): Check => byId(judgeImage(facts({ unit })), "unit") as Check;
    expect(row({ ...u, path: null, enablement: null })).toMatchObject({ status: "fail", fix: "install the nvwa package in the image" });
    expect(row({ ...u, masked: true, enablement: null })).toMatchObject({ status: "fail", fix: "systemctl --root=/srv/image unmask nvwa.service" });
    expect(row({ ...u, enablement: { wantsDirs: [], links: [], dangling: [] } }).detail).toContain("cannot be enabled");
    const off = row({ ...u, enablement: { wantsDirs: ["multi-user.target.wants"], links: [], dangling: [] } });
    expect(off).toMatchObject({ status: "fail", fix: "systemctl --root=/srv/image enable nvwa.service" });
    expect(off.detail).toContain("no link in /etc/systemd/system/multi-user.target.wants/");
    const dangling = row({ ...u, enablement: { wantsDirs: ["multi-user.target.wants"], links: [], dangling: [{ link: "/etc/systemd/system/multi-user.target.wants/nvwa.service", target: "/opt/nvwa.service" }] } });
    expect(dangling).toMatchObject({ status: "fail", fix: "systemctl --root=/srv/image reenable nvwa.service" });
    expect(dangling.detail).toContain("points at /opt/nvwa.service, which is not in the image");
  });

  test("config files: problems listed with their hints; a missing restore file warns, a missing server file is ok", () => {
    const insecure = new NvwaError("config.insecure", "/srv/image/etc/nvwa/nvwa-restore.yaml is world-writable (mode 666); nvwa runs as root and refuses it", { hint: "chmod go-w /srv/image/etc/nvwa/nvwa-restore.yaml" });
    const typo = configProblemsError([{ error: new NvwaError("config.unknown-key", '/srv/image/etc/nvwa/nvwa-restore.yaml:1:1: unknown key "pidz"', { hint: 'did you mean "pids"?' }) }]);
    const rows = judgeImage(facts({ restore: { ...facts().restore, problems: [{ error: insecure }, { error: typo }] } }));
    expect(byId(rows, "config.restore")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/^2 problems: .*world-writable.*; .*unknown key "pidz"/),
      fix: 'chmod go-w /srv/image/etc/nvwa/nvwa-restore.yaml; did you mean "pids"?',
    });
    const absent = judgeImage(facts({ restore: { ...facts().restore, present: false }, server: { ...facts().server, present: false } }));
    expect(byId(absent, "config.restore")?.status).toBe("warn");
    expect(byId(absent, "config.server")?.status).toBe("ok");
  });

  test("pids in an image's config: a warning that they are not checked, no row per pid", () => {
    const rows = judgeImage(facts({ restore: { ...facts().restore, config: { ...RESTORE_DEFAULTS, pids: [1234, 5678] } }, services: [] }));
    expect(byId(rows, "config.pids")).toMatchObject({ status: "warn" });
    expect(byId(rows, "config.pids")?.detail).toContain("pids 1234, 5678");
    expect(rows.some((c) => c.id.startsWith("target.pid"))).toBe(false);
    expect(byId(judgeImage(facts()), "config.pids")).toBeUndefined();
  });

  test("services: a missing or masked unit file fails", () => {
    const rows = judgeImage(
      facts({
        services: [
          { name: "gone.service", path: null, tried: ["/etc/systemd/system/gone.service", "/usr/lib/systemd/system/gone.service"], masked: false },
          { name: "off.service", path: "/etc/systemd/system/off.service", tried: [], masked: true },
        ],
      }),
    );
    expect(byId(rows, "service.gone.service")).toMatchObject({ status: "fail", detail: "no unit file gone.service in the image (looked in /etc/systemd/system, /usr/lib/systemd/system)" });
    expect(byId(rows, "service.off.service")?.status).toBe("fail");
  });
});

describe("nvwa check --root: arguments", () => {
  test("--root with a kernel version, --rehearse or --config-dir is a usage error; alone it is not", () => {
    for (const o of [{ root: "/x", version: "6.1.0-18-amd64" }, { root: "/x", rehearse: true }, { root: "/x", configDir: "/etc/nvwa" }]) {
      const e = rootConflict(o);
      expect(e?.code).toBe("cli.usage");
      expect(e?.exitCode).toBe(2);
    }
    expect(rootConflict({ root: "/x", json: true })).toBeNull();
    expect(rootConflict({ version: "6.1.0-18-amd64" })).toBeNull();
  });

  test("a missing directory or a file is a usage error naming it (exit 2), before any scan", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nvwa-rootarg-"));
    const file = join(dir, "file");
    writeFileSync(file, "");
    let scanned = false;
    const deps = { imageCheck: () => ((scanned = true), []), write: () => undefined };
    try {
      for (const [root, what] of [[join(dir, "nope"), "no such directory"], [file, "not a directory"], ["", "an empty path"]] as const) {
        const e = await runCheck({ root }, deps).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(NvwaError);
        expect((e as NvwaError).message).toBe(`--root ${root}: ${what}`);
        expect((e as NvwaError).exitCode).toBe(2);
      }
      expect(scanned).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("JSON carries root; exit 3 on a fail, 0 with warnings only; the table ends with the image's verdict", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nvwa-rootarg-"));
    const rows: Check[] = [
      { id: "criu", title: "criu", status: "ok", detail: "/usr/sbin/criu" },
      { id: "unit", title: "nvwa.service", status: "fail", detail: "not enabled", fix: "systemctl enable" },
    ];
    try {
      let out = "";
      const code = await runCheck({ root: dir, json: true }, { imageCheck: () => rows, write: (s) => void (out += s) });
      expect(code).toBe(3);
      expect(JSON.parse(out)).toEqual({ ok: false, root: dir, checks: rows });
      out = "";
      const warnOnly = await runCheck({ root: dir }, { imageCheck: () => [rows[0] as Check, { ...(rows[1] as Check), status: "warn" }], write: (s) => void (out += s) });
      expect(warnOnly).toBe(0);
      expect(out.trimEnd().split("\n").at(-1)).toBe("1 ok, 1 warning(s), 0 failure(s): the image is ready for nvwa");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
