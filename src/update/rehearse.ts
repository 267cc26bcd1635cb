/**
 * `nvwa check --rehearse`: checkpoint every configured target and give it back through the
 * rollback path, measuring what a real update would cost it: freeze time, dump time, image
 * size. Runs in the calling process (no daemon needed), under the same lock as an update, in
 * its own directory `<criu_dir>/.rehearsal/` so a pending update's images are never touched,
 * and removes its images afterwards.
 *
 * Each target is rehearsed on its own (dumped, then resumed at once): a failing target does not
 * hide the others, and no workload stays frozen while another one is dumped. The report adds
 * what the serial real thing would do: target i stays frozen while targets i+1..n are dumped.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { NvwaConfig } from "../config/types.ts";
import { toNvwaError, type NvwaError } from "../errors.ts";
import { acquireLock, lockPath } from "../state/lock.ts";
import { ensurePrivateDir } from "../state/private-dir.ts";
import { checkpoint } from "./checkpoint.ts";
import { rollbackCheckpoint } from "./rollback.ts";
import { ignoreEvents, type OnEvent, type ResumeHow } from "../criu/events.ts";
import { gatherCheckpointFacts } from "../criu/facts.ts";
import { planCheckpoint, type PlanProblem } from "../criu/plan.ts";
import { probeCriu, type CriuCapabilities } from "../criu/probe.ts";
import { serviceRootPid } from "../systemd/service-root.ts";
import type { ServiceProperties } from "../systemd/units.ts";

export const REHEARSAL_DIR = ".rehearsal";

export interface RehearsalTarget {
  name: string;
  kind: "pid" | "service";
  rootPid: number | null;
  ok: boolean;
  /** Processes / pids (threads included) in the tree. */
  processes?: number;
  pids?: number;
  /** criu's freezing time: from the first SIGSTOP-like seize until the whole tree stood still. */
  freezingMs?: number;
  /** criu's frozen time: the tree stood still for this long inside the dump. */
  frozenMs?: number;
  /** Wall time of `criu dump`. */
  dumpMs?: number;
  /** How long the workload was actually stopped in the rehearsal (dump start → resumed). */
  stoppedMs?: number;
  imageBytes?: number;
  resumedBy?: ResumeHow;
  error?: { code: string; message: string; hint?: string };
}

export interface RehearsalReport {
  criu: { exe: string; version: string };
  ok: boolean;
  targets: RehearsalTarget[];
  /** In a real update (serial dumps), how long the first target would stay frozen before the commit. */
  serialFreezeMs: number;
  totalImageBytes: number;
}

export interface RehearseOptions {
  /** MainPID of a configured service (0: not running). Required when services are configured, unless describeService is given. */
  resolveService?: (unit: string) => Promise<number>;
  /** What systemd says of a configured service: its main pid and, for journal output, its streams' headers. */
  describeService?: (unit: string) => Promise<ServiceProperties>;
  /** Reuse an earlier probe. */
  caps?: CriuCapabilities;
  onEvent?: OnEvent;
  dumpTimeoutMs?: number;
  hardwareBreakpoints?: boolean;
}

function fromError(e: NvwaError): RehearsalTarget["error"] {
  return { code: e.code, message: e.message, ...(e.hint === undefined ? {} : { hint: e.hint }) };
}

function fromProblem(p: PlanProblem): RehearsalTarget["error"] {
  return { code: p.code, message: p.message, hint: p.hint };
}

export async function rehearse(config: NvwaConfig, opts: RehearseOptions = {}): Promise<RehearsalReport> {
  const emit = opts.onEvent ?? ignoreEvents;
  const lock = acquireLock(lockPath(config.server.criuDir), "rehearsal", { onNote: emit });
  const dir = join(config.server.criuDir, REHEARSAL_DIR);
  try {
    const caps = opts.caps ?? (await probeCriu(config.server.criuExe, { hardwareBreakpoints: opts.hardwareBreakpoints ?? false }));
    const servicePids: Record<string, number> = {};
    const described: ServiceProperties[] = [];
    for (const unit of config.restore.services) {
      if (opts.describeService) {
        const p = await opts.describeService(unit);
        described.push(p);
        // A unit with no process to dump: 0, which the plan reports by name.
        servicePids[unit] = (() => {
          try {
            return serviceRootPid(p);
          } catch {
            return 0;
          }
        })();
      } else {
        servicePids[unit] = opts.resolveService ? await opts.resolveService(unit) : 0;
      }
    }
    ensurePrivateDir(dir, emit);
    const rehearsalConfig: NvwaConfig = { ...config, server: { ...config.server, criuDir: dir } };
    const one = (kind: "pid" | "service", name: string): NvwaConfig => ({
      ...rehearsalConfig,
      restore: { ...rehearsalConfig.restore, pids: kind === "pid" ? [Number(name)] : [], services: kind === "service" ? [name] : [] },
    });
    const wanted = [
      ...config.restore.pids.map((p) => ({ kind: "pid" as const, name: String(p) })),
      ...config.restore.services.map((s) => ({ kind: "service" as const, name: s })),
    ];
    const targets: RehearsalTarget[] = [];
    for (const w of wanted) {
      const plan = planCheckpoint(one(w.kind, w.name), gatherCheckpointFacts(caps, servicePids, opts.hardwareBreakpoints ?? false, described));
      const planned = plan.targets[0];
      const problem = plan.problems[0];
      if (problem !== undefined || planned === undefined) {
        targets.push({ name: w.name, kind: w.kind, rootPid: planned?.rootPid ?? null, ok: false, ...(problem ? { error: fromProblem(problem) } : {}) });
        continue;
      }
      const t0 = performance.now();
      try {
        const r = await checkpoint(plan, { rehearsal: true, onEvent: emit, ...(opts.dumpTimeoutMs === undefined ? {} : { dumpTimeoutMs: opts.dumpTimeoutMs }) });
        const back = await rollbackCheckpoint(r.manifest, { criuExe: plan.criuExe, onEvent: emit });
        // From the first freeze on: pre-dump rounds ran while the target did.
        const stoppedMs = performance.now() - t0 - r.preDumpMs;
        const d = r.dumped[0];
        const outcome = back.outcomes.find((o) => o.name === w.name);
        const failed = outcome !== undefined && !outcome.ok;
        const stats = d?.stats;
        targets.push({
          name: w.name,
          kind: w.kind,
          rootPid: planned.rootPid,
          ok: !failed,
          processes: planned.processes.length,
          pids: d?.pids.length ?? planned.pids.length,
          ...(stats?.freezingUs === undefined ? {} : { freezingMs: stats.freezingUs / 1000 }),
          ...(stats?.frozenUs === undefined ? {} : { frozenMs: stats.frozenUs / 1000 }),
          ...(d === undefined ? {} : { dumpMs: d.ms, imageBytes: d.bytes }),
          stoppedMs,
          ...(outcome !== undefined && outcome.how !== "none" ? { resumedBy: outcome.how } : {}),
          ...(failed && outcome?.error ? { error: fromError(outcome.error) } : {}),
        });
      } catch (e) {
        targets.push({ name: w.name, kind: w.kind, rootPid: planned.rootPid, ok: false, stoppedMs: performance.now() - t0, error: fromError(toNvwaError(e)) });
      }
    }
    const dumpMs = targets.map((t) => t.dumpMs ?? 0);
    return {
      criu: { exe: caps.exe, version: caps.version.text },
      ok: targets.every((t) => t.ok),
      targets,
      serialFreezeMs: dumpMs.reduce((a, b) => a + b, 0),
      totalImageBytes: targets.reduce((a, t) => a + (t.imageBytes ?? 0), 0),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    lock.release();
  }
}
