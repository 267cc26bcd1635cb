/**
 * Runs criu_exe and turns its failures into NvwaErrors that name the target and quote the last
 * meaningful lines of its log. criu is the only program nvwa runs (besides kexec_exe where the
 * kernel lacks kexec_file_load).
 *
 * criu's stdout (where --display-stats prints) goes to a file beside the log rather than to a
 * pipe: after `restore --restore-detached` the restored tree must not be left holding a pipe to
 * nvwa, and a file cannot make nvwa wait for a process that outlives criu.
 */
import { readTextOrNull } from "../read-text.ts";
import { accessSync, constants, rmSync } from "node:fs";
import { join } from "node:path";
import { NvwaError } from "../errors.ts";
import { note, type OnNote } from "../note.ts";
import { formatArgv } from "./argv.ts";
import { hintForLog, meaningfulLines, rootCause } from "./log.ts";

export interface CriuRunSpec {
  exe: string;
  argv: readonly string[];
  env?: Record<string, string>;
  /** What is being done, for messages: "dump", "restore", "check". */
  action: string;
  /** Whom it is done to, for messages: "redis.service", "pid 948". */
  target?: string;
  /** Where criu writes its log (`-o` relative to the images dir): quoted on failure. */
  logPath?: string;
  /** Directory for criu's stdout capture (the images dir); default: a pipe. */
  outDir?: string;
  /** Kill criu after this long (it would otherwise hold the tree seized for ever). */
  timeoutMs?: number;
  /** Told the command line (a debug note); probes pass none. */
  onNote?: OnNote;
  /**
   * Descriptors criu gets as its fds 3, 4, … (for `--inherit-fd fd[3]:…`): criu fstat()s them
   * while it parses its options, so they must be open in criu itself, not only in nvwa.
   */
  passFds?: readonly number[];
}

export interface CriuRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export function assertExecutable(exe: string): void {
  try {
    accessSync(exe, constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NvwaError(
      "criu.not-found",
      code === "ENOENT" ? `criu_exe ${exe} does not exist` : `criu_exe ${exe} is not executable (${code ?? String(e)})`,
      {
        hint: "install criu (the distribution package) or set criu_exe in nvwa-server.yaml to its path",
        details: { exe, errno: code },
      },
    );
  }
}

/** Runs criu; resolves whatever its exit code (see runCriuOk for the throwing form). */
export async function runCriu(spec: CriuRunSpec): Promise<CriuRun> {
  assertExecutable(spec.exe);
  const started = performance.now();
  const outPath = spec.outDir === undefined ? null : join(spec.outDir, `criu-${spec.action}.out`);
  spec.onNote?.(note("debug", `running ${formatArgv(spec.exe, spec.argv)}`));
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    const stdout = outPath === null ? "pipe" : Bun.file(outPath);
    proc = Bun.spawn([spec.exe, ...spec.argv], {
      env: { ...process.env, ...(spec.env ?? {}) },
      ...(spec.passFds === undefined || spec.passFds.length === 0 ? { stdin: "ignore", stdout, stderr: "pipe" } : { stdio: ["ignore", stdout, "pipe", ...spec.passFds] }),
      ...(spec.outDir === undefined ? {} : { cwd: spec.outDir }),
    });
  } catch (e) {
    throw new NvwaError("criu.spawn", `cannot start ${spec.exe}: ${e instanceof Error ? e.message : String(e)}`, {
      hint: "check criu_exe in nvwa-server.yaml",
      cause: e,
      details: { exe: spec.exe },
    });
  }
  let timedOut = false;
  const timer =
    spec.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          proc.kill("SIGKILL");
        }, spec.timeoutMs);
  const stdoutP = proc.stdout instanceof ReadableStream ? new Response(proc.stdout).text() : Promise.resolve("");
  const stderrP = proc.stderr instanceof ReadableStream ? new Response(proc.stderr).text() : Promise.resolve("");
  const exitCode = await proc.exited;
  if (timer !== undefined) clearTimeout(timer);
  const [pipedOut, stderr] = await Promise.all([stdoutP, stderrP]);
  let stdout = pipedOut;
  if (outPath !== null) {
    stdout = readTextOrNull(outPath) ?? "";
    rmSync(outPath, { force: true });
  }
  return { exitCode, stdout, stderr, ms: performance.now() - started, timedOut };
}

/** The log's last meaningful lines, or criu's stderr when there is no log to read. */
export function failureLines(spec: CriuRunSpec, run: CriuRun, max = 5): string[] {
  const logText = spec.logPath === undefined ? null : readTextOrNull(spec.logPath);
  const fromLog = logText === null ? [] : meaningfulLines(logText, max);
  if (fromLog.length > 0) return fromLog;
  return meaningfulLines(`${run.stderr}\n${run.stdout}`, max);
}

/** Pure: the NvwaError for a failed criu run. */
export function criuFailure(spec: CriuRunSpec, run: CriuRun, lines: readonly string[]): NvwaError {
  const who = spec.target === undefined ? "" : ` of ${spec.target}`;
  const why = run.timedOut
    ? `did not finish within ${Math.round((spec.timeoutMs ?? 0) / 1000)} s and was killed`
    : `failed (exit code ${run.exitCode})`;
  const cause = rootCause(lines);
  const quoted = cause === undefined || cause === "" ? "" : `: ${cause}`;
  const where = spec.logPath === undefined ? "" : `; full log: ${spec.logPath}`;
  const hint =
    (run.timedOut
      ? "criu hung; on VMs without hardware breakpoints criu < 4.2 hangs unless CRIU_FAULT=130 is set (nvwa sets it by default)"
      : hintForLog(lines)) ?? `read the criu log${spec.logPath === undefined ? "" : ` ${spec.logPath}`} for the cause`;
  return new NvwaError(`criu.${spec.action}-failed`, `criu ${spec.action}${who} ${why}${quoted}${where}`, {
    hint,
    details: {
      action: spec.action,
      ...(spec.target === undefined ? {} : { target: spec.target }),
      exitCode: run.exitCode,
      timedOut: run.timedOut,
      logLines: [...lines],
      ...(spec.logPath === undefined ? {} : { log: spec.logPath }),
      command: formatArgv(spec.exe, spec.argv),
    },
  });
}

/** Runs criu and throws `criu.<action>-failed` unless it exits 0. */
export async function runCriuOk(spec: CriuRunSpec): Promise<CriuRun> {
  const run = await runCriu(spec);
  if (run.exitCode === 0 && !run.timedOut) return run;
  throw criuFailure(spec, run, failureLines(spec, run));
}
