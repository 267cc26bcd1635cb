/**
 * What nvwa reads from podman's `inspect` of a container (libpod/define/container_inspect.go,
 * podman 4.3.1). Pure: the JSON in, a typed record out; fields nvwa does not use are ignored.
 */
import * as v from "valibot";
import { NvwaError } from "../errors.ts";

const Inspect = v.looseObject({
  Id: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  Name: v.string(),
  OCIRuntime: v.optional(v.string(), ""),
  StaticDir: v.pipe(v.string(), v.startsWith("/")),
  ConmonPidFile: v.optional(v.string(), ""),
  Pod: v.optional(v.string(), ""),
  Dependencies: v.optional(v.nullable(v.array(v.string())), []),
  State: v.looseObject({
    Status: v.string(),
    Running: v.boolean(),
    Pid: v.optional(v.number(), 0),
    ConmonPid: v.optional(v.number(), 0),
  }),
  Config: v.optional(
    v.looseObject({
      Tty: v.optional(v.boolean(), false),
      SystemdMode: v.optional(v.boolean(), false),
      Labels: v.optional(v.nullable(v.record(v.string(), v.string())), {}),
    }),
    {},
  ),
  HostConfig: v.optional(
    v.looseObject({
      AutoRemove: v.optional(v.boolean(), false),
      NetworkMode: v.optional(v.string(), ""),
      RestartPolicy: v.optional(v.nullable(v.looseObject({ Name: v.optional(v.string(), "") })), null),
    }),
    {},
  ),
});

export interface ContainerInfo {
  id: string;
  /** podman's name, without the leading "/" docker-style names carry. */
  name: string;
  status: string;
  running: boolean;
  /** The container's init process as the host sees it (0 when not running). */
  pid: number;
  conmonPid: number;
  /** Where conmon writes its pid: a generated unit's PIDFile= names it. */
  conmonPidFile: string;
  ociRuntime: string;
  staticDir: string;
  tty: boolean;
  systemdMode: boolean;
  pod: string;
  dependencies: string[];
  autoRemove: boolean;
  restartPolicy: string;
  networkMode: string;
  /** Label PODMAN_SYSTEMD_UNIT: the unit that created it (`podman generate systemd --new`). */
  unitLabel?: string;
}

export function parseInspect(json: unknown): ContainerInfo {
  const r = v.safeParse(Inspect, json);
  if (!r.success) {
    const issue = r.issues[0];
    const where = issue?.path?.map((p) => String(p.key)).join(".") ?? "";
    throw new NvwaError("container.inspect-unreadable", `podman's inspect reply is not what nvwa reads${where ? ` (at ${where})` : ""}: ${issue?.message ?? "invalid"}`, {
      hint: "nvwa reads podman 4.x's libpod API; see `nvwa check`",
    });
  }
  const j = r.output;
  const unit = j.Config.Labels?.PODMAN_SYSTEMD_UNIT;
  return {
    id: j.Id,
    name: j.Name.replace(/^\//, ""),
    status: j.State.Status,
    running: j.State.Running,
    pid: j.State.Pid,
    conmonPid: j.State.ConmonPid,
    conmonPidFile: j.ConmonPidFile,
    ociRuntime: j.OCIRuntime,
    staticDir: j.StaticDir,
    tty: j.Config.Tty,
    systemdMode: j.Config.SystemdMode,
    pod: j.Pod,
    dependencies: j.Dependencies ?? [],
    autoRemove: j.HostConfig.AutoRemove,
    restartPolicy: j.HostConfig.RestartPolicy?.Name ?? "",
    networkMode: j.HostConfig.NetworkMode,
    ...(unit === undefined || unit === "" ? {} : { unitLabel: unit }),
  };
}

/**
 * Pure: the unit a process runs in, from /proc/<pid>/cgroup (v2 line "0::/system.slice/x.service"),
 * when that is a service other than podman's own. podman puts the conmon of a container it started
 * itself in libpod-conmon-<id>.scope; under a unit (generated units, `podman start` in ExecStart)
 * conmon stays in the unit's cgroup.
 */
export function serviceOfCgroup(text: string): string | undefined {
  for (const line of text.split("\n")) {
    const m = /^0::(.*)$/.exec(line.trim());
    if (m === null) continue;
    const last = (m[1] ?? "").split("/").filter((s) => s.length > 0).pop() ?? "";
    if (last.endsWith(".service") && last !== "podman.service") return last;
  }
  return undefined;
}
