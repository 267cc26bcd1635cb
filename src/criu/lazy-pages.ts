/**
 * criu's lazy-pages daemon for one target (enable_lazy_restore): started before `criu restore
 * --lazy-pages`, as nvwa's own child, so that nvwa learns how it ended. It serves the restored
 * tree's page faults and copies the rest of its private memory in the background, then exits 0
 * once every page is in. Any other end while the tree lives leaves the pages not yet copied
 * reading as zeros, with no signal to the program (src/criu/notes/pre-dump-and-lazy-restore.md,
 * §4): that is src/restore/lazy.ts's to report.
 */
import { join } from "node:path";
import { NvwaError } from "../errors.ts";
import { note, type OnNote } from "../note.ts";
import { readTextOrNull } from "../read-text.ts";
import { formatArgv, LAZY_PAGES_LOG, lazyPagesArgv } from "./argv.ts";
import { meaningfulLines, rootCause } from "./log.ts";
import { assertExecutable } from "./runner.ts";

export interface LazyExit {
  code: number | null;
  signal: string | null;
}

export interface LazyPagesDaemon {
  pid: number;
  logPath: string;
  /** Settles when it exits (never rejects). */
  exited: Promise<LazyExit>;
  kill(): void;
}

export interface StartLazyPagesOptions {
  exe: string;
  imagesDir: string;
  env?: Record<string, string>;
  verbosity?: number;
  /** How long it may take to listen (it reads the target's process tree image first). */
  readyTimeoutMs?: number;
  onNote?: OnNote;
}

/** The status fd criu gets: its fd 3 (0–2 are its stdio). */
const STATUS_FD = 3;

/** Pure: a lazy-pages end in words ("exit code 1", "killed by SIGKILL"). */
export function describeLazyExit(e: LazyExit): string {
  return e.signal !== null ? `killed by ${e.signal}` : `exit code ${e.code ?? "unknown"}`;
}

/** Pure: only a clean exit 0 means every page was copied. */
export function lazyCompleted(e: LazyExit): boolean {
  return e.signal === null && e.code === 0;
}

/** Starts the daemon and waits until it listens; throws `criu.lazy-pages-start` (and leaves none running) if it does not. */
export async function startLazyPages(o: StartLazyPagesOptions): Promise<LazyPagesDaemon> {
  assertExecutable(o.exe);
  const argv = lazyPagesArgv({ imagesDir: o.imagesDir, statusFd: STATUS_FD, ...(o.verbosity === undefined ? {} : { verbosity: o.verbosity }) });
  const logPath = join(o.imagesDir, LAZY_PAGES_LOG);
  o.onNote?.(note("debug", `running ${formatArgv(o.exe, argv)}`));
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn([o.exe, ...argv], {
      env: { ...process.env, ...(o.env ?? {}) },
      cwd: o.imagesDir,
      stdio: ["ignore", "ignore", "ignore", "pipe"],
    });
  } catch (e) {
    throw new NvwaError("criu.spawn", `cannot start ${o.exe} lazy-pages: ${e instanceof Error ? e.message : String(e)}`, { hint: "check criu_exe in nvwa-server.yaml", cause: e });
  }
  const exited = proc.exited.then(
    (code) => ({ code: proc.signalCode === null ? code : null, signal: proc.signalCode }),
    () => ({ code: null, signal: null }),
  );
  const statusFd = proc.stdio[STATUS_FD];
  // criu writes one byte and closes the fd once it listens; EOF with nothing means it gave up.
  const ready =
    typeof statusFd === "number"
      ? // Bun closes the fd at the stream's end (closing it again here could close a reused number).
        new Response(Bun.file(statusFd).stream()).arrayBuffer().then((b) => b.byteLength > 0, () => false)
      : Promise.resolve(false);
  const timeoutMs = o.readyTimeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const outcome = await Promise.race([ready, timedOut]);
  clearTimeout(timer);
  if (outcome === true) {
    return { pid: proc.pid, logPath, exited, kill: () => proc.kill("SIGKILL") };
  }
  proc.kill("SIGKILL");
  const end = await exited;
  const lines = meaningfulLines(readTextOrNull(logPath) ?? "", 5);
  const cause = rootCause(lines);
  const why = outcome === "timeout" ? `did not listen within ${Math.round(timeoutMs / 1000)} s` : `ended before it listened (${describeLazyExit(end)})`;
  throw new NvwaError("criu.lazy-pages-start", `criu lazy-pages ${why}${cause === undefined || cause === "" ? "" : `: ${cause}`}`, {
    // criu says nothing when the kernel has no userfaultfd (cr_lazy_pages returns at once).
    hint: `criu check --feature uffd-noncoop tells whether this kernel can restore lazily; full log: ${logPath}`,
    details: { log: logPath, logLines: lines, command: formatArgv(o.exe, argv) },
  });
}
