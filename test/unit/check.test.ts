/**
 * `nvwa check`: the table, the JSON, the exit codes; first with a fixed list of checks, then
 * the real binary entry on this host (it only reads) with a config dir of its own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderCheckTable, runCheck } from "../../src/cli/check.ts";
import { NvwaError } from "../../src/errors.ts";
import type { Check } from "../../src/update/preflight-types.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");
const BUN = process.execPath;

const CHECKS: Check[] = [
  { id: "privileges", title: "privileges", status: "ok", detail: "running as root" },
  { id: "kexec.loader", title: "kexec loader", status: "fail", detail: "no loader", fix: "install kexec-tools" },
  { id: "selinux", title: "SELinux", status: "warn", detail: "enforcing", fix: "rehearse" },
];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "nvwa-check-"));
  writeFileSync(join(dir, "nvwa-server.yaml"), `criu_dir: ${join(dir, "images")}\ncriu_exe: /nonexistent/criu\nkexec_exe: /nonexistent/kexec\n`);
  writeFileSync(join(dir, "nvwa-restore.yaml"), `pids:\n  - ${process.pid}\n`);
  chmodSync(join(dir, "nvwa-server.yaml"), 0o600);
  chmodSync(join(dir, "nvwa-restore.yaml"), 0o600);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("renderCheckTable", () => {
  test("aligned columns, the fix under the detail, a summary", () => {
    const lines = renderCheckTable(CHECKS).split("\n");
    expect(lines[0]).toBe("STATUS  CHECK         DETAIL");
    expect(lines[1]).toBe("ok      privileges    running as root");
    expect(lines[2]).toBe("FAIL    kexec loader  no loader");
    expect(lines[3]).toBe("                      fix: install kexec-tools");
    expect(lines[4]).toBe("WARN    SELinux       enforcing");
    expect(lines.at(-2)).toBe("1 ok, 1 warning(s), 1 failure(s): an update would be refused; nothing was changed");
  });
});

describe("runCheck", () => {
  const run = async (checks: Check[], json: boolean): Promise<{ code: number; out: string }> => {
    let out = "";
    const code = await runCheck({ configDir: dir, json }, { preflight: async () => ({ checks }), write: (s) => void (out += s) });
    return { code, out };
  };

  test("exit 3 on any fail, 0 with only warnings", async () => {
    expect((await run(CHECKS, false)).code).toBe(3);
    expect((await run(CHECKS.filter((c) => c.status !== "fail"), false)).code).toBe(0);
  });

  test("--latest checks the kernel update --latest would pick, and says it in JSON (the Ansible role decides on it)", async () => {
    let asked: string | null | undefined;
    let out = "";
    const ok1: Check = { id: "privileges", title: "privileges", status: "ok", detail: "running as root" };
    const code = await runCheck(
      { configDir: dir, json: true, latest: true },
      {
        preflight: async (_c, p) => ((asked = p.version), { checks: [ok1] }),
        chooseLatest: () => ({ kind: "newer", version: "6.12.95+deb12-cloud-amd64", running: "6.1.0-57-cloud-amd64" }),
        write: (s) => void (out += s),
      },
    );
    expect(code).toBe(0);
    expect(asked).toBe("6.12.95+deb12-cloud-amd64");
    const j = JSON.parse(out) as { ok: boolean; latest: unknown; checks: Check[] };
    expect(j.latest).toEqual({ running: "6.1.0-57-cloud-amd64", version: "6.12.95+deb12-cloud-amd64" });
    expect(j.checks[0]).toMatchObject({ id: "kernel.latest", status: "ok" });

    out = "";
    const current = await runCheck(
      { configDir: dir, json: true, latest: true },
      { preflight: async (_c, p) => ((asked = p.version), { checks: [ok1] }), chooseLatest: () => ({ kind: "current", running: "6.12.1", newest: "6.12.1" }), write: (s) => void (out += s) },
    );
    expect(current).toBe(0);
    expect(asked).toBeNull();
    expect((JSON.parse(out) as { latest: unknown }).latest).toEqual({ running: "6.12.1", version: null });

    out = "";
    const broken = await runCheck(
      { configDir: dir, json: true, latest: true },
      {
        preflight: async () => ({ checks: [ok1] }),
        chooseLatest: () => {
          throw new NvwaError("kexec.latest-initrd-missing", "the newest installed kernel, 6.18.0, has no initramfs", { hint: "build it" });
        },
        write: (s) => void (out += s),
      },
    );
    expect(broken).toBe(3);
    const b = JSON.parse(out) as { ok: boolean; checks: Check[]; latest: { version: null } };
    expect(b.ok).toBe(false);
    expect(b.checks[0]).toMatchObject({ id: "kernel.latest", status: "fail", detail: "the newest installed kernel, 6.18.0, has no initramfs", fix: "build it" });
    expect(b.latest.version).toBeNull();
  });

  test("--json prints { ok, checks }", async () => {
    const { code, out } = await run(CHECKS, true);
    expect(code).toBe(3);
    expect(JSON.parse(out)).toEqual({ ok: false, checks: CHECKS });
  });

  test("--json with an unreadable config still prints JSON, with the config's exit code", async () => {
    const bad = mkdtempSync(join(tmpdir(), "nvwa-badcfg-"));
    writeFileSync(join(bad, "nvwa-restore.yaml"), "pids: [1, oops\n");
    chmodSync(join(bad, "nvwa-restore.yaml"), 0o600);
    let out = "";
    const code = await runCheck({ configDir: bad, json: true }, { write: (s) => void (out += s) });
    rmSync(bad, { recursive: true, force: true });
    const parsed = JSON.parse(out) as { ok: boolean; error?: { code: string } };
    expect(parsed.ok).toBe(false);
    expect(parsed.error?.code).toMatch(/^config\./);
    expect(code).toBe(2);
  });

  test("--rehearse adds one row per target after the checks (the real rehearsal is in test/host/criu-rehearse.test.ts)", async () => {
    let out = "";
    const rows: Check[] = [{ id: "rehearse.1234", title: "rehearsal 1234", status: "fail", detail: "criu dump failed", fix: "see dump.log" }];
    const code = await runCheck({ configDir: dir, json: true, rehearse: true }, { preflight: async () => ({ checks: [] }), rehearse: async () => rows, write: (s) => void (out += s) });
    expect((JSON.parse(out) as { checks: Check[] }).checks).toEqual(rows);
    expect(code).toBe(3);
  });

  test("--rehearse does not freeze anything when a check already failed", async () => {
    let out = "";
    let rehearsed = false;
    await runCheck({ configDir: dir, json: true, rehearse: true }, {
      preflight: async () => ({ checks: CHECKS }),
      rehearse: async () => {
        rehearsed = true;
        return [];
      },
      write: (s) => void (out += s),
    });
    expect(rehearsed).toBe(false);
    expect((JSON.parse(out) as { checks: Check[] }).checks.at(-1)).toMatchObject({ id: "rehearse", status: "warn" });
  });
});

describe("the real command on this host", () => {
  test("nvwa check --json: every check has a status, exit code follows ok", () => {
    const p = Bun.spawnSync({ cmd: [BUN, MAIN, "check", "--json", "--config-dir", dir], stdout: "pipe", stderr: "pipe", env: { ...process.env, NVWA_CONFIG_DIR: "" } });
    const out = JSON.parse(p.stdout.toString()) as { ok: boolean; checks: Check[] };
    const ids = out.checks.map((c) => c.id);
    for (const id of ["privileges", "kexec.support", "criu.check", `target.pid.${process.pid}`, "criu-dir.fs", "criu-dir.space", "selinux", "update.lock", "systemd.kexec-watchdog"]) {
      expect(ids).toContain(id);
    }
    for (const c of out.checks) expect(["ok", "warn", "fail"]).toContain(c.status);
    // The test runner itself is listed as a target: it is alive (ok) — nvwa check runs in another process.
    expect(out.checks.find((c) => c.id === `target.pid.${process.pid}`)?.status).toBe("ok");
    expect(out.checks.find((c) => c.id === "criu.check")?.detail).toContain("/nonexistent/criu");
    expect(p.exitCode).toBe(out.ok ? 0 : 3);
  });

  test("nvwa check <version> with a version that names a path is a failed check, not a crash", () => {
    const p = Bun.spawnSync({ cmd: [BUN, MAIN, "check", "../../etc/passwd", "--config-dir", dir], stdout: "pipe", stderr: "pipe" });
    const text = p.stdout.toString();
    expect(text).toMatch(/FAIL\s+kernel version\s+"\.\.\/\.\.\/etc\/passwd" is not a kernel version/);
    expect(p.exitCode).toBe(3);
    expect(p.stderr.toString()).not.toContain("    at ");
  });
});
