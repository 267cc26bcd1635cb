/**
 * `bun run build`: one self-contained executable per architecture. Bun cross-compiles by
 * fetching the target's runtime from the npm registry, so this works on an x86_64 machine for
 * arm64 too. The executables must never be stripped: strip removes the embedded program.
 *
 * Start-up flags (measured in BENCHMARKS.md, "Host"):
 * - `--splitting`: each command's code is a chunk of its own inside the executable, loaded by
 *   its `import()` in src/cli/commands.ts; without it the whole program (yaml, valibot, consola,
 *   the engine: ~0.45 MB minified) is parsed on every start, `nvwa --help` included.
 * - `--bytecode --format=esm`: JavaScriptCore bytecode is compiled here, not on every start.
 *   Bun 1.3.14's default format for --bytecode is CommonJS, and that fails on this program:
 *   consola's std-env reads `import.meta.env`, which is a syntax error inside CommonJS's function
 *   wrapper; bun prints "error: Failed to generate bytecode for ./main.js" yet exits 0, and the
 *   executable dies at start with "TypeError: Expected CommonJS module to have a function
 *   wrapper". ESM has no wrapper. The bytecode does not depend on the CPU (arm64 uses it too);
 *   a Bun of another version would ignore it and parse the source instead.
 * - `--minify`, and no source map (Bun 1.3.14 writes *.js.map files next to the outfile even
 *   with --sourcemap=none; the build happens in a scratch directory, so they never reach dist/).
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

export const TARGETS = [
  // baseline (no AVX2 needed): edge x86 boxes are often Atom/Celeron class without it. (An earlier
  // guest crash blamed on AVX2 was the guest CPU hiding CMPXCHG16B, which both builds need.)
  { arch: "x64", bunTarget: "bun-linux-x64-baseline", out: "nvwa-linux-x64", elfMachine: 0x3e },
  { arch: "arm64", bunTarget: "bun-linux-arm64", out: "nvwa-linux-arm64", elfMachine: 0xb7 },
] as const;

const root = join(import.meta.dir, "..");
export const dist = join(root, "dist");

/** The `bun build` arguments for one executable; the bench compiles its hello-world floor with the same. */
export function buildArgs(bunTarget: string, entry: string, outfile: string, defines: Record<string, string> = {}): string[] {
  return [
    "build", "--compile", "--splitting", "--bytecode", "--format=esm", "--minify", "--sourcemap=none",
    `--target=${bunTarget}`,
    ...Object.entries(defines).map(([k, v]) => `--define=${k}=${JSON.stringify(v)}`),
    entry, "--outfile", outfile,
  ];
}

/**
 * Builds into a scratch directory under dist/ and renames the executable into place: the
 * replacement is atomic for anyone copying dist/ meanwhile, and nothing else bun writes lands.
 */
export async function compileTo(bunTarget: string, entry: string, outfile: string, defines: Record<string, string> = {}): Promise<void> {
  const scratch = mkdtempSync(join(dist, ".build-"));
  try {
    const built = join(scratch, "out");
    const proc = Bun.spawn([process.execPath, ...buildArgs(bunTarget, entry, built, defines)], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    // bun can report a failed step ("error: Failed to generate bytecode") and still exit 0.
    if (code !== 0 || /^error:/im.test(err)) {
      process.stderr.write(err);
      throw new Error(`bun build for ${bunTarget} failed (exit ${code})`);
    }
    renameSync(built, outfile);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function compile(target: (typeof TARGETS)[number], version: string): Promise<void> {
  const outfile = join(dist, target.out);
  const started = performance.now();
  await compileTo(target.bunTarget, join(root, "src/main.ts"), outfile, { "process.env.NVWA_BUILD_VERSION": version });
  const mib = (statSync(outfile).size / 2 ** 20).toFixed(1);
  console.log(`built dist/${target.out} (${mib} MiB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

if (import.meta.main) {
  mkdirSync(dist, { recursive: true });
  const pkg = (await Bun.file(join(root, "package.json")).json()) as { version: string };
  const only = process.argv[2];
  for (const t of TARGETS) {
    if (only === undefined || only === t.arch) await compile(t, pkg.version);
  }
}
