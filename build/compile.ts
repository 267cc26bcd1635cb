/**
 * `bun run build`: one self-contained executable per architecture. Bun cross-compiles by
 * fetching the target's runtime from the npm registry, so this works on an x86_64 machine for
 * arm64 too. The executables must never be stripped: strip removes the embedded program.
 */
import { mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

export const TARGETS = [
  // baseline (no AVX2 needed): edge x86 boxes are often Atom/Celeron class without it. (An earlier
  // guest crash blamed on AVX2 was the guest CPU hiding CMPXCHG16B, which both builds need.)
  { arch: "x64", bunTarget: "bun-linux-x64-baseline", out: "nvwa-linux-x64", elfMachine: 0x3e },
  { arch: "arm64", bunTarget: "bun-linux-arm64", out: "nvwa-linux-arm64", elfMachine: 0xb7 },
] as const;

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");

async function compile(target: (typeof TARGETS)[number], version: string): Promise<void> {
  const outfile = join(dist, target.out);
  const started = performance.now();
  const proc = Bun.spawn(
    [
      process.execPath, "build", "--compile", "--minify", "--sourcemap=none",
      `--target=${target.bunTarget}`,
      `--define=process.env.NVWA_BUILD_VERSION=${JSON.stringify(version)}`,
      join(root, "src/main.ts"), "--outfile", outfile,
    ],
    { cwd: root, stdout: "pipe", stderr: "pipe" },
  );
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) {
    process.stderr.write(err);
    throw new Error(`bun build for ${target.bunTarget} failed (exit ${code})`);
  }
  rmSync(join(dist, "main.js.map"), { force: true });
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
