/**
 * `nvwa check [version]`: every preflight check as a table (or JSON), in the calling process,
 * without the daemon, so image build pipelines can run it. Reads only; exit code 3 on any fail.
 */
import { defineCommand } from "./define.ts";
import { loadConfig, resolveConfigDir } from "../config/load.ts";
import type { NvwaConfig } from "../config/types.ts";
import { ExitCode, isNvwaError, toNvwaError } from "../errors.ts";
import { runPreflight } from "../update/preflight-run.ts";
import type { ProbeOptions } from "../update/facts.ts";
import { fail, ok, warn, type Check } from "../update/preflight-types.ts";
import { argsOf } from "./arg-defs.ts";
import { renderEngineNotes } from "./notes.ts";

const LABEL: Record<Check["status"], string> = { ok: "ok", warn: "WARN", fail: "FAIL" };

/** Pure: the aligned plain-text table, one row per check, the fix on the line below. */
export function renderCheckTable(checks: Check[]): string {
  const titleWidth = Math.max(5, ...checks.map((c) => c.title.length));
  const pad = (s: string, n: number): string => s + " ".repeat(Math.max(0, n - s.length));
  const indent = " ".repeat(6 + 2 + titleWidth + 2);
  const lines = [`${pad("STATUS", 6)}  ${pad("CHECK", titleWidth)}  DETAIL`];
  for (const c of checks) {
    lines.push(`${pad(LABEL[c.status], 6)}  ${pad(c.title, titleWidth)}  ${c.detail}`);
    if (c.fix && c.status !== "ok") lines.push(`${indent}fix: ${c.fix}`);
  }
  const count = (s: Check["status"]): number => checks.filter((c) => c.status === s).length;
  const nFail = count("fail");
  lines.push("");
  lines.push(
    `${count("ok")} ok, ${count("warn")} warning(s), ${nFail} failure(s): ${nFail > 0 ? "an update would be refused; nothing was changed" : "ready to update"}`,
  );
  return `${lines.join("\n")}\n`;
}

export interface CheckOptions {
  version?: string;
  json?: boolean;
  configDir?: string;
  rehearse?: boolean;
}

export interface CheckDeps {
  /** Probes and judges; tests pass one that returns fixture checks. */
  preflight?: (config: NvwaConfig, opts: ProbeOptions) => Promise<{ checks: Check[] }>;
  write?: (s: string) => void;
  rehearse?: (config: NvwaConfig) => Promise<Check[]>;
}

const mib = (b: number | undefined): string => (b === undefined ? "?" : `${(b / 2 ** 20).toFixed(1)} MiB`);

/**
 * `--rehearse`: each target is checkpointed and given back through the rollback path, as an
 * update would on failure; one row per target with its freeze time, dump time and image size.
 */
export async function rehearseChecks(config: NvwaConfig): Promise<Check[]> {
  const [{ rehearse }, { SystemdManager }] = await Promise.all([import("../update/rehearse.ts"), import("../systemd/manager.ts")]);
  let mgr: InstanceType<typeof SystemdManager> | undefined;
  try {
    const report = await rehearse(config, {
      onEvent: renderEngineNotes,
      resolveService: async (unit) => {
        mgr ??= await SystemdManager.connect();
        return (await mgr.serviceProperties(unit)).mainPid;
      },
    });
    return report.targets.map((t) =>
      t.ok
        ? ok(`rehearse.${t.name}`, `rehearsal ${t.name}`, `frozen ${t.frozenMs ?? "?"} ms (stopped ${t.stoppedMs ?? "?"} ms), dump ${t.dumpMs ?? "?"} ms, images ${mib(t.imageBytes)}, resumed by ${t.resumedBy ?? "?"}`)
        : fail(`rehearse.${t.name}`, `rehearsal ${t.name}`, t.error?.message ?? "could not be checkpointed", t.error?.hint ?? "see its dump.log under criu_dir/.rehearsal"),
    );
  } finally {
    mgr?.close();
  }
}

/** The command's body, separate from citty so tests can call it. Returns the exit code. */
export async function runCheck(o: CheckOptions, deps: CheckDeps = {}): Promise<ExitCode> {
  const write = deps.write ?? ((s: string) => void process.stdout.write(s));
  const preflight = deps.preflight ?? runPreflight;
  let checks: Check[];
  try {
    const config = loadConfig(resolveConfigDir(o.configDir));
    checks = (await preflight(config, { version: o.version ?? null })).checks;
  } catch (e) {
    if (!o.json) throw e;
    // A pipeline asked for JSON: give it JSON even when the config cannot be read.
    const err = toNvwaError(e);
    write(`${JSON.stringify({ ok: false, checks: [], error: err.toJSON() }, null, 2)}\n`);
    return isNvwaError(e) ? e.exitCode : ExitCode.internal;
  }
  if (o.rehearse) {
    const failedBefore = checks.some((c) => c.status === "fail");
    if (failedBefore) {
      checks.push(warn("rehearse", "rehearsal", "not run: fix the failures above first", "a rehearsal freezes the targets; it runs only when everything else passes"));
    } else {
      checks.push(...(await (deps.rehearse ?? rehearseChecks)(loadConfig(resolveConfigDir(o.configDir)))));
    }
  }
  const ok = !checks.some((c) => c.status === "fail");
  write(o.json ? `${JSON.stringify({ ok, checks }, null, 2)}\n` : renderCheckTable(checks));
  return ok ? ExitCode.ok : ExitCode.preflight;
}

export const command = defineCommand({
  meta: { name: "check", description: "run every preflight check without changing anything" },
  args: argsOf("check"),
  run({ args }) {
    const version = typeof args.version === "string" && args.version !== "" ? args.version : undefined;
    const configDir = typeof args["config-dir"] === "string" ? args["config-dir"] : undefined;
    return runCheck({
      ...(version === undefined ? {} : { version }),
      ...(configDir === undefined ? {} : { configDir }),
      json: args.json === true,
      rehearse: args.rehearse === true,
    });
  },
});
