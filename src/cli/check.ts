/**
 * `nvwa check [version]`: every preflight check as a table (or JSON), in the calling process,
 * without the daemon, so image build pipelines can run it. Reads only; exit code 3 on any fail.
 * `nvwa check --root DIR` checks an OS image tree instead of this system (src/image-check/):
 * nothing of the running system is read, so it runs unprivileged in a build pipeline.
 */
import { release } from "node:os";
import { defineCommand } from "./define.ts";
import { chooseLatest, type LatestChoice } from "../kexec/latest.ts";
import { kernelArg } from "./kernel-arg.ts";
import { loadConfig, resolveConfigDir } from "../config/load.ts";
import type { NvwaConfig } from "../config/types.ts";
import { ExitCode, NvwaError, isNvwaError, toNvwaError } from "../errors.ts";
import { runPreflight } from "../update/preflight-run.ts";
import type { ProbeOptions } from "../update/facts.ts";
import { fail, ok, warn, type Check } from "../update/preflight-types.ts";
import { argsOf } from "./arg-defs.ts";
import { renderEngineNotes } from "./notes.ts";

const LABEL: Record<Check["status"], string> = { ok: "ok", warn: "WARN", fail: "FAIL" };

/** The last line's verdict, for this system (the default) or for an image. */
export interface Verdicts {
  ready: string;
  refused: string;
}
const SYSTEM_VERDICTS: Verdicts = { ready: "ready to update", refused: "an update would be refused; nothing was changed" };
const IMAGE_VERDICTS: Verdicts = { ready: "the image is ready for nvwa", refused: "the image is not ready for nvwa" };

/** Pure: the aligned plain-text table, one row per check, the fix on the line below. */
export function renderCheckTable(checks: Check[], verdicts: Verdicts = SYSTEM_VERDICTS): string {
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
    `${count("ok")} ok, ${count("warn")} warning(s), ${nFail} failure(s): ${nFail > 0 ? verdicts.refused : verdicts.ready}`,
  );
  return `${lines.join("\n")}\n`;
}

export interface CheckOptions {
  version?: string;
  json?: boolean;
  configDir?: string;
  rehearse?: boolean;
  /** Check the OS image tree at this directory instead of the running system. */
  root?: string;
  /** Check loading the kernel `update --latest` would pick; the JSON gets `latest: { running, version }`. */
  latest?: boolean;
}

export interface CheckDeps {
  /** Probes and judges; tests pass one that returns fixture checks. */
  preflight?: (config: NvwaConfig, opts: ProbeOptions) => Promise<{ checks: Check[] }>;
  write?: (s: string) => void;
  rehearse?: (config: NvwaConfig) => Promise<Check[]>;
  /** `--latest`'s choice; tests pass a fixture. */
  chooseLatest?: () => LatestChoice;
  /** Scans and judges an image tree (absolute path); tests pass one that returns fixture checks. */
  imageCheck?: (root: string) => Check[];
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
      describeService: async (unit) => {
        mgr ??= await SystemdManager.connect();
        return mgr.serviceProperties(unit);
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

/**
 * Pure: the usage error for options that describe the running system given with --root, or null.
 * (--config-dir would name this system's config; an image's is its own /etc/nvwa.)
 */
export function rootConflict(o: CheckOptions): NvwaError | null {
  if (o.root === undefined) return null;
  const clash =
    o.version !== undefined
      ? `a <kernel-version> (${o.version}), which names a kernel to load on this running system`
      : o.latest === true
        ? "--latest, which picks a kernel for this running system"
        : o.rehearse === true
        ? "--rehearse, which checkpoints this system's running targets"
        : o.configDir !== undefined
          ? "--config-dir, which names this system's config (--root reads DIR/etc/nvwa)"
          : null;
  if (clash === null) return null;
  return new NvwaError("cli.usage", `--root checks an image offline and cannot be combined with ${clash}`, {
    exitCode: ExitCode.usage,
    hint: "run `nvwa check --root DIR [--json]` alone, or drop --root to check this system",
  });
}

/** `--root DIR`: the image's rows, `{ ok, root, checks }` as JSON; exit 3 on any fail. */
async function runImageCheck(dir: string, o: CheckOptions, deps: CheckDeps, write: (s: string) => void): Promise<ExitCode> {
  const conflict = rootConflict(o);
  if (conflict !== null) throw conflict;
  // Loaded here: a plain `nvwa check` does not pay for the image scanner.
  const image = await import("../image-check/index.ts");
  const root = image.imageRoot(dir);
  let checks: Check[];
  try {
    checks = (deps.imageCheck ?? image.checkImage)(root);
  } catch (e) {
    if (!o.json) throw e;
    const err = toNvwaError(e);
    write(`${JSON.stringify({ ok: false, root, checks: [], error: err.toJSON() }, null, 2)}\n`);
    return isNvwaError(e) ? e.exitCode : ExitCode.internal;
  }
  const ok = !checks.some((c) => c.status === "fail");
  write(o.json ? `${JSON.stringify({ ok, root, checks }, null, 2)}\n` : renderCheckTable(checks, IMAGE_VERDICTS));
  return ok ? ExitCode.ok : ExitCode.preflight;
}

/** The command's body, separate from citty so tests can call it. Returns the exit code. */
export async function runCheck(o: CheckOptions, deps: CheckDeps = {}): Promise<ExitCode> {
  const write = deps.write ?? ((s: string) => void process.stdout.write(s));
  if (o.root !== undefined) return runImageCheck(o.root, o, deps, write);
  const preflight = deps.preflight ?? runPreflight;
  let checks: Check[];
  let latest: LatestReport | undefined;
  try {
    const config = loadConfig(resolveConfigDir(o.configDir));
    const arg = kernelArg("check", o.version, o.latest === true);
    let version = arg.kind === "version" ? arg.version : null;
    let latestRow: Check | undefined;
    if (arg.kind === "latest") {
      ({ latest, row: latestRow } = latestCheck(deps.chooseLatest ?? (() => chooseLatest(release()))));
      version = latest.version;
    }
    checks = (await preflight(config, { version })).checks;
    if (latestRow !== undefined) checks.unshift(latestRow);
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
  write(o.json ? `${JSON.stringify({ ok, checks, ...(latest === undefined ? {} : { latest }) }, null, 2)}\n` : renderCheckTable(checks));
  return ok ? ExitCode.ok : ExitCode.preflight;
}

/** `--latest` in `check --json`: the running kernel and the one `update --latest` would move to (null: nothing newer). */
export interface LatestReport {
  running: string;
  version: string | null;
}

/**
 * `--latest`'s row: which kernel an update would pick, or that there is nothing to do; a newest
 * kernel without its initramfs fails the check (the update would be refused), named.
 */
export function latestCheck(choose: () => LatestChoice): { latest: LatestReport; row: Check } {
  const title = "latest kernel";
  try {
    const c = choose();
    if (c.kind === "newer") return { latest: { running: c.running, version: c.version }, row: ok("kernel.latest", title, `${c.version} is newer than the running ${c.running}: \`nvwa update --latest\` moves to it`) };
    return {
      latest: { running: c.running, version: null },
      row: ok("kernel.latest", title, `the running ${c.running} is the newest installed kernel: \`nvwa update --latest\` has nothing to do (exit 6)`),
    };
  } catch (e) {
    const err = toNvwaError(e);
    return { latest: { running: release(), version: null }, row: fail("kernel.latest", title, err.message, err.hint ?? "") };
  }
}

export const command = defineCommand({
  meta: { name: "check", description: "run every preflight check without changing anything" },
  args: argsOf("check"),
  run({ args }) {
    const version = typeof args.version === "string" && args.version !== "" ? args.version : undefined;
    const configDir = typeof args["config-dir"] === "string" ? args["config-dir"] : undefined;
    const root = typeof args.root === "string" ? args.root : undefined;
    return runCheck({
      ...(version === undefined ? {} : { version }),
      ...(configDir === undefined ? {} : { configDir }),
      ...(root === undefined ? {} : { root }),
      latest: args.latest === true,
      json: args.json === true,
      rehearse: args.rehearse === true,
    });
  },
});
