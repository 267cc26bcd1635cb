/**
 * `nvwa status --wait` as automation meets it: a real nvwa process blocks on a real manifest
 * that another writer moves through the phases, and exits with the code of the end it saw.
 * Also the pure rules of `--wait`, `--timeout` and `<kernel-version | --latest>`.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelArg } from "../../src/cli/kernel-arg.ts";
import { DEFAULT_WAIT_SECONDS, finished, parseTimeout } from "../../src/cli/status.ts";
import { failureResult } from "../../src/cli/update.ts";
import { ExitCode, NvwaError } from "../../src/errors.ts";
import { writeManifest } from "../../src/state/manifest-file.ts";
import { newManifest, withPhase, type Manifest } from "../../src/state/manifest.ts";
import { UPDATE_PHASES } from "../../src/state/manifest-schema.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function usageCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(NvwaError);
    expect((e as NvwaError).exitCode).toBe(ExitCode.usage);
    return (e as NvwaError).message;
  }
  throw new Error("no usage error");
}

describe("pure rules", () => {
  test("finished: only restored, restore-failed, rolled-back and none end the wait, each with its code", () => {
    const ends = Object.fromEntries(UPDATE_PHASES.map((p) => [p, finished(p)]));
    expect(ends).toEqual({
      planned: null,
      checkpointing: null,
      dumped: null,
      "rolled-back": ExitCode.failed,
      committed: null,
      jumping: null,
      restoring: null,
      restored: ExitCode.ok,
      "restore-failed": ExitCode.partial,
    });
    expect(finished("none")).toBe(ExitCode.ok);
  });
  test("parseTimeout: a positive number of seconds, only with --wait", () => {
    expect(parseTimeout(undefined, true)).toBe(DEFAULT_WAIT_SECONDS);
    expect(parseTimeout("2.5", true)).toBe(2.5);
    expect(usageCode(() => parseTimeout("10", false))).toContain("--wait");
    for (const bad of ["0", "-1", "ten", "1e3", ""]) expect(usageCode(() => parseTimeout(bad, true))).toContain("not a number of seconds");
  });
  test("kernelArg: update needs exactly one of a version and --latest; check at most one", () => {
    expect(kernelArg("update", "6.12.1", false)).toEqual({ kind: "version", version: "6.12.1" });
    expect(kernelArg("update", undefined, true)).toEqual({ kind: "latest" });
    expect(kernelArg("check", undefined, false)).toEqual({ kind: "none" });
    expect(usageCode(() => kernelArg("update", undefined, false))).toContain("needs <kernel-version> or --latest");
    expect(usageCode(() => kernelArg("check", "6.12.1", true))).toContain("not both");
  });
  test("update --json failure objects: refused when nothing changed, failed otherwise", () => {
    const usage = failureResult(new NvwaError("cli.usage", "bad", { exitCode: ExitCode.usage }));
    expect(usage).toEqual({ result: "refused", exitCode: 2, error: { code: "cli.usage", message: "bad" } });
    expect(failureResult(new NvwaError("preflight.failed", "no", { exitCode: ExitCode.preflight })).result).toBe("refused");
    expect(failureResult(new NvwaError("daemon.unreachable", "no", { exitCode: ExitCode.daemon })).result).toBe("failed");
  });
});

function setup(): { configDir: string; criuDir: string; manifest: Manifest } {
  const configDir = mkdtempSync(join(tmpdir(), "nvwa-wait-"));
  dirs.push(configDir);
  const criuDir = join(configDir, "running");
  mkdirSync(criuDir, { mode: 0o700 });
  writeFileSync(join(configDir, "nvwa-server.yaml"), `criu_dir: ${criuDir}\n`);
  writeFileSync(join(configDir, "nvwa-restore.yaml"), `pids: [${process.pid}]\n`);
  chmodSync(join(configDir, "nvwa-server.yaml"), 0o600);
  chmodSync(join(configDir, "nvwa-restore.yaml"), 0o600);
  const manifest = withPhase(
    withPhase(
      newManifest({
        updateId: "20261206T120000Z-beef",
        kernel: { from: "6.1.0-57-cloud-amd64", to: "6.12.95+deb12-cloud-amd64" },
        criuDir,
        options: { debug: false, pinMemory: false, restoreNet: false, tcpEstablished: false, extUnixSk: false, fileLocks: false, networkLock: "nftables", hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
      }),
      "checkpointing",
    ),
    "dumped",
  );
  return { configDir, criuDir, manifest };
}

function statusWait(configDir: string, ...more: string[]) {
  return Bun.spawn([process.execPath, MAIN, "status", "--wait", "--config-dir", configDir, ...more], { stdout: "pipe", stderr: "pipe" });
}

async function outcome(p: ReturnType<typeof statusWait>): Promise<{ code: number; out: string; err: string }> {
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code, out, err };
}

describe("status --wait, a real process on a real manifest", () => {
  test("blocks through commit, jump and restore, and exits 0 when the update is restored", async () => {
    const { configDir, manifest } = setup();
    let m = manifest;
    writeManifest(m);
    const p = statusWait(configDir, "--json");
    for (const phase of ["committed", "jumping", "restoring"] as const) {
      await Bun.sleep(700);
      expect(p.exitCode).toBeNull(); // still waiting
      m = withPhase(m, phase);
      writeManifest(m);
    }
    await Bun.sleep(700);
    expect(p.exitCode).toBeNull();
    // The phase is final a moment before the boot-side restore's last stamp (drop-ins removed).
    m = { ...withPhase(m, "restored"), timings: { ...m.timings, "boot-restore": { start: Date.now() } } };
    writeManifest(m);
    await Bun.sleep(700);
    expect(p.exitCode).toBeNull();
    writeManifest({ ...m, timings: { ...m.timings, "boot-restore": { start: Date.now() - 1, end: Date.now() } } });
    const r = await outcome(p);
    expect(r.code).toBe(ExitCode.ok);
    const s = JSON.parse(r.out) as { updateId: string; phase: string; kernelTo: string };
    expect(s).toMatchObject({ updateId: "20261206T120000Z-beef", phase: "restored", kernelTo: "6.12.95+deb12-cloud-amd64" });
  }, 20_000);

  test("exits 5 on restore-failed and 1 on rolled-back", async () => {
    const a = setup();
    writeManifest(withPhase(withPhase(withPhase(withPhase(a.manifest, "committed"), "jumping"), "restoring"), "restore-failed"));
    expect((await outcome(statusWait(a.configDir))).code).toBe(ExitCode.partial);
    const b = setup();
    writeManifest(withPhase(b.manifest, "rolled-back"));
    const r = await outcome(statusWait(b.configDir));
    expect(r.code).toBe(ExitCode.failed);
    expect(r.out).toContain("rolled-back");
  }, 20_000);

  test("gives up after --timeout with exit 7, saying in which phase it stayed", async () => {
    const { configDir, manifest } = setup();
    writeManifest(withPhase(manifest, "committed"));
    const t0 = Date.now();
    const r = await outcome(statusWait(configDir, "--timeout", "1.5"));
    expect(r.code).toBe(ExitCode.timeout);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(r.err).toContain("waiting for update 20261206T120000Z-beef");
    expect(r.err).toContain("is still committed after 1.5 s");
    expect(r.err).toContain("[status.wait-timeout]");
  }, 20_000);

  test("no update at all: nothing to wait for, exit 0", async () => {
    const { configDir } = setup();
    const r = await outcome(statusWait(configDir, "--json"));
    expect(r.code).toBe(ExitCode.ok);
    expect(JSON.parse(r.out)).toEqual({ phase: "none" });
  });
});
