/**
 * The few settings of a systemd unit file an offline check needs: [Install]'s WantedBy= and
 * RequiredBy= (where `systemctl enable` puts its links) and [Service]'s ExecStart= (the program
 * that must exist). Pure; the syntax is systemd's (systemd.syntax(7)): sections, `Key=value`,
 * `#` and `;` comments, a trailing backslash continues the line, an empty assignment resets a
 * list.
 */

export interface UnitFileSettings {
  wantedBy: string[];
  requiredBy: string[];
  /** The program of the first ExecStart= after the last reset, without its prefixes (`-`, `@`, `+`, `!`, `:`); null when there is none. */
  execStart: string | null;
}

/** Logical lines: continuations joined, comments and blanks dropped. */
function logicalLines(text: string): string[] {
  const out: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (pending === "" && (line.startsWith("#") || line.startsWith(";"))) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = (pending + line).trim();
    pending = "";
    if (whole !== "") out.push(whole);
  }
  if (pending.trim() !== "") out.push(pending.trim());
  return out;
}

/** The first word of a command line, unquoted: `"/usr/bin/nvwa" server` → /usr/bin/nvwa. */
function program(cmd: string): string | null {
  const rest = cmd.replace(/^[-@:+!]+/, "").trim();
  if (rest === "") return null;
  const q = rest[0];
  if (q === '"' || q === "'") {
    const end = rest.indexOf(q, 1);
    return end < 0 ? rest.slice(1) : rest.slice(1, end);
  }
  return rest.split(/\s+/)[0] ?? null;
}

/** Pure: the settings of one unit file's text. Unknown sections and keys are ignored. */
export function parseUnitFile(text: string): UnitFileSettings {
  let section = "";
  const wantedBy: string[] = [];
  const requiredBy: string[] = [];
  let execs: string[] = [];
  for (const line of logicalLines(text)) {
    const head = /^\[(.+)\]$/.exec(line);
    if (head !== null) {
      section = head[1] ?? "";
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (section === "Install" && (key === "WantedBy" || key === "RequiredBy")) {
      const list = key === "WantedBy" ? wantedBy : requiredBy;
      if (value === "") list.length = 0;
      else list.push(...value.split(/\s+/));
    } else if (section === "Service" && key === "ExecStart") {
      execs = value === "" ? [] : [...execs, value];
    }
  }
  const first = execs[0];
  return { wantedBy, requiredBy, execStart: first === undefined ? null : program(first) };
}
