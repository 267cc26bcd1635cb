/**
 * The config files' text → typed config, pure: YAML 1.1 parsing with positions, every problem
 * found (unknown keys with a did-you-mean, wrong types, values out of range), each naming
 * file:line:column, and the typed restore and server configs with their defaults. Reading the
 * files and their ownership rule is load.ts's.
 *
 * YAML 1.1 is used on purpose: the original nvwa parsed these files with Go's yaml.v2, where
 * `yes`/`no`/`on`/`off` are booleans, and existing configs rely on that.
 */
import * as v from "valibot";
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from "yaml";
import { ExitCode, NvwaError } from "../errors.ts";
import { normaliseUnitName, type KeySchemas } from "./schema.ts";
import { suggestKey } from "./suggest.ts";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS, type KexecLoaderChoice, type RestoreConfig, type ServerConfig } from "./types.ts";

export function throwIfAny(problems: readonly ConfigProblem[]): void {
  if (problems.length > 0) throw configProblemsError(problems);
}

export function configError(where: string, what: string, hint: string): NvwaError {
  return new NvwaError("config.invalid", `${where}: ${what}`, { hint, exitCode: ExitCode.usage, details: { where } });
}

/** One problem found in a config file. */
export interface ConfigProblem {
  error: NvwaError;
  /** The hint as a list of several problems shows it, when the full one is too long for a line. */
  shortHint?: string;
}

/** A list of several problems shows this many; details.problems carries every one. */
export const MAX_LISTED_PROBLEMS = 20;

/**
 * The error for everything found: a single problem as itself (its own code, message and hint),
 * several as one config.invalid whose message lists each as `file:line:column: what — hint`.
 */
export function configProblemsError(problems: readonly ConfigProblem[]): NvwaError {
  const only = problems.length === 1 ? problems[0] : undefined;
  if (only !== undefined) return only.error;
  if (problems.length === 0) throw new Error("configProblemsError: no problems");
  const shown = problems.slice(0, MAX_LISTED_PROBLEMS).map((p) => `  ${p.error.message} — ${p.shortHint ?? p.error.hint ?? ""}`);
  const more = problems.length - MAX_LISTED_PROBLEMS;
  if (more > 0) shown.push(`  … and ${more} more`);
  return new NvwaError("config.invalid", [`${problems.length} problems in the config files:`, ...shown].join("\n"), {
    hint: "fix each one at its file:line:column (README.md, \"Configuration\", lists every key)",
    exitCode: ExitCode.usage,
    details: {
      problems: problems.map((p) => ({ code: p.error.code, message: p.error.message, hint: p.error.hint, ...p.error.details })),
    },
  });
}

export type Parsed = Record<string, unknown>;

/** Parses one file's text against its key schemas; throws everything wrong with it. Pure. */
export function parseConfigText(file: string, text: string, schemas: KeySchemas): Parsed {
  const { parsed, problems } = checkConfigText(file, text, schemas);
  throwIfAny(problems);
  return parsed;
}

/**
 * Parses one file's text against its key schemas and returns every problem with the keys that
 * were valid. Pure: `file` is only used in messages. A YAML syntax error is reported alone (what
 * the parser says after the first one is mostly its consequences) and stops that file there.
 */
export function checkConfigText(file: string, text: string, schemas: KeySchemas): { parsed: Parsed; problems: ConfigProblem[] } {
  const lineCounter = new LineCounter();
  const at = (node: Node | null | undefined, fallbackOffset = 0): string => {
    const offset = node?.range?.[0] ?? fallbackOffset;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  const known = Object.keys(schemas);
  const allowed = `allowed keys: ${known.join(", ")}`;
  const out: Parsed = {};
  const problems: ConfigProblem[] = [];
  const stop = (error: NvwaError): { parsed: Parsed; problems: ConfigProblem[] } => ({ parsed: out, problems: [{ error }] });

  if (text.includes("\0")) {
    return stop(configError(`${file}:1:1`, "contains NUL bytes; it is not a text file", `rewrite it as YAML with the keys ${known.join(", ")}`));
  }
  const doc = parseDocument(text, {
    lineCounter,
    version: "1.1",
    uniqueKeys: true,
    prettyErrors: false,
  });
  const firstError = doc.errors[0];
  if (firstError !== undefined) {
    const { line, col } = lineCounter.linePos(firstError.pos[0]);
    const what = clip(firstError.message.split("\n")[0] ?? firstError.message);
    return stop(configError(`${file}:${line}:${col}`, `not valid YAML: ${what}`, "fix the YAML syntax at that position (indentation uses spaces; `key: value` needs a space after the colon)"));
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ""))) return { parsed: out, problems };
  if (!isMap(root)) return stop(configError(at(root), "must be a mapping of `key: value` lines", allowed));

  for (const pair of root.items) {
    const keyNode = pair.key as Node | null;
    if (!isScalar(keyNode) || typeof keyNode.value !== "string") {
      problems.push({ error: configError(at(keyNode), "keys must be plain names", allowed) });
      continue;
    }
    const key = keyNode.value;
    const schema = schemas[key];
    if (schema === undefined) {
      const guess = suggestKey(key, known);
      const error = new NvwaError("config.unknown-key", `${at(keyNode)}: unknown key "${clip(key)}"`, {
        hint: guess === undefined ? allowed : `did you mean "${guess}"? (${allowed})`,
        exitCode: ExitCode.usage,
        details: { key, suggestion: guess },
      });
      problems.push(guess === undefined ? { error } : { error, shortHint: `did you mean "${guess}"?` });
      continue;
    }
    const valueNode = pair.value as Node | null;
    let value: unknown;
    try {
      // Billion-laughs protection: a few aliases are legitimate, thousands are an attack.
      value = valueNode === null ? null : valueNode.toJS(doc, { maxAliasCount: 100 });
    } catch (e) {
      problems.push({ error: configError(at(valueNode), `value of "${key}" cannot be read: ${(e as Error).message}`, "remove the anchors/aliases from this value") });
      continue;
    }
    const result = v.safeParse(schema, value);
    if (!result.success) {
      const issue = result.issues[0];
      let node: Node | null = valueNode;
      const index = issue.path?.[0]?.key;
      if (typeof index === "number" && isSeq(valueNode)) node = (valueNode.items[index] as Node | undefined) ?? valueNode;
      const shown = typeof issue.input === "string" || typeof issue.input === "number" || typeof issue.input === "boolean" ? ` (got ${clip(JSON.stringify(issue.input))})` : "";
      problems.push({ error: configError(at(node, keyNode.range?.[0]), `"${key}" ${issue.message}${shown}`, hintFor(key)) });
      continue;
    }
    out[key] = result.output;
  }
  return { parsed: out, problems };
}

/** Values and parser messages are quoted in one-line errors; keep them short. */
function clip(s: string, max = 80): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}

function hintFor(key: string): string {
  switch (key) {
    case "pids":
      return "write pids as a YAML list of numbers, e.g. `pids: [1234, 5678]`";
    case "services":
      return "write services as a YAML list of unit names, e.g. `services: [redis, nginx.service]`";
    case "containers":
      return "write containers as a YAML list of podman container names or ids, e.g. `containers: [web, cache]`";
    case "criu_dir":
    case "criu_exe":
    case "kexec_exe":
    case "systemd_etc":
    case "log_dir":
      return `give "${key}" as an absolute path, e.g. ${key}: ${defaultPathOf(key)}`;
    case "kexec_loader":
      return "write kexec_loader: auto (the kernel's own loaders) or kexec_loader: kexec_exe (always kexec-tools)";
    default:
      return `write "${key}" as true or false`;
  }
}

function defaultPathOf(key: string): string {
  const map: Record<string, string> = {
    criu_dir: SERVER_DEFAULTS.criuDir,
    criu_exe: SERVER_DEFAULTS.criuExe,
    kexec_exe: SERVER_DEFAULTS.kexecExe,
    systemd_etc: SERVER_DEFAULTS.systemdEtc,
    log_dir: SERVER_DEFAULTS.logDir,
  };
  return map[key] ?? "/";
}

/** Builds the typed restore config from parsed keys; throws everything wrong. Pure. */
export function restoreFromParsed(file: string, p: Parsed): RestoreConfig {
  const { config, problems } = checkRestoreParsed(file, p);
  throwIfAny(problems);
  return config;
}

/** The typed restore config from parsed keys, and the problems across keys (duplicates, conflicts). Pure. */
export function checkRestoreParsed(file: string, p: Parsed): { config: RestoreConfig; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const services = ((p.services as string[] | undefined) ?? []).map(normaliseUnitName);
  const pids = (p.pids as number[] | undefined) ?? [];
  const dupPid = pids.find((x, i) => pids.indexOf(x) !== i);
  if (dupPid !== undefined) problems.push({ error: configError(file, `pid ${dupPid} is listed twice in "pids"`, "list each pid once") });
  const dupSvc = services.find((x, i) => services.indexOf(x) !== i);
  if (dupSvc !== undefined) problems.push({ error: configError(file, `service ${dupSvc} is listed twice in "services"`, "list each service once (\"redis\" and \"redis.service\" are the same unit)") });
  const containers = (p.containers as string[] | undefined) ?? [];
  const dupCtr = containers.find((x, i) => containers.indexOf(x) !== i);
  if (dupCtr !== undefined) problems.push({ error: configError(file, `container ${dupCtr} is listed twice in "containers"`, "list each container once") });
  const a = p.enable_debug_mode as boolean | null | undefined;
  const b = p.enbale_debug_mode as boolean | null | undefined;
  if (a != null && b != null && a !== b) {
    problems.push({ error: configError(file, `"enable_debug_mode" is ${a} but the legacy "enbale_debug_mode" is ${b}`, "keep only enable_debug_mode") });
  }
  return {
    config: {
      pids,
      services,
      containers,
      restoreNet: (p.restore_net as boolean | null | undefined) ?? RESTORE_DEFAULTS.restoreNet,
      enableQuickKexec: (p.enable_quick_kexec as boolean | null | undefined) ?? RESTORE_DEFAULTS.enableQuickKexec,
      enablePinMemory: (p.enable_pin_memory as boolean | null | undefined) ?? RESTORE_DEFAULTS.enablePinMemory,
      enablePreDump: (p.enable_pre_dump as boolean | null | undefined) ?? RESTORE_DEFAULTS.enablePreDump,
      enableLazyRestore: (p.enable_lazy_restore as boolean | null | undefined) ?? RESTORE_DEFAULTS.enableLazyRestore,
      debug: a ?? b ?? RESTORE_DEFAULTS.debug,
    },
    problems,
  };
}

export function serverFromParsed(p: Parsed): ServerConfig {
  const s = (k: string, d: string): string => (p[k] as string | null | undefined) ?? d;
  return {
    criuDir: s("criu_dir", SERVER_DEFAULTS.criuDir),
    criuExe: s("criu_exe", SERVER_DEFAULTS.criuExe),
    kexecExe: s("kexec_exe", SERVER_DEFAULTS.kexecExe),
    kexecLoader: (p.kexec_loader as KexecLoaderChoice | null | undefined) ?? SERVER_DEFAULTS.kexecLoader,
    systemdEtc: s("systemd_etc", SERVER_DEFAULTS.systemdEtc),
    logDir: s("log_dir", SERVER_DEFAULTS.logDir),
  };
}
