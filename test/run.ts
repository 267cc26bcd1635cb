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

const root = join(import.meta.dir, "..");
const bun = process.execPath;

interface StageResult {
  name: string;
  passed: number;
  failed: number;
  ok: boolean;
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

/** bun test prints " 12 pass" and " 0 fail" lines at the end of its summary. */
function counts(output: string): { passed: number; failed: number } {
  const pass = [...output.matchAll(/^\s*(\d+) pass$/gm)].map((m) => Number(m[1]));
  const fail = [...output.matchAll(/^\s*(\d+) fail$/gm)].map((m) => Number(m[1]));
  return { passed: pass.at(-1) ?? 0, failed: fail.at(-1) ?? 0 };
}

async function bunTest(name: string, dir: string): Promise<StageResult> {
  console.log(`\n=== ${name}: bun test ${dir}`);
  const { code, output } = await runStreaming([bun, "test", "--timeout", "600000", dir]);
  const c = counts(output);
  // A stage that ran nothing has not proven anything.
  const ok = code === 0 && c.failed === 0 && c.passed > 0;
  return { name, ...c, failed: ok ? c.failed : Math.max(c.failed, 1), ok };
}

async function typecheck(): Promise<StageResult> {
  console.log("\n=== types: tsc --noEmit");
  const { code } = await runStreaming([join(root, "node_modules/.bin/tsc"), "--noEmit", "-p", "."]);
  return { name: "types", passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1, ok: code === 0 };
}

const STAGES: Record<string, () => Promise<StageResult>> = {
  types: typecheck,
  unit: () => bunTest("unit", "test/unit"),
  host: () => bunTest("host", "test/host"),
};

const wanted = process.argv.slice(2);
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

console.log("\n=== summary");
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name.padEnd(8)} ${r.passed} passed, ${r.failed} failed`);
const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
