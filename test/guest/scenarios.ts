/**
 * Runs a guest scenario (test/guest/run-scenario.sh) with nvwa in it, and reads back what the
 * guest wrote. Used by the guest tests and by `npm run demo`.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { packageAll } from "../../build/package.ts";
import { archPlan, rpmFileName, rpmVersionOf, specSources } from "../../build/rpm-plan.ts";

export const ROOT = join(import.meta.dir, "../..");
const GUEST = join(ROOT, "test/guest");

/**
 * The signed x86_64 repo the guest installs nvwa from. Its own directory, not dist/repo: that one
 * is `bun run package`'s (both arches, maybe an ISO beside it) and a test run must not shrink it.
 */
export const GUEST_REPO = join(ROOT, "dist/guest-repo");
/** Where the guest finds the repo (NVWA_REPO in workloads/common.sh): the README mounts its ISO there. */
const GUEST_REPO_DEST = "/mnt";
const GUEST_ARCH = archPlan("x64");

export interface ScenarioRun {
  status: number;
  out: string;
  /** KEY=VALUE lines the scenario wrote with guest_result. */
  results: Record<string, string>;
  kernels: { old: string; new: string };
  /** `nvwa status --json` from inside the guest, when the scenario saved it. */
  nvwaStatus: unknown;
}

/**
 * Files the guest gets besides the scenario: the shared workloads. nvwa itself comes from the
 * RPM (payloadDirs), installed by the scenario with workloads/common.sh's install_nvwa.
 */
export function payloadFiles(): [string, string][] {
  const adds: [string, string][] = [[join(GUEST, "workloads/redis-test.service"), "/etc/systemd/system/redis-test.service"]];
  for (const f of readdirSync(join(GUEST, "workloads"))) {
    if (f.endsWith(".service")) continue;
    adds.push([join(GUEST, "workloads", f), `/usr/local/lib/nvwa-test/${f}`]);
  }
  return adds;
}

/** Directories the guest gets: the signed RPM repo. */
export function payloadDirs(): [string, string][] {
  return [[GUEST_REPO, GUEST_REPO_DEST]];
}

async function guestRpmPath(): Promise<string> {
  const { version } = (await Bun.file(join(ROOT, "package.json")).json()) as { version: string };
  return join(GUEST_REPO, "Packages", rpmFileName(rpmVersionOf(version), "1", GUEST_ARCH.rpmArch));
}

/** The repo's RPM is at least as new as everything rpmbuild put in it (its Source files and the spec). */
async function guestRepoFresh(): Promise<boolean> {
  const rpm = await guestRpmPath();
  if (!existsSync(rpm) || !existsSync(join(GUEST_REPO, "RPM-GPG-KEY-nvwa"))) return false;
  const built = statSync(rpm).mtimeMs;
  const otherBinaries = new Set(specSources().filter((s) => s.name.startsWith("nvwa-linux-") && s.name !== GUEST_ARCH.binary).map((s) => s.from));
  const inputs = [...specSources().map((s) => s.from).filter((f) => !otherBinaries.has(f)), "rpm/nvwa.spec", "package.json"];
  return inputs.every((f) => existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).mtimeMs <= built);
}

/**
 * Builds the guest's repo (`bun build/package.ts --arch x64 --out dist/guest-repo`, signed with a
 * throw-away key unless NVWA_GPG_KEY_ID names one) unless it is newer than all its inputs.
 * Returns the seconds the build took, 0 when the repo was fresh. Throws package.* NvwaErrors
 * (missing executable, rpmbuild/rpmsign/createrepo_c failures).
 */
export async function ensureGuestRepo(): Promise<number> {
  if (await guestRepoFresh()) return 0;
  const r = await packageAll({ arches: [GUEST_ARCH.bunArch], out: GUEST_REPO });
  const s = r.seconds;
  const f = (x: number): string => x.toFixed(1);
  process.stderr.write(`guest repo ${r.out}: built in ${f(s.total)} s (rpmbuild ${f(s.rpmbuild)} s, sign+verify ${f(s.sign)} s, repo ${f(s.repo)} s)\n`);
  return s.total;
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
  await ensureGuestRepo();
  // The image is built once and cached by its recipe's hash; its kernels.env names both kernels.
  const build = Bun.spawn(["bash", join(GUEST, "build-image.sh")], { cwd: ROOT, stdout: "pipe", stderr: "inherit" });
  const image = (await new Response(build.stdout).text()).trim();
  if ((await build.exited) !== 0 || image === "") throw new Error("building the guest image failed (see the lines above)");
  const kernels = readEnv(join(image, "kernels.env"));
  const out = mkdtempSync(`/tmp/nvwa-guest-${name}-`);
  const args = ["bash", join(GUEST, "run-scenario.sh"), name, "--image", image, "--out", out];
  for (const [src, dest] of payloadFiles()) args.push("--add", `${src}:${dest}`);
  for (const [src, dest] of payloadDirs()) args.push("--add-dir", `${src}:${dest}`);
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
