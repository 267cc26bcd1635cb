/**
 * Preflight of services (pure): given what systemd reports about a unit, what stands in the way
 * of checkpointing it and bringing it back under systemd after the jump.
 */
import type { ServiceProperties } from "./units.ts";

export type Severity = "error" | "warning";

export interface ServiceIssue {
  unit: string;
  /** Stable dotted code, e.g. "service.journal-output". */
  code: string;
  severity: Severity;
  message: string;
  hint: string;
}

/**
 * Types nvwa can bring back (see restoreModeFor in dropins.ts for how each is restored).
 * dbus is refused: its bus name belongs to a dbus-daemon connection that no restore can revive.
 */
export const SUPPORTED_TYPES: ReadonlySet<string> = new Set(["notify", "notify-reload", "oneshot", "forking", "simple", "exec", "idle"]);

/**
 * Output settings whose fd is a plain file or /dev/null, which criu dumps and restores.
 * "inherit" on stdout means stdin's fd, /dev/null unless StandardInput= says otherwise; on
 * stderr it means stdout's setting, checked on its own.
 */
const DUMPABLE_OUTPUT = new Set(["null", "file", "append", "truncate", "inherit"]);
/** Outputs that are a stream socket to journald ("kmsg" goes through journald too). */
export const JOURNAL_OUTPUT: ReadonlySet<string> = new Set(["journal", "journal+console", "kmsg", "kmsg+console", "syslog", "syslog+console"]);

export interface CheckServiceOptions {
  /**
   * Journal streams are kept: dumped as criu externals and handed back as fresh streams headed
   * like systemd's (src/criu/journal.ts). False: refused, as nvwa did before it could.
   */
  journalStdio?: boolean;
  /** The namespaces the service's main process does not share with nvwa (mnt, net, …). */
  ownNamespaces?: readonly string[];
}

const ENABLED = new Set(["enabled", "enabled-runtime", "alias", "indirect", "generated"]);

export function checkService(p: ServiceProperties, opts: CheckServiceOptions = {}): ServiceIssue[] {
  const issues: ServiceIssue[] = [];
  const add = (code: string, severity: Severity, message: string, hint: string): void => {
    issues.push({ unit: p.unit, code, severity, message, hint });
  };

  if (p.loadState !== "loaded") {
    add(
      "service.not-loaded",
      "error",
      `${p.unit} is ${p.loadState === "not-found" ? "not installed" : `not loaded (LoadState=${p.loadState})`}`,
      `check the name in nvwa-restore.yaml against \`systemctl list-unit-files\``,
    );
    return issues; // nothing else it reports means anything
  }
  if (p.activeState !== "active") {
    add(
      "service.not-active",
      "error",
      `${p.unit} is ${p.activeState}${p.subState ? ` (${p.subState})` : ""}, not active`,
      `start it (\`systemctl start ${p.unit}\`) or remove it from nvwa-restore.yaml`,
    );
  }
  if (!SUPPORTED_TYPES.has(p.type)) {
    add(
      "service.unsupported-type",
      "error",
      `${p.unit} has Type=${p.type}, which nvwa cannot restore`,
      `supported types: ${[...SUPPORTED_TYPES].join(", ")}; leave this service out and let it restart normally`,
    );
  } else if (p.type !== "oneshot" && p.activeState === "active" && p.mainPid === 0) {
    add(
      "service.no-main-pid",
      "error",
      `${p.unit} is active but has no main process to checkpoint`,
      `systemd does not know its main PID (Type=${p.type}); set PIDFile= for a forking service`,
    );
  }
  for (const [name, value] of [
    ["StandardOutput", p.standardOutput],
    ["StandardError", p.standardError],
  ] as const) {
    if (DUMPABLE_OUTPUT.has(value)) continue;
    if (JOURNAL_OUTPUT.has(value) && opts.journalStdio === true) {
      if (p.logNamespace !== "") {
        add(
          "service.log-namespace",
          "error",
          `${p.unit} has LogNamespace=${p.logNamespace}: its ${name} stream goes to systemd-journald@${p.logNamespace}, which nothing starts before nvwa's restore`,
          `drop LogNamespace= from ${p.unit}, or set ${name}=append:<file>`,
        );
      }
    } else if (JOURNAL_OUTPUT.has(value)) {
      add(
        "service.journal-output",
        "error",
        `${p.unit} has ${name}=${value}: its output is a stream socket to journald, which criu cannot checkpoint`,
        `set ${name}=append:/var/log/${p.unit.replace(/\.service$/, "")}.log (or file:, or null) in a drop-in and restart the service`,
      );
    } else if (value === "tty") {
      add(
        "service.tty-output",
        "warning",
        `${p.unit} has ${name}=tty: restoring a process attached to a terminal is unreliable`,
        `prefer ${name}=append:<file> for services nvwa restores`,
      );
    } else {
      add(
        "service.socket-output",
        "error",
        `${p.unit} has ${name}=${value}: a socket or passed fd that cannot survive the jump`,
        `set ${name}=append:<file> or null for services nvwa restores`,
      );
    }
  }
  const own = opts.ownNamespaces ?? [];
  if (own.length > 0) {
    const settings = p.sandbox.length > 0 ? `, set up by ${p.sandbox.join(", ")}` : "";
    add(
      "service.own-namespace",
      "error",
      `${p.unit} runs in ${own.length === 1 ? "a namespace" : "namespaces"} of its own (${own.join(", ")}${settings}): criu would save ${own.length === 1 ? "it" : "them"} with the process, and the restore after the jump cannot rebuild what systemd built for the unit`,
      `nvwa does not keep sandboxed units yet: leave ${p.unit} out of services:, or (weakening its sandbox) turn those settings off in a drop-in (systemctl edit ${p.unit}) and restart it`,
    );
  } else if (p.privateTmp) {
    add(
      "service.private-tmp",
      "error",
      `${p.unit} has PrivateTmp=yes: its private /tmp namespace cannot be restored`,
      `set PrivateTmp=no in a drop-in (systemctl edit ${p.unit}) and restart the service`,
    );
  }
  if (p.unitFileState === "transient") {
    add(
      "service.transient",
      "error",
      `${p.unit} is a transient unit (systemd-run): it has no unit file to exist after the jump`,
      `run it from a unit file under /etc/systemd/system instead, or checkpoint its main PID as a process`,
    );
  } else if (!ENABLED.has(p.unitFileState)) {
    add(
      "service.not-enabled",
      "warning",
      `${p.unit} is not enabled (UnitFileState=${p.unitFileState || "none"}): systemd will not start it by itself after the jump`,
      `enable it (\`systemctl enable ${p.unit}\`) so its restore runs at boot; otherwise nvwa starts it explicitly`,
    );
  }
  return issues;
}
