/**
 * Runs a guest scenario (test/guest/run-scenario.sh) with nvwa in it, and reads back what the
 * guest wrote. Used by the guest tests and by `npm run demo`.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "../..");
const GUEST = join(ROOT, "test/guest");

export interface ScenarioRun {
  status: number;
  out: string;
  /** KEY=VALUE lines the scenario wrote with guest_result. */
  results: Record<string, string>;
  kernels: { old: string; new: string };
  /** `nvwa status --json` from inside the guest, when the scenario saved it. */
  nvwaStatus: unknown;
}

/** What the guest gets besides the scenario: nvwa, its unit, and the shared workloads. */
export function payloadFiles(): [string, string][] {
  const adds: [string, string][] = [
    [join(ROOT, "dist/nvwa-linux-x64"), "/usr/bin/nvwa"],
    [join(ROOT, "rpm/nvwa.service"), "/etc/systemd/system/nvwa.service"],
    [join(GUEST, "workloads/redis-test.service"), "/etc/systemd/system/redis-test.service"],
  ];
  for (const f of readdirSync(join(GUEST, "workloads"))) {
    if (f.endsWith(".service")) continue;
    adds.push([join(GUEST, "workloads", f), `/usr/local/lib/nvwa-test/${f}`]);
  }
  return adds;
}

function readEnv(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

function tail(path: string, lines: number): string {
  if (!existsSync(path)) return `(no ${path})`;
  return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
}

export async function runScenario(name: string): Promise<ScenarioRun> {
  if (!existsSync(join(ROOT, "dist/nvwa-linux-x64"))) throw new Error("dist/nvwa-linux-x64 is missing: run `bun run build` first");
  // The image is built once and cached by its recipe's hash; its kernels.env names both kernels.
  const build = Bun.spawn(["bash", join(GUEST, "build-image.sh")], { cwd: ROOT, stdout: "pipe", stderr: "inherit" });
  const image = (await new Response(build.stdout).text()).trim();
  if ((await build.exited) !== 0 || image === "") throw new Error("building the guest image failed (see the lines above)");
  const kernels = readEnv(join(image, "kernels.env"));
  const out = mkdtempSync(`/tmp/nvwa-guest-${name}-`);
  const args = ["bash", join(GUEST, "run-scenario.sh"), name, "--image", image, "--out", out];
  for (const [src, dest] of payloadFiles()) args.push("--add", `${src}:${dest}`);
  const proc = Bun.spawn(args, { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  const status = await proc.exited;
  let nvwaStatus: unknown = null;
  try {
    nvwaStatus = JSON.parse(readFileSync(join(out, "results/status.json"), "utf8"));
  } catch {
    // the scenario did not get that far; the failure report below says why
  }
  return { status, out, results: readEnv(join(out, "results/result.env")), kernels: { old: kernels.KVER_OLD ?? "", new: kernels.KVER_NEW ?? "" }, nvwaStatus };
}

/** For a failed scenario: what the CI log must show to explain it without the machine. */
export function failureReport(r: ScenarioRun): string {
  const res = join(r.out, "results");
  return [
    `guest scenario failed with status ${r.status}; files in ${r.out}`,
    "--- failures.txt", tail(join(res, "failures.txt"), 20),
    "--- run.log (tail)", tail(join(res, "run.log"), 40),
    "--- update.txt", tail(join(res, "update.txt"), 40),
    "--- serial.log (tail)", tail(join(r.out, "serial.log"), 60),
    "--- journal: nvwa lines (tail)",
    existsSync(join(res, "journal.txt")) ? readFileSync(join(res, "journal.txt"), "utf8").split("\n").filter((l) => /nvwa|criu|redis-test/.test(l)).slice(-80).join("\n") : "(no journal)",
  ].join("\n");
}
