/**
 * systemd's watchdog settings across a kexec. Edge machines often run a hardware watchdog:
 * `KExecWatchdogSec=` (system.conf) keeps it armed through the jump, and a new kernel that
 * takes longer than that to reach systemd is reset mid-jump, losing every checkpoint. Pure:
 * parsing the config files and judging the result.
 */
import { ok, warn, type Check } from "./preflight-types.ts";

export interface SystemConfFile {
  path: string;
  text: string;
}

export interface WatchdogSettings {
  kexecWatchdogSec: string | null;
  runtimeWatchdogSec: string | null;
  /** The files that set each value, for the message. */
  kexecSource: string | null;
  runtimeSource: string | null;
}

/** Pure: the [Manager] keys of one systemd config file (last assignment wins). */
export function parseManagerSection(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1] ?? "";
      continue;
    }
    if (section !== "Manager") continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    out.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Pure: the effective settings, files given in systemd's order (system.conf first, then the
 * drop-ins sorted by file name, /etc winning over /run and /usr/lib for the same name).
 */
export function mergeWatchdogSettings(files: SystemConfFile[]): WatchdogSettings {
  const s: WatchdogSettings = { kexecWatchdogSec: null, runtimeWatchdogSec: null, kexecSource: null, runtimeSource: null };
  for (const f of files) {
    const m = parseManagerSection(f.text);
    const k = m.get("KExecWatchdogSec");
    if (k !== undefined) {
      s.kexecWatchdogSec = k;
      s.kexecSource = f.path;
    }
    const r = m.get("RuntimeWatchdogSec");
    if (r !== undefined) {
      s.runtimeWatchdogSec = r;
      s.runtimeSource = f.path;
    }
  }
  return s;
}

const UNIT_SECONDS: Record<string, number> = {
  us: 1e-6, usec: 1e-6, ms: 1e-3, msec: 1e-3, s: 1, sec: 1, second: 1, seconds: 1,
  m: 60, min: 60, minute: 60, minutes: 60, h: 3600, hr: 3600, hour: 3600, hours: 3600,
};

/**
 * Pure: a systemd time span in seconds ("10min", "1h 30s", "45" = seconds). null for "off",
 * "0", empty; Infinity for "infinity"; NaN for "default" (the driver's own timeout) or junk.
 */
export function watchdogSeconds(v: string | null): number | null {
  if (v === null) return null;
  const t = v.trim().toLowerCase();
  if (t === "" || t === "off" || t === "0") return null;
  if (t === "infinity") return Infinity;
  if (t === "default") return NaN;
  let total = 0;
  const re = /([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(t)) !== null) {
    const unit = m[2] === "" ? "s" : (m[2] ?? "s");
    const mult = UNIT_SECONDS[unit];
    if (mult === undefined) return NaN;
    total += Number(m[1]) * mult;
    consumed += m[0].length;
  }
  if (consumed < t.replaceAll(" ", "").length) return NaN;
  return total === 0 ? null : total;
}

export function checkKexecWatchdog(s: WatchdogSettings, devices: string[]): Check {
  const id = "systemd.kexec-watchdog";
  const title = "watchdog across kexec";
  const k = watchdogSeconds(s.kexecWatchdogSec);
  const r = watchdogSeconds(s.runtimeWatchdogSec);
  const dev = devices.length > 0 ? ` (${devices.join(", ")})` : "";
  if (k === null) {
    if (r === null) return ok(id, title, `KExecWatchdogSec is off; no hardware watchdog stays armed through the jump${dev}`);
    return ok(id, title, `RuntimeWatchdogSec=${s.runtimeWatchdogSec} arms the watchdog${dev}, but KExecWatchdogSec is off, so systemd disarms it for the jump`);
  }
  const span = Number.isNaN(k) ? `the driver's default timeout (${s.kexecWatchdogSec})` : k === Infinity ? "no timeout" : `${k} s`;
  return warn(
    id,
    title,
    `KExecWatchdogSec=${s.kexecWatchdogSec} (${s.kexecSource ?? "system.conf"}) keeps the hardware watchdog${dev} armed through the jump with ${span}: if the new kernel takes longer to reach systemd, the machine resets mid-jump and the checkpoints are lost`,
    "make sure a kexec boot of the new kernel reaches systemd well within that time, or set KExecWatchdogSec=off (or a larger value) in /etc/systemd/system.conf.d/ and run `systemctl daemon-reexec`",
  );
}
