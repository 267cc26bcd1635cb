/**
 * PID 1 left a call of nvwa's on a new connection unanswered, while the machine was
 * loaded. The cause was nvwa's client sending BEGIN only after the server's OK, so a busy sd-bus
 * read BEGIN and the first call together and never looked at that call (src/systemd/dbus-auth.ts
 * authRequest). This runs the guest loop that proves it gone: at least 2000 calls over fresh and
 * reused connections with daemon-reloads and two CPU busy loops alongside (scenario dbus-stress,
 * one boot, no jump), none of them unanswered.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compileTo } from "../../build/compile.ts";
import { failureReport, ROOT, runScenario } from "./scenarios.ts";

/** The stress program for the guest's CPU (baseline x64, as nvwa itself is built). */
const STRESS = join(ROOT, "dist/nvwa-dbus-stress-x64");

beforeAll(async () => {
  // runScenario needs nvwa's x64 executable and the guest repo even where nothing installs them.
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
  await compileTo("bun-linux-x64-baseline", join(ROOT, "test/guest/dbus-stress.ts"), STRESS);
}, 300_000);

test("dbus-stress: ≥ 2000 calls to PID 1 over fresh and reused connections under daemon-reloads and CPU load, none unanswered", async () => {
  const r = await runScenario("dbus-stress", { adds: [[STRESS, "/usr/local/bin/nvwa-dbus-stress"]] });
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n`);
  const json = join(r.out, "results/dbus-stress.json");
  const v = r.results;
  process.stdout.write(
    `dbus-stress: ${v.calls} calls (${v.fresh} on ${v.connects} fresh connections, ${v.reused} on one reused), ` +
      `${v.unanswered} unanswered, ${v.errors} errors [${v.error_codes}], latency median ${v.latency_median_ms} ms, ` +
      `p99 ${v.latency_p99_ms} ms, max ${v.latency_max_ms} ms; ${v.jobs_started} StartUnit jobs [${v.jobs_results}]; ` +
      `alongside ${v.reloads} daemon-reloads and 2 busy loops (load ${v.loadavg}); stress ${Number(v.stress_wall_ms) / 1000} s\n`,
  );
  if (existsSync(json)) process.stdout.write(`dbus-stress figures: ${readFileSync(json, "utf8")}`);
  expect(r.status).toBe(0);
  expect(Number(v.calls)).toBeGreaterThanOrEqual(2000);
  expect(Number(v.connects)).toBeGreaterThanOrEqual(350);
  expect(v.unanswered).toBe("0");
  expect(v.connectFailures).toBe("0");
  expect(Number(v.reloads)).toBeGreaterThan(0);
}, 900_000);
