/**
 * Services as Debian ships them, unmodified, across a real kernel upgrade (6.1 → 6.12) in the
 * QEMU guest (#13): nginx.service (Type=forking with a PIDFile, a master and its workers, output
 * to the journal) serving a page, and mosquitto.service (Type=notify, the edge's MQTT broker)
 * holding a retained message only in memory, and lighttpd.service (Type=simple, the small web
 * server of embedded devices) serving a page. Debian's sandboxed redis-server.service is refused
 * in preflight (services.test.ts).
 */
import { beforeAll, expect, test } from "bun:test";
import { ensureGuestRepo, failureReport, ROOT, runScenario } from "./scenarios.ts";

beforeAll(async () => {
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
  await ensureGuestRepo();
}, 300_000);

interface StatusJson {
  phase: string;
  targets: { name: string; phase: string; downtimeMs?: number }[];
}

test("stock units: Debian's nginx, mosquitto and lighttpd, unmodified, keep their processes, pages and retained message across the jump", async () => {
  const r = await runScenario("stock");
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  expect(r.status).toBe(0);
  expect(r.results.kernel_after).toBe(r.kernels.new);
  expect(r.results.phase).toBe("restored");
  for (const u of ["nginx", "mosquitto", "lighttpd"]) {
    expect(r.results[`${u}_state`]).toBe("active/running");
    expect(r.results[`${u}_mainpid`]).toBe(r.results[`${u}_pid_before`]);
  }
  expect(r.results.nginx_workers_after).toBe(r.results.nginx_workers_before);
  expect(r.results.page).toStartWith("<h1>kept across the jump ");
  expect(r.results.page_lighttpd).toBe(r.results.page ?? "");
  expect(r.results.retained).toStartWith("retained-");
  const s = r.nvwaStatus as StatusJson;
  expect(s.targets.map((t) => [t.name, t.phase]).sort()).toEqual([
    ["lighttpd.service", "restored"],
    ["mosquitto.service", "restored"],
    ["nginx.service", "restored"],
  ]);
  process.stdout.write(`stock downtimes: ${s.targets.map((t) => `${t.name} ${t.downtimeMs} ms`).join(", ")}\n`);
}, 1_800_000);
