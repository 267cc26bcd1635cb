/**
 * Shared setup for the criu host tests: the criu to use (built by test/host/setup-criu.sh, or
 * given in NVWA_TEST_CRIU), workloads started as real daemons (test/host/helpers/workload.py),
 * and small polling helpers. No criu means a failed test, never a skipped one: CI must prove the
 * engine against a real criu.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS, type NvwaConfig, type RestoreConfig } from "../../../src/config/types.ts";
import { readProc } from "../../../src/criu/proc.ts";

const HERE = import.meta.dir;
export const WORKLOAD = join(HERE, "workload.py");
export const PYTHON = "/usr/bin/python3";
const SETUP = join(HERE, "..", "setup-criu.sh");

const cache = new Map<string, string>();

/**
 * The criu of a Debian suite, set up once (idempotent, cached on disk). `envVar` overrides it.
 * Throws with setup-criu.sh's own words when that fails.
 */
export function criuFor(suite: "trixie" | "sid", envVar: string): string {
  const given = process.env[envVar];
  if (given) {
    if (!existsSync(given)) throw new Error(`${envVar}=${given} does not exist`);
    return given;
  }
  const hit = cache.get(suite);
  if (hit) return hit;
  const r = Bun.spawnSync(["bash", SETUP], { env: { ...process.env, NVWA_CRIU_SUITE: suite }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const path = r.stdout.toString().trim().split("\n").pop() ?? "";
  if (r.exitCode !== 0 || path === "" || !existsSync(path)) {
    throw new Error(`cannot set up ${suite}'s criu for the host tests (bash ${SETUP}, exit ${r.exitCode}):\n${r.stderr.toString().slice(-2000)}`);
  }
  cache.set(suite, path);
  return path;
}

/** The criu the host tests run: trixie's 4.1.1, or NVWA_TEST_CRIU. */
export function testCriu(): string {
  return criuFor("trixie", "NVWA_TEST_CRIU");
}

export interface Workload {
  pid: number;
  dir: string;
  file(name: string): string;
  num(name: string): number | null;
  text(name: string): string | null;
}

export class Workloads {
  readonly base = mkdtempSync(join(tmpdir(), "nvwa-wl-"));
  private readonly started: number[] = [];
  private n = 0;

  /** Starts a daemonized workload (its own session leader; `--double-fork` in args: not) and waits for its pid file. */
  async start(mode: string, ...args: string[]): Promise<Workload> {
    const dir = join(this.base, `${mode}-${this.n++}`);
    const r = Bun.spawnSync([PYTHON, WORKLOAD, mode, dir, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`workload ${mode} did not start: ${r.stderr.toString()}`);
    const pid = await waitFor(`pid file of ${mode}`, () => numFile(join(dir, "pid")));
    this.started.push(pid);
    return workload(pid, dir);
  }

  /**
   * A shell job: the workload stays in the session and process group of a shell that started it.
   * The shell leads a session of its own (setsid) rather than sharing the test runner's, because
   * the runner's session may belong to an ancestor pid namespace (CI runs in a sandbox), where
   * /proc reports session 0 and criu refuses the tree whatever the flags.
   */
  async startForeground(mode: string, ...args: string[]): Promise<Workload> {
    const dir = join(this.base, `${mode}-fg-${this.n++}`);
    // `; :` keeps sh from exec'ing python: the shell must stay as the session and group leader.
    const shell = Bun.spawn(["/usr/bin/setsid", "/bin/sh", "-c", '"$@"; :', "sh", PYTHON, WORKLOAD, mode, dir, ...args, "--foreground"], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
    });
    this.started.push(shell.pid);
    const pid = await waitFor(`pid file of ${mode}`, () => numFile(join(dir, "pid")));
    this.started.push(pid);
    return workload(pid, dir);
  }

  track(pid: number): void {
    this.started.push(pid);
  }

  /** SIGKILLs every workload still alive under a pid it was started with (restored ones too), removes their dirs. */
  killAll(): void {
    for (const pid of this.started) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(this.base, { recursive: true, force: true });
  }
}

function workload(pid: number, dir: string): Workload {
  return {
    pid,
    dir,
    file: (name) => join(dir, name),
    num: (name) => numFile(join(dir, name)),
    text: (name) => textFile(join(dir, name)),
  };
}

export function textFile(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

export function numFile(path: string): number | null {
  const t = textFile(path);
  if (t === null || t.trim() === "") return null;
  const n = Number(t.trim());
  return Number.isFinite(n) ? n : null;
}

/** Polls `f` until it returns something truthy; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, f: () => T | null | undefined | false, timeoutMs = 20_000, pollMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(pollMs);
  }
}

/** Waits until the counter file moves past `after`. */
export function countsPast(w: Workload, name: string, after: number): Promise<number> {
  return waitFor(`${name} of pid ${w.pid} to pass ${after}`, () => {
    const n = w.num(name);
    return n !== null && n > after ? n : null;
  });
}

export function state(pid: number): string | null {
  return readProc(pid)?.state ?? null;
}

export function isRunning(pid: number): boolean {
  const s = state(pid);
  return s !== null && s !== "Z" && s !== "T" && s !== "t";
}

export function config(criuDir: string, criuExe: string, restore: Partial<RestoreConfig> = {}): NvwaConfig {
  return {
    restore: { ...RESTORE_DEFAULTS, ...restore },
    server: { ...SERVER_DEFAULTS, criuDir, criuExe },
    files: { restore: null, server: null },
  };
}

export function imageFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => n.endsWith(".img"));
  } catch {
    return [];
  }
}
