/**
 * The containers' rows of the preflight table (`nvwa check`, and the update refuses on a fail).
 * Pure. What podman itself refuses, or what would break after the jump, is refused here by name,
 * before anything is frozen (research: notes/podman-checkpoint.md §4, §5).
 */
import type { NvwaConfig } from "../config/types.ts";
import { fail, ok, type Check } from "../update/preflight-types.ts";
import { unitOf, type ContainerFacts, type ContainerProbe } from "./facts.ts";

/** Why this container cannot be kept, each with its fix; empty when it can. */
/**
 * Pure: can this container's runtime checkpoint? runc always can; crun only when built with CRIU,
 * which its version line says ("+CRIU"), and podman tells that only of its default runtime.
 */
export function runtimeCanCheckpoint(runtime: string, defaultRuntime: ContainerFacts["defaultRuntime"]): boolean {
  if (runtime === "runc") return true;
  return defaultRuntime?.name === runtime && /\+CRIU\b/.test(defaultRuntime.version);
}

export function containerProblems(c: ContainerProbe, config: NvwaConfig, defaultRuntime?: ContainerFacts["defaultRuntime"]): { problem: string; fix: string }[] {
  const i = c.info;
  if (i === null) return [];
  const out: { problem: string; fix: string }[] = [];
  const add = (problem: string, fix: string): void => void out.push({ problem, fix });
  if (!i.running) add(`is ${i.status}, not running`, `start it (podman start ${i.name}), or take it out of containers:`);
  if (!runtimeCanCheckpoint(i.ociRuntime, defaultRuntime)) {
    add(`runs with ${i.ociRuntime || "an unknown runtime"}, which cannot checkpoint here (not runc, and not a crun built with CRIU: Debian's is not)`, `recreate it with --runtime runc (or set runtime = "runc" in containers.conf [engine])`);
  }
  if (i.tty) add("has a terminal (-t): criu cannot checkpoint a container's pseudo-terminal", "recreate it without -t");
  if (i.systemdMode) add("runs systemd inside (systemd mode): not kept by nvwa", "take it out of containers:");
  if (i.pod !== "") add(`is in pod ${i.pod.slice(0, 12)}: pods are not kept yet`, "take it out of containers:, or run it outside the pod");
  if (i.dependencies.length > 0) add(`depends on other containers (${i.dependencies.map((d) => d.slice(0, 12)).join(", ")}): not kept yet`, "take it out of containers:");
  if (i.autoRemove) add("was started with --rm: podman removes it when the checkpoint stops it", "recreate it without --rm");
  if (i.restartPolicy === "always") {
    add("has restart policy always: podman-restart.service would start it afresh after the jump, before nvwa restores it", "recreate it with --restart=on-failure or no");
  }
  const unit = unitOf(c);
  if (unit !== undefined) {
    const u = c.unitProps;
    if (u === undefined || u === null) {
      add(`runs under ${unit}, which systemd could not be asked about`, "run nvwa check as root on the machine itself, with systemd running");
    } else if (config.restore.services.includes(unit)) {
      add(`runs under ${unit}, which is listed under services: too`, `list it once: keep the container, drop ${unit} from services:`);
    } else if (u.type !== "forking" || u.pidFile !== i.conmonPidFile) {
      add(
        `runs under ${unit} (Type=${u.type}${u.pidFile ? `, PIDFile=${u.pidFile}` : ""}): nvwa keeps a unit's container when the unit starts an existing container and follows its conmon (\`podman generate systemd\` without --new: Type=forking, PIDFile= its conmon.pid)`,
        `regenerate the unit with podman generate systemd --name ${i.name} (without --new), or take the container out of containers:`,
      );
    }
  }
  if (c.tcpConnections > 0 && i.networkMode !== "host") {
    add(
      `holds ${c.tcpConnections} established TCP connection(s) on its own network (${i.networkMode || "bridge"}): podman removes that network at the checkpoint and they would be reset; nvwa keeps a container's connections only on the host's network`,
      "run it with --network host, or close them before the update, or take it out of containers:",
    );
  }
  const listed = c.pids.filter((p) => config.restore.pids.includes(p));
  if (listed.length > 0) add(`its process ${listed.join(", ")} is listed under pids: too`, "list it once: keep the container, drop the pid");
  return out;
}

export function checkContainers(f: ContainerFacts | undefined, config: NvwaConfig): Check[] {
  const names = config.restore.containers;
  if (names.length === 0) return [];
  if (f === undefined) return [fail("container.engine", "container engine", "containers are configured but podman was not asked", "run nvwa check on the machine itself, as root")];
  if (!f.engine.ok) return [fail("container.engine", "container engine", f.engine.error, "start podman's API: systemctl enable --now podman.socket")];
  const rows: Check[] = [ok("container.engine", "container engine", `podman (libpod API ${f.engine.apiVersion}) answers on ${f.socket}`)];
  const seen = new Map<string, string>();
  for (const c of f.containers) {
    const id = `container.${c.name}`;
    const title = `container ${c.name}`;
    if (c.error !== undefined) {
      rows.push(fail(id, title, c.error, "see podman's journal: journalctl -u podman.service"));
      continue;
    }
    if (c.info === null) {
      rows.push(fail(id, title, `podman has no container named ${c.name}`, "check the name in containers: of nvwa-restore.yaml (podman ps -a lists them)"));
      continue;
    }
    const twice = seen.get(c.info.id);
    seen.set(c.info.id, c.name);
    const problems = containerProblems(c, config, f.defaultRuntime);
    if (twice !== undefined) problems.push({ problem: `is the same container as ${twice}`, fix: "list each container once, by name or by id" });
    if (problems.length > 0) {
      rows.push(fail(id, title, problems.map((p) => p.problem).join("; "), [...new Set(problems.map((p) => p.fix))].join("; ")));
      continue;
    }
    const under = unitOf(c);
    rows.push(ok(id, title, `running, id ${c.info.id.slice(0, 12)}, ${c.info.ociRuntime}, network ${c.info.networkMode || "default"}, ${c.processes.length} process(es)${under === undefined ? "" : `, under ${under}`}`));
  }
  return rows;
}
