/** The result of one preflight check, as `nvwa check` shows it and `nvwa update` enforces it. */
export type CheckStatus = "ok" | "warn" | "fail";

export interface Check {
  /** Stable dotted id for scripts: "kexec.loader", "target.pid.1234", "accel.pin-memory". */
  id: string;
  /** Short label for the table: "kexec loader". */
  title: string;
  status: CheckStatus;
  /** One sentence: what was found. */
  detail: string;
  /** How to fix it (present for warn and fail). */
  fix?: string;
}

export function ok(id: string, title: string, detail: string): Check {
  return { id, title, status: "ok", detail };
}
export function warn(id: string, title: string, detail: string, fix: string): Check {
  return { id, title, status: "warn", detail, fix };
}
export function fail(id: string, title: string, detail: string, fix: string): Check {
  return { id, title, status: "fail", detail, fix };
}

export function failed(checks: Check[]): Check[] {
  return checks.filter((c) => c.status === "fail");
}
