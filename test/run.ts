/**
 * The whole test suite, in the order that fails fastest: types, unit, host (real criu,
 * netlink, D-Bus peer, packaging), then the QEMU guest scenarios. Ends with one line
 * "N passed, N failed" so CI can read the count.
 *
 *   bun test/run.ts            everything CI runs
 *   bun test/run.ts unit host  only those stages
 *   bun test/run.ts demo       the README's main job (the upgrade scenario, with a summary)
 */
import { join } from "node:path";
import { counts, failureBlocks } from "./run-output.ts";

const root = join(import.meta.dir, "..");
const bun = process.execPath;

interface StageResult {
  name: string;
  passed: number;
  failed: number;
  ok: boolean;
  /** Each failed test with the error lines bun printed before it, repeated in the summary. */
  failures: string[];
}

async function runStreaming(cmd: string[], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  const proc = Bun.spawn(cmd, { cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>, sink: NodeJS.WriteStream): Promise<void> => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      output += text;
      sink.write(text);
    }
  };
  await Promise.all([pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr)]);
  return { code: await proc.exited, output };
}

async function bunTest(name: string, dir: string): Promise<StageResult> {
  console.log(`\n=== ${name}: bun test ${dir}`);
  const { code, output } = await runStreaming([bun, "test", "--timeout", "600000", dir]);
  const c = counts(output);
  // A stage that ran nothing has not proven anything.
  const ok = code === 0 && c.failed === 0 && c.passed > 0;
  return { name, ...c, failed: ok ? c.failed : Math.max(c.failed, 1), ok, failures: failureBlocks(output) };
}

async function typecheck(): Promise<StageResult> {
  console.log("\n=== types: tsc --noEmit");
  const { code } = await runStreaming([join(root, "node_modules/.bin/tsc"), "--noEmit", "-p", "."]);
  return { name: "types", passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1, ok: code === 0, failures: [] };
}

const STAGES: Record<string, () => Promise<StageResult>> = {
  types: typecheck,
  unit: () => bunTest("unit", "test/unit"),
  host: () => bunTest("host", "test/host"),
  guest: () => bunTest("guest", "test/guest"),
};

/** `npm run demo`: the upgrade scenario alone, with a summary a person reads. */
async function demo(): Promise<never> {
  const build = Bun.spawnSync([bun, "run", "build/compile.ts", "x64"], { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (build.exitCode !== 0) process.exit(1);
  const { failureReport, runScenario } = await import("./guest/scenarios.ts");
  console.log("demo: booting a QEMU guest on Debian's 6.1 kernel with Redis (100 000 keys) and a counter;");
  console.log("demo: nvwa will move it to 6.12 and bring them back (takes a few minutes under TCG)\n");
  const r = await runScenario("upgrade");
  if (r.status !== 0) {
    console.error(failureReport(r));
    process.exit(1);
  }
  const s = r.nvwaStatus as { kernelFrom: string; kernelTo: string; targets: { name: string; kind: string; phase: string; downtimeMs?: number }[]; phases: { name: string; ms: number }[] };
  console.log(`\n=== demo: live kernel upgrade ${s.kernelFrom} → ${s.kernelTo} (uname -r after: ${r.results.kernel_after})`);
  for (const t of s.targets) console.log(`  ${t.kind.padEnd(7)} ${t.name.padEnd(20)} ${t.phase.padEnd(9)} downtime ${t.downtimeMs === undefined ? "?" : `${(t.downtimeMs / 1000).toFixed(2)} s`}`);
  console.log(`  redis keys after: ${r.results.redis_keys}; MainPID ${r.results.redis_mainpid}; counter at ${r.results.counter_last}`);
  console.log(`  phases: ${s.phases.map((p) => `${p.name} ${(p.ms / 1000).toFixed(2)} s`).join(", ")}`);
  console.log(`  everything from the run: ${r.out}`);
  process.exit(0);
}

const wanted = process.argv.slice(2);
if (wanted[0] === "demo") await demo();
const names = wanted.length === 0 ? Object.keys(STAGES) : wanted;
const results: StageResult[] = [];
for (const n of names) {
  const stage = STAGES[n];
  if (stage === undefined) {
    console.error(`test/run.ts: unknown stage "${n}" (stages: ${Object.keys(STAGES).join(", ")})`);
    process.exit(2);
  }
  results.push(await stage());
}

for (const r of results) for (const f of r.failures) console.log(`\n=== failed in ${r.name}: ${f}`);
console.log("\n=== summary");
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name.padEnd(8)} ${r.passed} passed, ${r.failed} failed`);
const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
