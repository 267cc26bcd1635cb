/**
 * 3. An established TCP connection between a dumped client and a server outside the dump, on
 * loopback, with --tcp-established.
 *
 * Trixie's criu 4.1.1 cannot dump any INET socket on Linux 6.16 and later: it reads
 * SO_PASSCRED and SO_PASSSEC from every socket and the kernel now answers EOPNOTSUPP for them on
non-unix sockets
 * (criu issue #2705, fixed in 4.2 by commit 4b7398595). The first test pins that down exactly:
 * the error nvwa reports, and the client unharmed after the rollback. The next ones run the
 * same scenario with criu 4.2.1 (Debian sid, built by setup-criu.sh the same way) and prove the
 * connection survives a dump, kill and restore, and also a rollback (which for a tree with TCP
 * connections is a restore: see src/update/rollback.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError } from "../../src/errors.ts";
import { checkpoint } from "../../src/update/checkpoint.ts";
import { commitCheckpoint } from "../../src/update/commit.ts";
import { rollbackCheckpoint } from "../../src/update/rollback.ts";
import { gatherCheckpointFacts } from "../../src/criu/facts.ts";
import { planCheckpoint } from "../../src/criu/plan.ts";
import { probeCriu, versionAtLeast, type CriuCapabilities } from "../../src/criu/probe.ts";
import { restoreAll } from "../../src/restore/restore.ts";
import { readManifest } from "../../src/state/manifest-file.ts";
import { config, criuFor, isRunning, testCriu, waitFor, Workloads, type Workload } from "./helpers/criu-env.ts";

const work = new Workloads();
const dirs: string[] = [];
let server: Workload;
let port: number;

function criuDir(): string {
  const d = mkdtempSync(join(tmpdir(), "nvwa-tcp-"));
  dirs.push(d);
  return join(d, "running");
}

/** The exchanges the client recorded: [n, "ok" | error text]. */
function exchanges(w: Workload): [number, string][] {
  return (w.text("tcp") ?? "")
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [n, ...rest] = l.split(" ");
      return [Number(n), rest.join(" ")];
    });
}

/** Waits for `count` new successful exchanges after the ones already recorded. */
async function exchangesContinue(w: Workload, count = 3, before = exchanges(w).length): Promise<[number, string][]> {
  return waitFor(`${count} more TCP exchanges of pid ${w.pid}`, () => {
    const all = exchanges(w);
    const fresh = all.slice(before);
    return fresh.length >= count ? fresh : null;
  });
}

function kernelAtLeast(major: number, minor: number): boolean {
  const [a = 0, b = 0] = readFileSync("/proc/sys/kernel/osrelease", "utf8").split(".").map((x) => Number.parseInt(x, 10));
  return a > major || (a === major && b >= minor);
}

beforeAll(async () => {
  server = await work.start("echo-server", "0");
  port = await waitFor("echo server port", () => server.num("port"));
});

afterAll(() => {
  work.killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("criu from the host's test setup (trixie)", () => {
  test("3a. the client is dumped with --tcp-established, or the exact reason it cannot be", async () => {
    const criu = testCriu();
    const caps = await probeCriu(criu);
    const client = await work.start("tcp-client", String(port));
    await exchangesContinue(client);
    const dir = criuDir();
    const plan = planCheckpoint(config(dir, criu, { pids: [client.pid] }), gatherCheckpointFacts(caps));
    expect(plan.targets[0]?.argv).toContain("--tcp-established");
    const known441 = !versionAtLeast(caps.version, 4, 2) && kernelAtLeast(6, 16);
    try {
      const r = await checkpoint(plan);
      if (known441) throw new Error(`criu ${caps.version.text} dumped an INET socket on this kernel; the SO_PASSSEC limitation is gone, update this test`);
      await rollbackCheckpoint(r.manifest, { criuExe: criu });
    } catch (e) {
      if (!isNvwaError(e) || !known441) throw e;
      expect(e.code).toBe("checkpoint.dump-failed");
      // SO_PASSCRED (16) or SO_PASSSEC (34), whichever criu asks first.
      expect(e.message).toMatch(/sockets: Can't get 1:(16|34) opt: Operation not supported/);
      expect(e.hint).toContain("criu 4.2");
    }
    expect(isRunning(client.pid)).toBe(true);
    const fresh = await exchangesContinue(client);
    expect(fresh.every(([, r]) => r === "ok")).toBe(true);
  });
});

describe("criu 4.2.1 (Debian sid)", () => {
  let criu: string;
  let caps: CriuCapabilities;
  beforeAll(async () => {
    criu = criuFor("sid", "NVWA_TEST_CRIU_TCP");
    caps = await probeCriu(criu);
  });

  test("3b. the connection survives dump, kill and restore, and carries data afterwards", async () => {
    expect(caps.nftablesLock).toBe(true);
    const client = await work.start("tcp-client", String(port));
    await exchangesContinue(client);
    const dir = criuDir();
    const r = await checkpoint(planCheckpoint(config(dir, criu, { pids: [client.pid] }), gatherCheckpointFacts(caps)));
    expect(r.dumped[0]?.tcpConnections).toBe(true);
    expect(r.manifest.options.networkLock).toBe("nftables");
    await commitCheckpoint(r.manifest);
    const recorded = exchanges(client);
    const lastBefore = recorded.at(-1)?.[0] ?? 0;
    const rep = await restoreAll(dir, { criuExe: criu });
    expect(rep.results[0]?.status).toBe("restored");
    const fresh = await exchangesContinue(client, 3, recorded.length);
    expect(fresh.every(([, r]) => r === "ok")).toBe(true);
    // The same conversation went on: numbering continues from the frozen state.
    expect(fresh[0]?.[0]).toBe(lastBefore + 1);
  });

  test("3c. a rollback gives a TCP client back with its connection working (by restoring it)", async () => {
    const client = await work.start("tcp-client", String(port));
    await exchangesContinue(client);
    const dir = criuDir();
    const r = await checkpoint(planCheckpoint(config(dir, criu, { pids: [client.pid] }), gatherCheckpointFacts(caps)));
    const back = await rollbackCheckpoint(r.manifest, { criuExe: criu });
    expect(back.outcomes.map((o) => [o.how, o.ok])).toEqual([["restore", true]]);
    expect(readManifest(dir).phase).toBe("rolled-back");
    const fresh = await exchangesContinue(client);
    expect(fresh.every(([, x]) => x === "ok")).toBe(true);
    expect(isRunning(client.pid)).toBe(true);
  });
});
