/**
 * Services in the preflight table. The rules (Type, active, stdout/stderr, PrivateTmp,
 * transient units) live with the systemd module (src/systemd/preflight.ts checkService); this
 * turns its issues into one table row per unit and adds the drop-in that fixes what a drop-in
 * can fix, so the user gets one command to run. Pure.
 */
import { join } from "node:path";
import { checkService, type ServiceIssue } from "../systemd/preflight.ts";
import type { ServiceProperties } from "../systemd/units.ts";
import { fail, ok, warn, type Check } from "./preflight-types.ts";

/** Pure: the [Service] lines that make a unit checkpointable, from its issues. */
export function dropinLines(p: ServiceProperties, issues: ServiceIssue[]): string[] {
  const base = p.unit.replace(/\.service$/, "");
  const lines: string[] = [];
  const output = (name: "StandardOutput" | "StandardError", value: string): void => {
    const bad = issues.some((i) => (i.code === "service.journal-output" || i.code === "service.socket-output" || i.code === "service.tty-output") && i.message.includes(`${name}=${value}`));
    if (bad) lines.push(`${name}=append:/var/log/${base}.log`);
  };
  output("StandardOutput", p.standardOutput);
  output("StandardError", p.standardError);
  if (issues.some((i) => i.code === "service.private-tmp")) lines.push("PrivateTmp=no");
  return lines;
}

export function dropinCommand(unit: string, lines: string[], systemdEtc: string): string {
  const dir = join(systemdEtc, `${unit}.d`);
  return `mkdir -p ${dir} && printf '[Service]\\n${lines.join("\\n")}\\n' > ${join(dir, "50-nvwa-checkpointable.conf")} && systemctl daemon-reload && systemctl restart ${unit}`;
}

/**
 * Pure: one check per configured service. `props` undefined means systemd could not be asked
 * (`probeError` says why); the services are then reported as unchecked, not as passing.
 */
export function checkServices(
  units: string[],
  props: ServiceProperties[] | undefined,
  systemdEtc: string,
  journalSupported = false,
  probeError?: string,
  namespaces: Readonly<Record<string, readonly string[]>> = {},
): Check[] {
  if (units.length === 0) return [];
  if (props === undefined) {
    return [
      warn(
        "services.probe",
        "services",
        `${units.length} service(s) configured (${units.join(", ")}) but systemd could not be asked about them${probeError ? `: ${probeError}` : ""}`,
        "run nvwa check on the machine itself, as root, with systemd running; the update refuses services it cannot inspect",
      ),
    ];
  }
  return units.map((unit) => {
    const id = `service.${unit}`;
    const title = `service ${unit}`;
    const p = props.find((s) => s.unit === unit);
    if (p === undefined) return fail(id, title, `systemd returned nothing for ${unit}`, "check the unit name in services: of nvwa-restore.yaml");
    const issues = checkService(p, { journalStdio: journalSupported, ownNamespaces: namespaces[unit] ?? [] });
    if (issues.length === 0) {
      return ok(id, title, `${p.activeState}, Type=${p.type}, MainPID=${p.mainPid}, stdout=${p.standardOutput}, stderr=${p.standardError}`);
    }
    const lines = dropinLines(p, issues);
    const hints = issues.filter((i) => !(lines.length > 0 && (i.code === "service.journal-output" || i.code === "service.socket-output" || i.code === "service.tty-output" || i.code === "service.private-tmp"))).map((i) => i.hint);
    if (lines.length > 0) hints.push(`add a drop-in: ${dropinCommand(unit, lines, systemdEtc)}`);
    const detail = issues.map((i) => i.message).join("; ");
    const fix = [...new Set(hints)].join("; ");
    return issues.some((i) => i.severity === "error") ? fail(id, title, detail, fix) : warn(id, title, detail, fix);
  });
}
