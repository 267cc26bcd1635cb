/**
 * nvwa-dbus-stress: many calls to PID 1 over nvwa's own D-Bus client, counting every call left
 * without an answer (issue 12: a LoadUnit on a new connection went unanswered while the machine
 * was loaded). Runs inside the guest (scenario dbus-stress); compiled by dbus-stress.test.ts.
 *
 *   nvwa-dbus-stress [--calls N] [--timeout-ms MS] [--unit NAME] [--job-unit NAME] [--job-every K]
 *                    [--workers W] [--socket PATH]   (default /run/systemd/private)
 *
 * W workers (default 8) run side by side until N calls were made. Each alternates between a
 * fresh connection of its own (connect, LoadUnit — the first call on a new connection, the one
 * issue 12 lost —, Properties.Get ActiveState, close) and the one connection all of them reuse
 * throughout (GetUnit, Properties.Get MainPID; every 10th time also 8 pipelined Properties.Get,
 * as serviceProperties sends them). With --job-unit, worker 0 also runs StartUnit on that unit
 * every K-th pair of iterations and waits for its job, once on each kind of connection. Always
 * the private socket: no fallback to the system bus that could hide a loss.
 * Prints one JSON line (Figures) on stdout; exits 0 once the calls were made, 2 on bad usage.
 */
import { parseArgs } from "node:util";
import { NvwaError } from "../../src/errors.ts";
import { SYSTEMD_PRIVATE_SOCKET, SystemdManager } from "../../src/systemd/manager.ts";
import { SERVICE_IFACE, UNIT_IFACE } from "../../src/systemd/units.ts";

export interface Figures {
  /** Method calls made, and how many on fresh connections and on the reused one. */
  calls: number;
  fresh: number;
  reused: number;
  /** Answered with a method return. */
  ok: number;
  /** No reply within timeoutMs (dbus.timeout): what issue 12 saw. */
  unanswered: number;
  /** Answered with a D-Bus error, or the connection failed; by NvwaError code. */
  errors: number;
  errorCodes: Record<string, number>;
  /** Fresh connections made, and those whose authentication failed (counted apart from calls). */
  connects: number;
  connectFailures: number;
  jobs: { started: number; results: Record<string, number> };
  /** Over every answered call (ok or error reply). */
  latencyMs: { median: number; p99: number; max: number; maxFresh: number; maxReused: number };
  timeoutMs: number;
  unit: string;
  wallS: number;
  /** The first failures, for the report: seconds since start, connection kind, code, message. */
  failures: string[];
}

type Kind = "fresh" | "reused";

class Tally {
  readonly f: Figures;
  private readonly latencies: number[] = [];
  private readonly t0 = performance.now();

  constructor(timeoutMs: number, unit: string) {
    this.f = {
      calls: 0, fresh: 0, reused: 0, ok: 0, unanswered: 0, errors: 0, errorCodes: {}, connects: 0, connectFailures: 0,
      jobs: { started: 0, results: {} },
      latencyMs: { median: 0, p99: 0, max: 0, maxFresh: 0, maxReused: 0 },
      timeoutMs, unit, wallS: 0, failures: [],
    };
  }

  failure(kind: Kind, e: unknown): string {
    const code = e instanceof NvwaError ? e.code : "exception";
    if (this.f.failures.length < 20) {
      const at = ((performance.now() - this.t0) / 1000).toFixed(1);
      this.f.failures.push(`${at}s ${kind} ${code}: ${e instanceof Error ? e.message : String(e)}`);
    }
    return code;
  }

  /** One method call, timed and counted; undefined when it failed. */
  async call<T>(kind: Kind, fn: () => Promise<T>): Promise<T | undefined> {
    const t0 = performance.now();
    this.f.calls++;
    this.f[kind]++;
    try {
      const v = await fn();
      this.f.ok++;
      this.answered(kind, performance.now() - t0);
      return v;
    } catch (e) {
      const code = this.failure(kind, e);
      if (code === "dbus.timeout") this.f.unanswered++;
      else {
        this.f.errors++;
        this.f.errorCodes[code] = (this.f.errorCodes[code] ?? 0) + 1;
        if (code.startsWith("dbus.org.")) this.answered(kind, performance.now() - t0); // an error reply is an answer
      }
      return undefined;
    }
  }

  private answered(kind: Kind, ms: number): void {
    this.latencies.push(ms);
    const key = kind === "fresh" ? "maxFresh" : "maxReused";
    this.f.latencyMs[key] = Math.max(this.f.latencyMs[key], ms);
  }

  done(): Figures {
    const l = [...this.latencies].sort((a, b) => a - b);
    const at = (q: number): number => l[Math.min(l.length - 1, Math.floor(q * l.length))] ?? 0;
    const r = (x: number): number => Math.round(x * 10) / 10;
    this.f.latencyMs = { median: r(at(0.5)), p99: r(at(0.99)), max: r(l[l.length - 1] ?? 0), maxFresh: r(this.f.latencyMs.maxFresh), maxReused: r(this.f.latencyMs.maxReused) };
    this.f.wallS = r((performance.now() - this.t0) / 1000);
    return this.f;
  }
}

function args(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      calls: { type: "string", default: "2000" },
      "timeout-ms": { type: "string", default: "15000" },
      unit: { type: "string", default: "systemd-journald.service" },
      "job-unit": { type: "string" },
      "job-every": { type: "string", default: "25" },
      workers: { type: "string", default: "8" },
      socket: { type: "string", default: SYSTEMD_PRIVATE_SOCKET },
    },
  }).values;
}

async function main(argv: string[]): Promise<number> {
  let values: ReturnType<typeof args>;
  try {
    values = args(argv);
  } catch (e) {
    process.stderr.write(`nvwa-dbus-stress: ${(e as Error).message}\n`);
    return 2;
  }
  const target = Number(values.calls);
  const timeoutMs = Number(values["timeout-ms"]);
  const jobEvery = Number(values["job-every"]);
  const workers = Number(values.workers);
  if (![target, timeoutMs, jobEvery, workers].every((n) => Number.isInteger(n) && n > 0)) {
    process.stderr.write("nvwa-dbus-stress: --calls, --timeout-ms, --job-every and --workers take positive integers\n");
    return 2;
  }
  const unit = values.unit;
  const jobUnit = values["job-unit"];
  const opts = { privateSocket: values.socket, busSocket: null, timeoutMs, callTimeoutMs: timeoutMs };
  const t = new Tally(timeoutMs, unit);

  const job = async (kind: Kind, mgr: SystemdManager, name: string): Promise<void> => {
    const path = await t.call(kind, () => mgr.startUnit(name));
    if (path === undefined) return;
    t.f.jobs.started++;
    const result = await mgr.waitForJob(path, 4 * timeoutMs).then(
      (o) => o.result,
      (e: unknown) => t.failure(kind, e),
    );
    t.f.jobs.results[result] = (t.f.jobs.results[result] ?? 0) + 1;
  };

  let reused = await SystemdManager.connect(opts);
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; t.f.calls < target; i++) {
      const withJob = jobUnit !== undefined && w === 0 && i % (2 * jobEvery) < 2;
      if (i % 2 === 0) {
        let mgr: SystemdManager;
        try {
          mgr = await SystemdManager.connect(opts);
          t.f.connects++;
        } catch (e) {
          t.f.connectFailures++;
          t.failure("fresh", e);
          continue;
        }
        try {
          const path = await t.call("fresh", () => mgr.loadUnit(unit));
          if (path !== undefined) await t.call("fresh", () => mgr.getProperty(path, UNIT_IFACE, "ActiveState"));
          if (withJob) await job("fresh", mgr, jobUnit);
        } finally {
          mgr.close();
        }
      } else {
        if (reused.conn.closed) {
          t.failure("reused", new NvwaError("dbus.disconnected", "the reused connection was closed; connecting again"));
          reused = await SystemdManager.connect(opts);
        }
        const mgr = reused;
        const path = await t.call("reused", async () => String((await mgr.managerCall("GetUnit", "s", [unit]))[0]));
        if (path !== undefined) {
          await t.call("reused", () => mgr.getProperty(path, SERVICE_IFACE, "MainPID"));
          if (i % 20 === 1) {
            await Promise.all(Array.from({ length: 8 }, (_, k) => t.call("reused", () => mgr.getProperty(path, k % 2 ? SERVICE_IFACE : UNIT_IFACE, k % 2 ? "MainPID" : "SubState"))));
          }
        }
        if (withJob) await job("reused", mgr, jobUnit);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  reused.close();
  process.stdout.write(`${JSON.stringify(t.done())}\n`);
  return 0;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
