/**
 * What this criu can do on this kernel: `criu --version`, `criu check`, whether it knows
 * `--pin-memory` (openEuler's criu only) and `--network-lock`, and whether it can lock TCP
 * connections with nftables (iptables needs the iptables-restore program, often missing).
 * The parsing is pure; probeCriu runs criu (a few seconds on its first run after boot, while it
 * probes the kernel).
 */
import { NvwaError } from "../errors.ts";
import { checkArgv, criuEnv, type NetworkLock } from "./argv.ts";
import { runCriu } from "./runner.ts";

export interface CriuVersion {
  text: string;
  major: number;
  minor: number;
  patch: number;
  gitId?: string;
}

export interface CriuCapabilities {
  exe: string;
  version: CriuVersion;
  /** `criu check` passed ("Looks good."). */
  checkOk: boolean;
  /** Its last lines when it did not. */
  checkMessage: string;
  pinMemory: boolean;
  networkLockOption: boolean;
  nftablesLock: boolean;
  /** The lock method nvwa should pass: nftables when it works, else criu's default (undefined). */
  networkLock?: NetworkLock;
  /** `criu check --feature mem_dirty_track`: the kernel has soft-dirty bits, so pre-dumps can be incremental. */
  memTrack: boolean;
}

/** Pure: "Version: 4.1.1\nGitID: v4.1.1-2-g…" → CriuVersion. */
export function parseCriuVersion(text: string): CriuVersion | null {
  const m = /^Version:\s*(\d+)\.(\d+)(?:\.(\d+))?(\S*)/m.exec(text);
  if (!m) return null;
  const git = /^GitID:\s*(\S+)/m.exec(text);
  return {
    text: `${m[1]}.${m[2]}${m[3] === undefined ? "" : `.${m[3]}`}${m[4] ?? ""}`,
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: m[3] === undefined ? 0 : Number(m[3]),
    ...(git?.[1] === undefined ? {} : { gitId: git[1] }),
  };
}

export function versionAtLeast(v: CriuVersion, major: number, minor: number, patch = 0): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.patch >= patch;
}

/** Pure: does criu's --help text list this long option? */
export function helpHasOption(help: string, option: string): boolean {
  return new RegExp(`(^|[\\s,|])--${option.replace(/-/g, "\\-")}(?![\\w-])`, "m").test(help);
}

/** Pure: what `criu check` said, as a verdict. */
export function parseCheckOutput(exitCode: number, output: string): { ok: boolean; message: string } {
  const lines = output.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const ok = exitCode === 0 && lines.some((l) => /^Looks good/.test(l));
  return { ok, message: lines.slice(-3).join(" / ") };
}

/** Pure: `criu check --feature X` succeeded and said "X is supported". */
export function featureSupported(exitCode: number, output: string, feature: string): boolean {
  return exitCode === 0 && new RegExp(`${feature} is supported`).test(output);
}

export interface ProbeOptions {
  hardwareBreakpoints?: boolean;
  timeoutMs?: number;
  /** The caller's preflight already ran `criu check` (seconds on a slow machine): not again. */
  skipCheck?: boolean;
}

export async function probeCriu(exe: string, opts: ProbeOptions = {}): Promise<CriuCapabilities> {
  const env = criuEnv({ hardwareBreakpoints: opts.hardwareBreakpoints ?? false });
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const ver = await runCriu({ exe, argv: ["--version"], env, action: "version", timeoutMs });
  const version = parseCriuVersion(`${ver.stdout}\n${ver.stderr}`);
  if (version === null) {
    throw new NvwaError("criu.version", `${exe} --version did not print a criu version`, {
      hint: "criu_exe must point at criu itself (not a wrapper that prints something else)",
      details: { exe, stdout: ver.stdout.slice(0, 200), stderr: ver.stderr.slice(0, 200) },
    });
  }
  const [check, help, nft, dirty] = await Promise.all([
    opts.skipCheck === true ? null : runCriu({ exe, argv: checkArgv(), env, action: "check", timeoutMs }),
    // `criu --help` exits 0 on 4.x and 1 on some older builds; only its text matters.
    runCriu({ exe, argv: ["--help"], env, action: "help", timeoutMs }),
    runCriu({ exe, argv: checkArgv("network_lock_nftables"), env, action: "check", timeoutMs }),
    runCriu({ exe, argv: checkArgv("mem_dirty_track"), env, action: "check", timeoutMs }),
  ]);
  const verdict = check === null ? { ok: true, message: "checked by preflight" } : parseCheckOutput(check.exitCode, `${check.stdout}\n${check.stderr}`);
  const helpText = `${help.stdout}\n${help.stderr}`;
  const networkLockOption = helpHasOption(helpText, "network-lock");
  const nftablesLock = networkLockOption && featureSupported(nft.exitCode, `${nft.stdout}\n${nft.stderr}`, "network_lock_nftables");
  return {
    exe,
    version,
    checkOk: verdict.ok,
    checkMessage: verdict.message,
    pinMemory: helpHasOption(helpText, "pin-memory"),
    networkLockOption,
    nftablesLock,
    ...(nftablesLock ? { networkLock: "nftables" as const } : {}),
    memTrack: featureSupported(dirty.exitCode, `${dirty.stdout}\n${dirty.stderr}`, "mem_dirty_track"),
  };
}
