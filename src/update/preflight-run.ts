/**
 * Preflight as `nvwa check` and `nvwa update` run it: probe the machine, judge the facts.
 * Reads only; see facts.ts for exactly what is touched.
 */
import type { NvwaConfig } from "../config/types.ts";
import { probeFacts, type ProbeOptions } from "./facts.ts";
import type { Facts } from "./facts-types.ts";
import { assertPreflight, evaluatePreflight } from "./preflight.ts";
import type { Check } from "./preflight-types.ts";

export interface PreflightResult {
  ok: boolean;
  checks: Check[];
  facts: Facts;
}

export async function runPreflight(config: NvwaConfig, opts: ProbeOptions = {}): Promise<PreflightResult> {
  const facts = await probeFacts(config, opts);
  const checks = evaluatePreflight(facts, config);
  return { ok: !checks.some((c) => c.status === "fail"), checks, facts };
}

/**
 * For `nvwa update`: runs the checks and throws preflight.failed (exit 3) on any fail. The facts
 * come back too: the update plans from them rather than asking the machine a second time.
 */
export async function requirePreflight(config: NvwaConfig, opts: ProbeOptions = {}): Promise<{ checks: Check[]; facts: Facts }> {
  const { checks, facts } = await runPreflight(config, opts);
  return { checks: assertPreflight(checks, opts.version ?? undefined), facts };
}
