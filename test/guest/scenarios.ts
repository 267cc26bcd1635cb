/**
 * Runs a guest scenario (test/guest/run-scenario.sh) with nvwa in it, and reads back what the
 * guest wrote. Used by the guest tests and by `npm run demo`.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { packageAll } from "../../build/package.ts";
import { archPlan, rpmFileName, rpmVersionOf, specSources, type ArchPlan } from "../../build/rpm-plan.ts";
import { freePort, type PeerResult, runTcpPeer } from "./tcp-peer.ts";

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
/** The signed aarch64 repo the arm64 guest (build-image.sh arm64) installs nvwa from. */
export const GUEST_REPO_ARM64 = join(ROOT, "dist/guest-repo-arm64");

/** The guest's architecture: the x86_64 image (the default everywhere) or the arm64 one. */
export type GuestArch = "x64" | "arm64";
/** Per guest architecture: the RPM's arch, its signed repo, and build-image.sh's argument. */
const GUESTS: Record<GuestArch, { plan: ArchPlan; repo: string; image: string }> = {
  x64: { plan: GUEST_ARCH, repo: GUEST_REPO, image: "x86_64" },
  arm64: { plan: archPlan("arm64"), repo: GUEST_REPO_ARM64, image: "arm64" },
};

export interface ScenarioRun {
  status: number;
  out: string;
  /** KEY=VALUE lines the scenario wrote with guest_result. */
  results: Record<string, string>;
  kernels: { old: string; new: string };
  /** `nvwa status --json` from inside the guest, when the scenario saved it. */
  nvwaStatus: unknown;
  /** The host-side TCP peer's exchanges, for scenarios whose scenario.conf asks for one. */
  tcpPeer?: PeerResult;
  /** What ScenarioOptions.during returned (or the error it threw, as a string). */
  during?: unknown;
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

/** Directories the guest gets: the signed RPM repo (of the guest's architecture). */
export function payloadDirs(arch: GuestArch = "x64"): [string, string][] {
  return [[GUESTS[arch].repo, GUEST_REPO_DEST]];
}

async function guestRpmPath(arch: GuestArch): Promise<string> {
  const { version } = (await Bun.file(join(ROOT, "package.json")).json()) as { version: string };
  return join(GUESTS[arch].repo, "Packages", rpmFileName(rpmVersionOf(version), "1", GUESTS[arch].plan.rpmArch));
}

/** The repo's RPM is at least as new as everything rpmbuild put in it (its Source files and the spec). */
async function guestRepoFresh(arch: GuestArch): Promise<boolean> {
  const rpm = await guestRpmPath(arch);
  if (!existsSync(rpm) || !existsSync(join(GUESTS[arch].repo, "RPM-GPG-KEY-nvwa"))) return false;
  const built = statSync(rpm).mtimeMs;
  const otherBinaries = new Set(specSources().filter((s) => s.name.startsWith("nvwa-linux-") && s.name !== GUESTS[arch].plan.binary).map((s) => s.from));
  const inputs = [...specSources().map((s) => s.from).filter((f) => !otherBinaries.has(f)), "rpm/nvwa.spec", "package.json"];
  return inputs.every((f) => existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).mtimeMs <= built);
}

/**
 * Builds the guest's repo (`bun build/package.ts --arch x64 --out dist/guest-repo`, signed with a
 * throw-away key unless NVWA_GPG_KEY_ID names one) unless it is newer than all its inputs.
 * Returns the seconds the build took, 0 when the repo was fresh. Throws package.* NvwaErrors
 * (missing executable, rpmbuild/rpmsign/createrepo_c failures). `arch` "arm64": the aarch64 repo
 * in dist/guest-repo-arm64 (`--arch arm64`) for the arm64 guest.
 */
export async function ensureGuestRepo(arch: GuestArch = "x64"): Promise<number> {
  if (await guestRepoFresh(arch)) return 0;
  const r = await packageAll({ arches: [GUESTS[arch].plan.bunArch], out: GUESTS[arch].repo });
  const s = r.seconds;
  const f = (x: number): string => x.toFixed(1);
  process.stderr.write(`guest repo ${r.out}: built in ${f(s.total)} s (rpmbuild ${f(s.rpmbuild)} s, sign+verify ${f(s.sign)} s, repo ${f(s.repo)} s)\n`);
  return s.total;
}

/** KEY=VALUE lines (result.env, kernels.env, scenario.conf); a missing file is empty. */
export function readEnv(path: string): Record<string, string> {
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

/**
 * A scenario's scenario.conf may ask for a TCP peer on the host (tcp-peer.ts):
 * TCP_PEER_PORT=<guest port>, TCP_PEER_REQUEST=<one request line>, TCP_PEER_ROUNDS=<boots>,
 * TCP_PEER_MARK=<serial marker asking for an exchange>.
 */
function peerPlan(name: string): { guestPort: number; request: string; rounds: number; mark: string } | undefined {
  const conf = readEnv(join(GUEST, "scenarios", name, "scenario.conf"));
  if (conf.TCP_PEER_PORT === undefined) return undefined;
  const unquote = (v: string | undefined): string => (v ?? "").replace(/^"(.*)"$/, "$1");
  return {
    guestPort: Number(conf.TCP_PEER_PORT),
    request: unquote(conf.TCP_PEER_REQUEST),
    rounds: Number(conf.TCP_PEER_ROUNDS ?? "1"),
    mark: unquote(conf.TCP_PEER_MARK) || "tcp-peer-go",
  };
}

export interface ScenarioOptions {
  /** More files for the guest (host path, guest path), beside payloadFiles(). */
  adds?: [string, string][];
  /** More run-scenario.sh arguments, e.g. ["--mem", "3G", "--allow-reboot"]. */
  args?: string[];
  /** The guest's architecture (default x64): "arm64" boots build-image.sh arm64's image with the aarch64 repo. */
  arch?: GuestArch;
  /** More directories for the guest (host path, guest path), beside payloadDirs(). */
  dirs?: [string, string][];
  /** A guest TCP port the host reaches on 127.0.0.1 (run-guest.sh --hostfwd), given to `during`. */
  hostfwd?: number;
  /**
   * Host-side work while the guest runs (e.g. Ansible over SSH): started with QEMU, awaited after
   * it; `stop()` ends the guest early (a failed play must not leave it waiting for its timeout).
   */
  during?: (ctx: DuringContext) => Promise<unknown>;
}

export interface DuringContext {
  out: string;
  serialLog: string;
  hostPort: number;
  guestDone: Promise<number>;
  stop(): void;
}

/** Waits for "NVWA-GUEST boot=N MARK" on the serial console; false when the guest stopped first. */
export async function waitForGuestMark(serialLog: string, mark: string, guestDone: Promise<unknown>, boot?: number): Promise<boolean> {
  const re = new RegExp(`NVWA-GUEST boot=${boot ?? "\\d+"} ${mark}( |$)`, "m");
  let stopped = false;
  void guestDone.then(() => (stopped = true));
  for (;;) {
    if (existsSync(serialLog) && re.test(readFileSync(serialLog, "utf8"))) return true;
    if (stopped) return false;
    await Bun.sleep(500);
  }
}

/**
 * The line of a guest kernel panic in a run's serial log, if there was one. Under TCG a kernel
 * now and then dies early in boot on a stray breakpoint or debug trap (seen: "Oops: int3" in
 * sched_clock_cpu while the kexec'd 6.12 kernel patched its own text, once in ~30 jumps), an
 * emulator fault no code of ours runs in.
 */
export function guestPanic(out: string): string | null {
  const serial = join(out, "serial.log");
  if (!existsSync(serial)) return null;
  const lines = readFileSync(serial, "utf8").split("\n");
  const i = lines.findIndex((l) => l.includes("Kernel panic - not syncing"));
  if (i < 0) return null;
  const oops = lines.slice(Math.max(0, i - 80), i).find((l) => /Oops|double fault|general protection/.test(l));
  return `${(oops ?? "").trim()} … ${(lines[i] ?? "").trim()}`.trim();
}

/**
 * Runs a scenario; when the guest's kernel panicked, runs it once more and says so on stderr (the
 * first run's directory is kept). A panic nvwa causes (a wrong command line, a bad image) panics
 * the second run too, and the test fails as it should.
 */
export async function runScenario(name: string, opts: ScenarioOptions = {}): Promise<ScenarioRun> {
  const first = await runScenarioOnce(name, opts);
  const panic = first.status === 0 ? null : guestPanic(first.out);
  if (panic === null) return first;
  process.stderr.write(`\n*** scenario ${name}: the guest kernel panicked (${panic}); files in ${first.out}. Running it once more: see test/guest/scenarios.ts guestPanic.\n\n`);
  return runScenarioOnce(name, opts);
}

async function runScenarioOnce(name: string, opts: ScenarioOptions): Promise<ScenarioRun> {
  const arch = opts.arch ?? "x64";
  const binary = `dist/${GUESTS[arch].plan.binary}`;
  if (!existsSync(join(ROOT, binary))) throw new Error(`${binary} is missing: run \`bun run build\` first`);
  await ensureGuestRepo(arch);
  // The image is built once and cached by its recipe's hash; its kernels.env names both kernels.
  const build = Bun.spawn(["bash", join(GUEST, "build-image.sh"), GUESTS[arch].image], { cwd: ROOT, stdout: "pipe", stderr: "inherit" });
  const image = (await new Response(build.stdout).text()).trim();
  if ((await build.exited) !== 0 || image === "") throw new Error("building the guest image failed (see the lines above)");
  const kernels = readEnv(join(image, "kernels.env"));
  const out = mkdtempSync(`/tmp/nvwa-guest-${name}-`);
  const args = ["bash", join(GUEST, "run-scenario.sh"), name, "--image", image, "--out", out];
  for (const [src, dest] of [...payloadFiles(), ...(opts.adds ?? [])]) args.push("--add", `${src}:${dest}`);
  args.push(...(opts.args ?? []));
  for (const [src, dest] of [...payloadDirs(arch), ...(opts.dirs ?? [])]) args.push("--add-dir", `${src}:${dest}`);
  const peer = peerPlan(name);
  if (peer !== undefined && opts.hostfwd !== undefined) throw new Error(`scenario ${name}: a TCP peer and ScenarioOptions.hostfwd both want run-guest.sh's one --hostfwd`);
  const guestPort = peer?.guestPort ?? opts.hostfwd;
  const hostPort = guestPort === undefined ? 0 : await freePort();
  if (guestPort !== undefined) args.push("--hostfwd", `${hostPort}:${guestPort}`);
  const proc = Bun.spawn(args, { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  const serialLog = join(out, "serial.log");
  const peerRun = peer === undefined ? undefined : runTcpPeer({ serialLog, hostPort, mark: peer.mark, rounds: peer.rounds, request: peer.request, guestDone: proc.exited });
  // stop(): ends QEMU (its command line names this run's overlay); run-guest.sh then reads the results back as after a timeout.
  const stop = (): void => void Bun.spawnSync(["pkill", "-TERM", "-f", "--", join(out, "root.qcow2")]);
  const duringRun = opts.during?.({ out, serialLog, hostPort, guestDone: proc.exited, stop }).catch((e: unknown) => {
    stop();
    return `host-side work failed: ${e instanceof Error ? e.message : String(e)}`;
  });
  const status = await proc.exited;
  const tcpPeer = await peerRun;
  const during = await duringRun;
  let nvwaStatus: unknown = null;
  try {
    nvwaStatus = JSON.parse(readFileSync(join(out, "results/status.json"), "utf8"));
  } catch {
    // the scenario did not get that far; the failure report below says why
  }
  return {
    status,
    out,
    results: readEnv(join(out, "results/result.env")),
    kernels: { old: kernels.KVER_OLD ?? "", new: kernels.KVER_NEW ?? "" },
    nvwaStatus,
    ...(tcpPeer === undefined ? {} : { tcpPeer }),
    ...(duringRun === undefined ? {} : { during }),
  };
}

/** For a failed scenario: what the CI log must show to explain it without the machine. */
export function failureReport(r: ScenarioRun): string {
  const res = join(r.out, "results");
  return [
    `guest scenario failed with status ${r.status}; files in ${r.out}`,
    ...(r.tcpPeer === undefined ? [] : [`--- host TCP peer: ${JSON.stringify(r.tcpPeer)}`]),
    "--- failures.txt", tail(join(res, "failures.txt"), 20),
    "--- run.log (tail)", tail(join(res, "run.log"), 40),
    "--- update.txt", tail(join(res, "update.txt"), 40),
    "--- serial.log (tail)", tail(join(r.out, "serial.log"), 60),
    "--- journal: nvwa lines (tail)",
    existsSync(join(res, "journal.txt")) ? readFileSync(join(res, "journal.txt"), "utf8").split("\n").filter((l) => /nvwa|criu|redis-test/.test(l)).slice(-80).join("\n") : "(no journal)",
  ].join("\n");
}
