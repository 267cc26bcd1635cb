/**
 * What each start of nvwa loads, checked on the bundle build/compile.ts makes (split into chunks,
 * as in the executable): `--help`, `-h`, `help`, `--version` and usage errors must not load yaml,
 * valibot, consola, node:fs or bun:ffi, and no command may pull in another command's machinery.
 * Start-up times are measured by the bench (test/bench/run.ts), never asserted here.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "../..");
let out: string;

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), "nvwa-split-"));
  const r = await Bun.build({ entrypoints: [join(root, "src/main.ts")], outdir: out, target: "bun", format: "esm", splitting: true });
  if (!r.success) throw new AggregateError(r.logs, "bun build failed");
});

afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The chunks a chunk loads before it runs: its static imports, transitively (not its import()s). */
function closure(entry: string): string[] {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const f = todo.pop() as string;
    if (seen.has(f)) continue;
    seen.add(f);
    const text = readFileSync(join(out, f), "utf8");
    for (const m of text.matchAll(/^(?:import|export)\s*(?:[^"'();]*?from\s*)?["']\.\/([^"']+)["']/gm)) todo.push(m[1] as string);
  }
  return [...seen];
}

/** The chunk holding src/cli/<command>.ts (the bundler marks each module with a comment). */
function chunkOf(command: string): string {
  const mark = `\n// src/cli/${command}.ts\n`;
  const f = readdirSync(out).find((n) => n.endsWith(".js") && readFileSync(join(out, n), "utf8").includes(mark));
  if (f === undefined) throw new Error(`no chunk holds src/cli/${command}.ts`);
  return f;
}

/** Source modules (as the bundler names them in comments) and builtins imported statically. */
function contents(chunks: string[]): { modules: string[]; builtins: string[] } {
  const modules = new Set<string>();
  const builtins = new Set<string>();
  for (const c of chunks) {
    const text = readFileSync(join(out, c), "utf8");
    for (const m of text.matchAll(/^\/\/ ((?:src|ffi|node_modules)\/\S+)$/gm)) modules.add(m[1] as string);
    for (const m of text.matchAll(/^import\s*(?:[^"'();]*?from\s*)?["']((?:node:|bun:)?[a-z_]+(?:\/[a-z_]+)?)["']/gm)) builtins.add(m[1] as string);
  }
  return { modules: [...modules].sort(), builtins: [...builtins].sort() };
}

const pkg = (m: string): string => m.replace(/^node_modules\/((?:@[^/]+\/)?[^/]+)\/.*/, "$1");

describe("the start of every command", () => {
  test("is only the dispatcher: no dependency, no builtin module, no command", () => {
    const { modules, builtins } = contents(closure("main.js"));
    expect(modules.filter((m) => m.startsWith("node_modules/")).map(pkg)).toEqual([]);
    // ffi/error.ts is NvwaError itself (src/errors.ts re-exports it); it imports nothing.
    expect(modules.every((m) => /^(src\/(main|errors|cli\/(main|commands|arg-defs|args|help|define|render|output)|config\/suggest)|ffi\/error)\.ts$/.test(m))).toBe(true);
    expect(builtins).toEqual([]);
  });
  test("writes without process.stdout and process.stderr (Node's streams cost as much as the rest)", () => {
    const text = closure("main.js").map((c) => readFileSync(join(out, c), "utf8")).join("\n");
    expect(text).not.toMatch(/process\.(stdout|stderr)\b/);
  });
});

describe("each command loads its own code only", () => {
  test("status: config and manifest, but no engine, daemon, systemd, network or kexec code", () => {
    const { modules, builtins } = contents(closure(chunkOf("status")));
    expect(modules).toContain("src/config/load.ts");
    expect(modules).toContain("src/state/manifest-file.ts");
    expect(modules.filter((m) => /^(src\/(criu|daemon|systemd|net|kexec|restore|mem)\/|ffi\/(?!error\.ts$))/.test(m))).toEqual([]);
    expect(builtins).not.toContain("bun:ffi");
  });
  for (const command of ["update", "restore"]) {
    test(`${command}: the daemon's client, not the daemon`, () => {
      const { modules } = contents(closure(chunkOf(command)));
      expect(modules).toContain("src/daemon/client.ts");
      expect(modules.filter((m) => /^src\/(daemon\/(server|recover)|criu|restore|update\/(preflight|run|steps|checkpoint|commit|rollback|jump))/.test(m))).toEqual([]);
    });
  }
});

describe("src/log.ts", () => {
  test("loads consola on the first log call, not on import", () => {
    const script = `
      const { log } = await import(${JSON.stringify(join(root, "src/log.ts"))});
      const loaded = () => Object.keys(require.cache).some((k) => k.includes("/consola/"));
      const before = loaded();
      log.level;
      console.log(JSON.stringify({ before, after: loaded() }));`;
    const p = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(0);
    expect(JSON.parse(p.stdout.toString())).toEqual({ before: false, after: true });
  });
  test("logs as consola did: level from NVWA_LOG_LEVEL, lines on stderr", () => {
    const script = `const { log } = await import(${JSON.stringify(join(root, "src/log.ts"))}); log.debug("d1"); log.info("i1"); log.warn("w1");`;
    const quiet = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NVWA_LOG_LEVEL: "" } });
    const debug = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NVWA_LOG_LEVEL: "debug" } });
    expect(quiet.stdout.toString()).toBe("");
    expect(quiet.stderr.toString()).toContain("i1");
    expect(quiet.stderr.toString()).toContain("w1");
    expect(quiet.stderr.toString()).not.toContain("d1");
    expect(debug.stderr.toString()).toContain("d1");
  });
});
