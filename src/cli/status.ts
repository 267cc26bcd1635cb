import { defineCommand } from "./define.ts";
import { loadConfig, resolveConfigDir } from "../config/load.ts";
import { ExitCode, NvwaError } from "../errors.ts";
import type { Manifest } from "../state/manifest.ts";
import { readManifestIfAny } from "../state/manifest-file.ts";
import { renderSummary, summarise } from "../update/summary.ts";
import { argsOf } from "./arg-defs.ts";
import { writeErr, writeOut } from "./output.ts";

/** `--wait`'s default limit: a jump plus the restore of large targets on a slow edge node. */
export const DEFAULT_WAIT_SECONDS = 900;
const POLL_MS = 500;

type Phase = Manifest["phase"] | "none";

/**
 * Pure: whether the last update has finished, and the exit code that says how. Every other
 * phase is on its way somewhere: the checkpoint, the jump, or the restore on the new boot
 * (which the daemon resumes after a crash, so a waiting client just keeps waiting).
 */
export function finished(phase: Phase): ExitCode | null {
  switch (phase) {
    case "none":
    case "restored":
      return ExitCode.ok;
    case "restore-failed":
      return ExitCode.partial;
    case "rolled-back":
      return ExitCode.failed;
    default:
      return null;
  }
}

/** Pure: `--timeout`'s value in seconds, or a usage error saying what is wrong with it. */
export function parseTimeout(text: string | undefined, wait: boolean): number {
  if (text === undefined) return DEFAULT_WAIT_SECONDS;
  if (!wait) throw new NvwaError("cli.usage", "--timeout only means something with --wait", { exitCode: ExitCode.usage, hint: "`nvwa status --wait --timeout 600`" });
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(n) || n <= 0) {
    throw new NvwaError("cli.usage", `--timeout "${text}" is not a number of seconds`, { exitCode: ExitCode.usage, hint: "give a positive number, e.g. --timeout 900" });
  }
  return n;
}

async function waitForEnd(criuDir: string, seconds: number, quiet: boolean): Promise<{ m: Manifest | null; code: ExitCode }> {
  const deadline = Date.now() + seconds * 1000;
  let said = "";
  for (;;) {
    const m = readManifestIfAny(criuDir);
    const phase: Phase = m?.phase ?? "none";
    // The boot-side restore sets the phase a moment before it ends (its last stamp): wait for that too.
    const restoreRunning = m !== null && m.timings["boot-restore"] !== undefined && m.timings["boot-restore"].end === undefined;
    const code = restoreRunning ? null : finished(phase);
    if (code !== null) return { m, code };
    if (Date.now() >= deadline) return { m, code: ExitCode.timeout };
    const line = `waiting for update ${m?.updateId ?? "?"} (${m?.kernel.from ?? "?"} → ${m?.kernel.to ?? "?"}): ${phase}`;
    if (!quiet && line !== said) await writeErr(`${line}\n`);
    said = line;
    await Bun.sleep(POLL_MS);
  }
}

/**
 * Reads the manifest directly rather than asking the daemon: status must work when the daemon
 * is down, which is exactly when an operator needs it. `--wait` polls it until the update is
 * over, for automation that runs nvwa from another machine after the node comes back.
 */
export const command = defineCommand({
  meta: { name: "status" },
  args: argsOf("status"),
  async run({ args }) {
    const wait = args.wait === true;
    const seconds = parseTimeout(args.timeout, wait);
    const config = loadConfig(resolveConfigDir(args["config-dir"]));
    const { m, code } = wait
      ? await waitForEnd(config.server.criuDir, seconds, args.json === true)
      : (() => {
          const found = readManifestIfAny(config.server.criuDir);
          return { m: found, code: found?.phase === "restore-failed" ? ExitCode.partial : ExitCode.ok };
        })();
    if (m === null) {
      await writeOut(args.json ? `${JSON.stringify({ phase: "none" })}\n` : `no update recorded in ${config.server.criuDir}\n`);
      return ExitCode.ok;
    }
    const s = summarise(m);
    await writeOut(args.json ? `${JSON.stringify({ ...s, manifest: m }, null, 2)}\n` : renderSummary(s));
    if (code === ExitCode.timeout) {
      throw new NvwaError("status.wait-timeout", `update ${m.updateId} is still ${m.phase} after ${seconds} s`, {
        exitCode: ExitCode.timeout,
        hint: "see `systemctl status nvwa` and `journalctl -u nvwa -b` on the node; wait longer with --timeout",
      });
    }
    return code;
  },
});
