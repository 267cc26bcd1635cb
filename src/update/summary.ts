/**
 * What `nvwa status` and the end of `nvwa update` tell a person: kernels, each target's phase,
 * per-phase durations and each target's downtime (frozen → running again). Pure over a manifest.
 */
import type { ContainerTarget, Manifest, Target, Timing } from "../state/manifest.ts";

export interface TargetSummary {
  name: string;
  kind: Target["kind"];
  phase: Target["phase"];
  rootPid: number;
  /** Dump start → restore end, when both happened. */
  downtimeMs?: number;
  steps: { name: string; ms: number }[];
  /**
   * Lazy restore: "coming back" while criu lazy-pages copies the memory of a running target,
   * "back" with `ms` from running again to the last page, "lost" when the daemon ended early.
   */
  memory?: { state: "coming back" | "back" | "lost"; ms?: number };
  error?: string;
}

export interface ContainerSummary {
  name: string;
  /** podman's id, first 12 hex digits. */
  id: string;
  phase: ContainerTarget["phase"];
  /** Checkpoint start → restore end. */
  downtimeMs?: number;
  steps: { name: string; ms: number }[];
  error?: string;
}

export interface UpdateSummary {
  updateId: string;
  phase: Manifest["phase"];
  kernelFrom: string;
  kernelTo: string;
  loader?: string;
  phases: { name: string; ms: number }[];
  targets: TargetSummary[];
  /** podman containers (only when the update had any). */
  containers?: ContainerSummary[];
  error?: string;
  /** Each start of the daemon that found the update unfinished (a crash, a power cut) and what it did. */
  recoveries?: { at: number; found: Manifest["phase"]; action: string; message: string }[];
}

function durations(timings: Record<string, Timing>): { name: string; ms: number }[] {
  return Object.entries(timings)
    .filter((e): e is [string, Required<Timing>] => e[1].end !== undefined)
    .sort((a, b) => a[1].start - b[1].start)
    .map(([name, t]) => ({ name, ms: t.end - t.start }));
}

/** The target's outage: from the first dump-side stamp to the last restore-side stamp. */
export function downtimeOf(t: Target): number | undefined {
  const entries = Object.entries(t.timings);
  const starts = entries.filter(([k]) => /^(freeze|dump)/.test(k)).map(([, v]) => v.start);
  const ends = entries.filter(([k]) => /^restore/.test(k)).map(([, v]) => v.end).filter((x): x is number => x !== undefined);
  if (starts.length === 0 || ends.length === 0 || t.phase !== "restored") return undefined;
  return Math.max(...ends) - Math.min(...starts);
}

function containerSummary(c: ContainerTarget): ContainerSummary {
  const from = c.timings.checkpoint?.start;
  const to = c.timings.restore?.end;
  const downtimeMs = from !== undefined && to !== undefined && c.phase === "restored" ? to - from : undefined;
  return {
    name: c.name,
    id: c.id.slice(0, 12),
    phase: c.phase,
    ...(downtimeMs === undefined ? {} : { downtimeMs }),
    steps: durations(c.timings),
    ...(c.error === undefined ? {} : { error: `${c.error.message}${c.error.hint ? ` — ${c.error.hint}` : ""}` }),
  };
}

function lazyMemory(l: NonNullable<Target["lazy"]>): NonNullable<TargetSummary["memory"]> {
  const ms = l.endedAt === undefined ? undefined : l.endedAt - l.startedAt;
  const state = l.state === "done" ? "back" : l.state === "lost" ? "lost" : "coming back";
  return { state, ...(ms === undefined ? {} : { ms }) };
}

export function summarise(m: Manifest): UpdateSummary {
  return {
    updateId: m.updateId,
    phase: m.phase,
    kernelFrom: m.kernel.from,
    kernelTo: m.kernel.to,
    ...(m.kernel.loader === undefined ? {} : { loader: m.kernel.loader }),
    phases: durations(m.timings),
    targets: m.targets.map((t) => {
      const downtimeMs = downtimeOf(t);
      return {
        name: t.name,
        kind: t.kind,
        phase: t.phase,
        rootPid: t.rootPid,
        ...(downtimeMs === undefined ? {} : { downtimeMs }),
        steps: durations(t.timings),
        ...(t.lazy === undefined ? {} : { memory: lazyMemory(t.lazy) }),
        ...(t.error === undefined ? {} : { error: `${t.error.message}${t.error.hint ? ` — ${t.error.hint}` : ""}` }),
      };
    }),
    ...(m.containers.length === 0 ? {} : { containers: m.containers.map(containerSummary) }),
    ...(m.error === undefined ? {} : { error: `${m.error.message}${m.error.hint ? ` — ${m.error.hint}` : ""}` }),
    ...(m.recoveries === undefined ? {} : { recoveries: m.recoveries.map(({ at, found, action, message }) => ({ at, found, action, message })) }),
  };
}

const secs = (ms: number): string => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms} ms`);

export function renderSummary(s: UpdateSummary): string {
  const lines = [
    `update ${s.updateId}: ${s.phase}`,
    `kernel ${s.kernelFrom} → ${s.kernelTo}${s.loader ? ` (loaded with ${s.loader})` : ""}`,
  ];
  if (s.error) lines.push(`error: ${s.error}`);
  for (const r of s.recoveries ?? []) lines.push(`interrupted: ${r.message} (${new Date(r.at).toISOString()})`);
  if (s.phases.length > 0) lines.push(`phases: ${s.phases.map((p) => `${p.name} ${secs(p.ms)}`).join(", ")}`);
  if (s.targets.length === 0 && (s.containers ?? []).length === 0) lines.push("targets: none");
  for (const t of s.targets) {
    const down = t.downtimeMs === undefined ? "" : `, downtime ${secs(t.downtimeMs)}`;
    lines.push(`  ${t.kind === "pid" ? "pid" : "service"} ${t.name} (root pid ${t.rootPid}): ${t.phase}${down}`);
    if (t.steps.length > 0) lines.push(`    ${t.steps.map((p) => `${p.name} ${secs(p.ms)}`).join(", ")}`);
    if (t.memory !== undefined) {
      lines.push(
        `    memory (lazy restore): ${t.memory.state === "back" ? `all back ${secs(t.memory.ms ?? 0)} after it ran again` : t.memory.state === "lost" ? "lost: the lazy-pages daemon ended early" : "coming back (it runs meanwhile)"}`,
      );
    }
    if (t.error) lines.push(`    error: ${t.error}`);
  }
  for (const c of s.containers ?? []) {
    const down = c.downtimeMs === undefined ? "" : `, downtime ${secs(c.downtimeMs)}`;
    lines.push(`  container ${c.name} (id ${c.id}): ${c.phase}${down}`);
    if (c.steps.length > 0) lines.push(`    ${c.steps.map((p) => `${p.name} ${secs(p.ms)}`).join(", ")}`);
    if (c.error) lines.push(`    error: ${c.error}`);
  }
  return `${lines.join("\n")}\n`;
}
