/**
 * `nvwa update --json` as automation reads it: the real CLI against nvwa's own socket server
 * (src/daemon/socket-server.ts) whose update handler answers as the daemon's would. The update
 * itself (checkpoint, kexec) cannot run on this host; the guest tests run it for real. Here: one
 * JSON object on stdout for each outcome, progress kept off stdout, and the exit codes.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../../src/daemon/socket-server.ts";
import { ExitCode, NvwaError } from "../../src/errors.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");
const dir = mkdtempSync(join(tmpdir(), "nvwa-update-json-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const quiet = { debug() {}, info() {}, warn() {}, error() {} } as unknown as NonNullable<Parameters<typeof startServer>[0]["log"]>;

async function withDaemon(update: (version: string) => Promise<unknown>, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const socketPath = join(dir, `s-${Math.random().toString(16).slice(2)}.sock`);
  const server = await startServer({
    socketPath,
    log: quiet,
    allowedUids: [process.getuid?.() ?? 0],
    handlers: { update: async (p, emit) => (emit({ kind: "phase", level: "info", message: "checkpoint", ms: 5 }), update(p.version)), restore: async () => ({}), status: () => ({}) },
  });
  try {
    const p = Bun.spawn([process.execPath, MAIN, "update", ...args], { env: { ...process.env, NVWA_SOCKET: socketPath, NVWA_CONFIG_DIR: "/nonexistent-nvwa-test" }, stdout: "pipe", stderr: "pipe" });
    const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    return { code, out, err };
  } finally {
    server.stop();
  }
}

test("the jump started: result jumping with the update id and kernels; progress on stderr only", async () => {
  const r = await withDaemon(
    async (version) => ({ updateId: "20261206T120000Z-beef", kernel: { from: "6.1.0-57-cloud-amd64", to: version, loader: "kexec_file_load" }, jump: "orderly", targets: ["redis.service"], timings: [{ step: "checkpoint", ms: 5 }] }),
    ["6.12.95+deb12-cloud-amd64", "--json"],
  );
  expect(r.code).toBe(0);
  expect(r.out.trim().split("\n")).toHaveLength(1);
  expect(JSON.parse(r.out)).toEqual({
    result: "jumping",
    updateId: "20261206T120000Z-beef",
    kernel: { from: "6.1.0-57-cloud-amd64", to: "6.12.95+deb12-cloud-amd64", loader: "kexec_file_load" },
    jump: "orderly",
    timings: [{ step: "checkpoint", ms: 5 }],
  });
  expect(r.err).toContain("checkpoint");
});

test("refused by the daemon's preflight: result refused, its error, exit 3, and the one-line error on stderr", async () => {
  const r = await withDaemon(async () => {
    throw new NvwaError("preflight.failed", "preflight failed: criu check", { exitCode: ExitCode.preflight, hint: "see nvwa check" });
  }, ["6.12.1", "--json"]);
  expect(r.code).toBe(3);
  expect(JSON.parse(r.out)).toEqual({ result: "refused", exitCode: 3, error: { code: "preflight.failed", message: "preflight failed: criu check", hint: "see nvwa check" } });
  expect(r.err).toContain("nvwa: preflight failed: criu check — see nvwa check [preflight.failed]");
});

test("rolled back: result failed, exit 1", async () => {
  const r = await withDaemon(async () => {
    throw new NvwaError("criu.dump-failed", "criu dump of 4242 failed (during checkpoint; everything was rolled back)", { exitCode: ExitCode.failed });
  }, ["6.12.1", "--json"]);
  expect(r.code).toBe(1);
  expect((JSON.parse(r.out) as { result: string }).result).toBe("failed");
});

test("bad input never reaches the daemon: result refused, exit 2", async () => {
  let asked = false;
  const r = await withDaemon(async () => ((asked = true), {}), ["../etc", "--json"]);
  expect(r.code).toBe(2);
  expect(asked).toBe(false);
  expect(JSON.parse(r.out)).toMatchObject({ result: "refused", exitCode: 2, error: { code: "kexec.bad-version" } });
});
