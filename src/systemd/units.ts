/**
 * Pure facts about systemd units as seen over D-Bus: object paths, the typed property set nvwa
 * reads for a service, and its parsing from the raw property maps.
 */
import { NvwaError } from "../errors.ts";
import { Variant, type DBusBasic, type DBusValue } from "./dbus-wire.ts";

export const SYSTEMD_BUS_NAME = "org.freedesktop.systemd1";
export const MANAGER_PATH = "/org/freedesktop/systemd1";
export const MANAGER_IFACE = "org.freedesktop.systemd1.Manager";
export const UNIT_IFACE = "org.freedesktop.systemd1.Unit";
export const SERVICE_IFACE = "org.freedesktop.systemd1.Service";
export const JOB_IFACE = "org.freedesktop.systemd1.Job";
export const PROPERTIES_IFACE = "org.freedesktop.DBus.Properties";

/**
 * systemd's object path for a unit (sd_bus_path_encode → bus_label_escape): every byte that is
 * not [A-Za-z0-9] becomes _xx (lower-case hex), and so does a leading digit.
 * Used for matching signals and in messages; method calls use GetUnit/LoadUnit's answer.
 */
export function unitObjectPath(unit: string): string {
  if (unit === "") return `${MANAGER_PATH}/unit/_`;
  let out = "";
  const bytes = Buffer.from(unit, "utf8");
  bytes.forEach((b, i) => {
    const isAlpha = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
    const isDigit = b >= 0x30 && b <= 0x39;
    if (isAlpha || (isDigit && i > 0)) out += String.fromCharCode(b);
    else out += `_${b.toString(16).padStart(2, "0")}`;
  });
  return `${MANAGER_PATH}/unit/${out}`;
}

export type ServiceType = "simple" | "exec" | "forking" | "oneshot" | "dbus" | "notify" | "notify-reload" | "idle";

/** What nvwa reads about a service before and after touching it. */
export interface ServiceProperties {
  unit: string;
  objectPath: string;
  /** Unit: "loaded", "not-found", "masked", "error", ... */
  loadState: string;
  /** Unit: "active", "inactive", "failed", "activating", ... */
  activeState: string;
  subState: string;
  /** Unit: "enabled", "disabled", "static", "masked", "" (generated/transient units), ... */
  unitFileState: string;
  fragmentPath: string;
  /** Service */
  type: string;
  /** Service: 0 when there is none. */
  mainPid: number;
  /** Service: "journal", "null", "file", "append", "truncate", "inherit", "tty", "socket", "fd", ... */
  standardOutput: string;
  standardError: string;
  privateTmp: boolean;
  /** Service: "none", "main", "exec", "all" */
  notifyAccess: string;
  pidFile: string;
  /** Service: "no", "on-failure", "always", ... */
  restart: string;
  /** Service: whether a oneshot stays active after its process exits. */
  remainAfterExit: boolean;
  /** Service: the cgroup path under the cgroup root, "" when none. */
  controlGroup: string;
  /**
   * What systemd puts in the header of the service's journal stream (execute.c
   * connect_logger_as): SyslogIdentifier= ("" = the basename of ExecStart's binary),
   * SyslogPriority= (facility|level), SyslogLevelPrefix=; and ExecStart's first binary.
   */
  syslogIdentifier: string;
  syslogPriority: number;
  syslogLevelPrefix: boolean;
  execStartPath: string;
  /** Service: LogNamespace=, "" for the main journal. */
  logNamespace: string;
  /**
   * The unit's sandboxing settings that are on ("PrivateTmp=yes", "ProtectSystem=full", …): the
   * ones that give its processes namespaces of their own (systemd's namespace.c). Read apart,
   * each tolerated missing (older systemd), so a long list costs no unit its other checks.
   */
  sandbox: string[];
}

/**
 * Settings that make systemd set up a mount namespace (or another namespace) for the unit
 * (src/core/namespace.c setup_namespace, exec_needs_*_namespace in execute.c).
 */
export const SANDBOX_PROPERTIES = [
  "PrivateTmp",
  "PrivateDevices",
  "PrivateNetwork",
  "PrivateIPC",
  "PrivateUsers",
  "PrivateMounts",
  "ProtectSystem",
  "ProtectHome",
  "ProtectKernelTunables",
  "ProtectKernelModules",
  "ProtectKernelLogs",
  "ProtectControlGroups",
  "ProtectHostname",
  "ProtectClock",
  "ProtectProc",
  "ProcSubset",
  "ReadWritePaths",
  "ReadOnlyPaths",
  "InaccessiblePaths",
  "ExecPaths",
  "NoExecPaths",
  "TemporaryFileSystem",
  "BindPaths",
  "BindReadOnlyPaths",
  "RootDirectory",
  "RootImage",
  "NetworkNamespacePath",
  "DynamicUser",
] as const;

/** String settings' values that mean "off" (systemd's defaults). */
const SANDBOX_OFF: Readonly<Record<string, string>> = { ProtectSystem: "no", ProtectHome: "no", ProtectProc: "default", ProcSubset: "all" };

/** Pure: "Name=value" for each sandboxing setting that is on (a true boolean, a non-default string, a non-empty list). */
export function sandboxSettings(values: ReadonlyMap<string, DBusValue>): string[] {
  const out: string[] = [];
  for (const name of SANDBOX_PROPERTIES) {
    const v = unwrap(values.get(name));
    if (v === true) out.push(`${name}=yes`);
    else if (typeof v === "string" && v !== "" && v !== (SANDBOX_OFF[name] ?? "")) out.push(`${name}=${v}`);
    else if (Array.isArray(v) && v.length > 0) out.push(`${name}=${v.map((x) => (Array.isArray(x) ? String(x[0]) : String(x))).join(" ")}`);
  }
  return out;
}

export const UNIT_PROPERTIES = ["LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath"] as const;
export const SERVICE_PROPERTIES = [
  "Type",
  "MainPID",
  "StandardOutput",
  "StandardError",
  "PrivateTmp",
  "NotifyAccess",
  "PIDFile",
  "Restart",
  "RemainAfterExit",
  "ControlGroup",
  "SyslogIdentifier",
  "SyslogPriority",
  "SyslogLevelPrefix",
  "LogNamespace",
  "ExecStart",
] as const;

function unexpected(unit: string, prop: string, v: DBusValue | undefined): NvwaError {
  return new NvwaError("dbus.unexpected-type", `systemd reported ${prop} of ${unit} as ${describe(v)}`, {
    hint: "this systemd version answers differently than nvwa expects; please report it with `systemctl --version`",
    details: { unit, property: prop },
  });
}

function describe(v: DBusValue | undefined): string {
  if (v === undefined) return "missing";
  if (v instanceof Variant) return `a variant of type ${v.signature}`;
  return typeof v;
}

/** Strips one Variant layer, as Properties.Get and GetAll wrap every value in one. */
export function unwrap(v: DBusValue | undefined): DBusValue | undefined {
  return v instanceof Variant ? v.value : v;
}

type PropMap = ReadonlyMap<DBusBasic, DBusValue> | ReadonlyMap<string, DBusValue>;

/**
 * Builds ServiceProperties from the Unit and Service property maps (as from Properties.GetAll
 * or gathered from Properties.Get). Throws dbus.unexpected-type when a value has the wrong type.
 */
export function parseServiceProperties(unit: string, objectPath: string, unitProps: PropMap, serviceProps: PropMap): ServiceProperties {
  const get = (m: PropMap, k: string): DBusValue | undefined => unwrap((m as ReadonlyMap<string, DBusValue>).get(k));
  const str = (m: PropMap, k: string, dflt?: string): string => {
    const v = get(m, k);
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== "string") throw unexpected(unit, k, v);
    return v;
  };
  const bool = (m: PropMap, k: string, dflt?: boolean): boolean => {
    const v = get(m, k);
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== "boolean") throw unexpected(unit, k, v);
    return v;
  };
  const num = (m: PropMap, k: string): number => {
    const v = get(m, k);
    if (typeof v !== "number") throw unexpected(unit, k, v);
    return v;
  };
  return {
    unit,
    objectPath,
    loadState: str(unitProps, "LoadState"),
    activeState: str(unitProps, "ActiveState"),
    subState: str(unitProps, "SubState", ""),
    unitFileState: str(unitProps, "UnitFileState", ""),
    fragmentPath: str(unitProps, "FragmentPath", ""),
    type: str(serviceProps, "Type"),
    mainPid: num(serviceProps, "MainPID"),
    standardOutput: str(serviceProps, "StandardOutput"),
    standardError: str(serviceProps, "StandardError"),
    privateTmp: bool(serviceProps, "PrivateTmp"),
    notifyAccess: str(serviceProps, "NotifyAccess", "none"),
    pidFile: str(serviceProps, "PIDFile", ""),
    restart: str(serviceProps, "Restart", "no"),
    remainAfterExit: bool(serviceProps, "RemainAfterExit", false),
    controlGroup: str(serviceProps, "ControlGroup", ""),
    syslogIdentifier: str(serviceProps, "SyslogIdentifier", ""),
    syslogPriority: typeof get(serviceProps, "SyslogPriority") === "number" ? (get(serviceProps, "SyslogPriority") as number) : 30,
    syslogLevelPrefix: bool(serviceProps, "SyslogLevelPrefix", true),
    execStartPath: firstExecPath(get(serviceProps, "ExecStart")),
    logNamespace: str(serviceProps, "LogNamespace", ""),
    sandbox: sandboxSettings(serviceProps as ReadonlyMap<string, DBusValue>),
  };
}

/** ExecStart's a(sasbttttuii): the first command's binary path, "" when there is none. */
function firstExecPath(v: DBusValue | undefined): string {
  if (!Array.isArray(v)) return "";
  const first: unknown = v[0];
  return Array.isArray(first) && typeof first[0] === "string" ? first[0] : "";
}

/** JobRemoved's result strings (systemd's job_result_to_string), plus "unknown" when seen only by polling. */
export type JobResult = "done" | "canceled" | "timeout" | "failed" | "dependency" | "skipped" | "invalid" | "assert" | "unsupported" | "collected" | "once" | "unknown";
