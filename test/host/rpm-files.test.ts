/**
 * The plain files the RPM ships: the two default configs (read by nvwa's own loader, as they
 * will be installed) and the bash completion (run by bash, against a /boot of our making in a
 * private mount namespace, so the host's /boot is never touched).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS } from "../../src/config/types.ts";
import { RESTORE_KEYS, SERVER_KEYS } from "../../src/config/schema.ts";
import { COMMANDS } from "../../src/cli/commands.ts";
import { GLOBAL_OPTIONS } from "../../src/cli/arg-defs.ts";

const rpmDir = join(import.meta.dir, "../../rpm");
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "nvwa-rpm-files-"));
  for (const f of ["nvwa-restore.yaml", "nvwa-server.yaml"]) {
    copyFileSync(join(rpmDir, f), join(dir, f));
    chmodSync(join(dir, f), 0o640);
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("the shipped configs load, as root with mode 0640, to exactly the built-in defaults", () => {
  expect(process.getuid?.()).toBe(0);
  const c = loadConfig(dir);
  expect(c.files.restore).toBe(join(dir, "nvwa-restore.yaml"));
  expect(c.files.server).toBe(join(dir, "nvwa-server.yaml"));
  expect(c.restore).toEqual(RESTORE_DEFAULTS);
  expect(c.server).toEqual(SERVER_DEFAULTS);
});

test("every config key is written out, under a comment that explains it", async () => {
  for (const [file, keys] of [
    ["nvwa-restore.yaml", Object.keys(RESTORE_KEYS).filter((k) => k !== "enbale_debug_mode")],
    ["nvwa-server.yaml", Object.keys(SERVER_KEYS)],
  ] as const) {
    const lines = (await Bun.file(join(rpmDir, file)).text()).split("\n");
    for (const key of keys) {
      const i = lines.findIndex((l) => l.startsWith(`${key}:`));
      expect({ file, key, found: i >= 0 }).toEqual({ file, key, found: true });
      expect({ file, key, commented: (lines[i - 1] ?? "").startsWith("# ") }).toEqual({ file, key, commented: true });
    }
  }
});

// --- bash completion ---------------------------------------------------------------------

const completion = join(rpmDir, "nvwa.bash-completion");
const KERNELS = ["6.1.0-28-cloud-amd64", "6.12.12+bpo-cloud-amd64", "5.10.0-136.12.0.86.oe2203sp1.aarch64"];

/**
 * Completions bash offers for `line` (the cursor at its end), with /boot replaced by a tmpfs
 * holding vmlinuz-<v> for each of KERNELS (plus files that are not kernels).
 */
async function complete(line: string): Promise<string[]> {
  const words = line.split(" ");
  const script = [
    "set -e",
    "mount -t tmpfs nvwa-test-boot /boot",
    ...KERNELS.map((k) => `: > '/boot/vmlinuz-${k}'`),
    `: > /boot/config-${KERNELS[0]}; : > /boot/initrd.img-${KERNELS[0]}; mkdir /boot/grub`,
    // Completion functions run in interactive shells, never under errexit (compgen returns 1
    // when nothing matches).
    "set +e",
    `source '${completion}'`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE='${line}'`,
    `COMP_POINT=${line.length}`,
    "_nvwa nvwa",
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join("\n");
  const p = Bun.spawn(["unshare", "--mount", "--propagation", "private", "bash", "-c", script], { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  expect({ line, code, err }).toEqual({ line, code: 0, err: "" });
  return out.split("\n").filter((s) => s !== "").sort();
}

const visible = COMMANDS.filter((c) => !c.hidden);
/** Every name a visible command answers to (`help` also as `h`). */
const names = visible.flatMap((c) => [c.name, ...(c.aliases ?? [])]).sort();
/** Each spelling of the global options, and of those the dispatcher takes after a command too. */
const spellings = (all: boolean): string[] =>
  GLOBAL_OPTIONS.filter(([, o]) => all || o.anywhere === true).flatMap(([name, o]) => [`--${name}`, ...(o.alias === undefined ? [] : [`-${o.alias}`])]);

test("/boot exists to be covered by the test's tmpfs", () => {
  expect(existsSync("/boot")).toBe(true);
});

test("completes the commands, and not the hidden restore helper", async () => {
  expect(await complete("nvwa ")).toEqual(names);
  expect(await complete("nvwa st")).toEqual(["status"]);
  expect(await complete("nvwa --config-dir /etc ")).toEqual(names);
  expect(await complete("nvwa res")).toEqual([]);
});

test("update and check complete the kernel versions in /boot, and only one of them", async () => {
  expect(await complete("nvwa update ")).toEqual([...KERNELS].sort());
  expect(await complete("nvwa update 6.1")).toEqual([KERNELS[0], KERNELS[1]].sort() as string[]);
  expect(await complete("nvwa check 5")).toEqual([KERNELS[2] as string]);
  expect(await complete("nvwa update --append quiet ")).toEqual([...KERNELS].sort());
  expect(await complete("nvwa update 6.1.0-28-cloud-amd64 ")).toEqual([]);
  expect(await complete("nvwa update --append ")).toEqual([]);
});

test("each command's options are exactly those of the command table", async () => {
  for (const c of visible) {
    const fromTable = c.options.map(([o]) => o.split(" ")[0] ?? "");
    const expected = [...fromTable, ...spellings(false)].sort();
    expect({ command: c.name, options: await complete(`nvwa ${c.name} -`) }).toEqual({ command: c.name, options: expected });
  }
});

test("global options before the command, and help completes command names", async () => {
  expect(await complete("nvwa -")).toEqual(spellings(true).sort());
  expect(await complete("nvwa --v")).toEqual(["--verbose", "--version"]);
  expect(await complete("nvwa help ")).toEqual(names);
  expect(await complete("nvwa h ")).toEqual(names);
  expect(await complete("nvwa --config-dir /et")).toContain("/etc");
});
