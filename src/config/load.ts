/**
 * Reads /etc/nvwa/nvwa-restore.yaml and nvwa-server.yaml (parse.ts judges their text). Every
 * problem in either file is found in one run: one problem is thrown as its own NvwaError, several
 * as one config.invalid listing each on a line of its own. As root, a file others can write is
 * refused. Nothing here has side effects beyond reading the two files.
 */
import { readFileSync, statSync, type Stats } from "node:fs";
import { join, resolve } from "node:path";
import { ExitCode, NvwaError } from "../errors.ts";
import { checkConfigText, checkRestoreParsed, serverFromParsed, throwIfAny, type ConfigProblem, type Parsed } from "./parse.ts";
import { RESTORE_KEYS, SERVER_KEYS, type KeySchemas } from "./schema.ts";
import { DEFAULT_CONFIG_DIR, RESTORE_FILE, SERVER_FILE, type NvwaConfig } from "./types.ts";

// The pure half, for callers that judge text without reading the files (the tests).
export * from "./parse.ts";

/** Config files are a few lines; anything this large is a mistake or an attack. */
const MAX_CONFIG_BYTES = 256 * 1024;

export function resolveConfigDir(arg?: string): string {
  const dir = arg ?? process.env.NVWA_CONFIG_DIR ?? DEFAULT_CONFIG_DIR;
  return resolve(dir);
}

/**
 * As root, a config file others can write would let them make root checkpoint (and read the
 * memory of) arbitrary processes. `stats` is passed in so tests can exercise the rule.
 */
export function insecurityOf(file: string, stats: Pick<Stats, "uid" | "mode">, euid: number): NvwaError | undefined {
  if (euid !== 0) return undefined;
  if (stats.uid !== 0) {
    return new NvwaError("config.insecure", `${file} is owned by uid ${stats.uid}, not root; nvwa runs as root and refuses it`, {
      hint: `chown root:root ${file}`,
      exitCode: ExitCode.usage,
    });
  }
  if ((stats.mode & 0o022) !== 0) {
    const who = (stats.mode & 0o002) !== 0 ? "world" : "group";
    return new NvwaError("config.insecure", `${file} is ${who}-writable (mode ${(stats.mode & 0o777).toString(8)}); nvwa runs as root and refuses it`, {
      hint: `chmod go-w ${file}`,
      exitCode: ExitCode.usage,
    });
  }
  return undefined;
}

/** The file's text; null when it does not exist (defaults apply); a problem when it cannot be used. */
function readConfigFile(path: string, euid: number): string | null | ConfigProblem {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Not said: a missing file is the documented way to take the defaults, not an event; the
    // config is loaded by every command, which has no one to tell this to.
    if (code === "ENOENT") return null;
    return { error: new NvwaError("config.unreadable", `cannot read ${path}: ${code ?? String(e)}`, { hint: "check the file's permissions", exitCode: ExitCode.usage }) };
  }
  if (!stats.isFile()) {
    return { error: new NvwaError("config.unreadable", `${path} is not a regular file`, { hint: `replace ${path} with a YAML file`, exitCode: ExitCode.usage }) };
  }
  const insecure = insecurityOf(path, stats, euid);
  if (insecure) return { error: insecure };
  if (stats.size > MAX_CONFIG_BYTES) {
    return { error: new NvwaError("config.too-large", `${path} is ${stats.size} bytes; a config file is at most ${MAX_CONFIG_BYTES}`, { hint: "check that the right file is in place", exitCode: ExitCode.usage }) };
  }
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { error: new NvwaError("config.unreadable", `cannot read ${path}: ${code ?? String(e)}`, { hint: "check the file's permissions", exitCode: ExitCode.usage }) };
  }
}

export interface LoadOptions {
  /** Effective uid, for the ownership rule. Defaults to the process's. */
  euid?: number;
}

/**
 * Reads and checks both files. Everything wrong in either is reported at once (see
 * configProblemsError), so one run shows every typo with its position and suggestion.
 */
export function loadConfig(dir: string = resolveConfigDir(), opts: LoadOptions = {}): NvwaConfig {
  const euid = opts.euid ?? process.geteuid?.() ?? 0;
  const restorePath = join(dir, RESTORE_FILE);
  const serverPath = join(dir, SERVER_FILE);
  const problems: ConfigProblem[] = [];
  const read = (path: string, schemas: KeySchemas): { text: string | null; parsed: Parsed } => {
    const text = readConfigFile(path, euid);
    if (text === null) return { text: null, parsed: {} };
    if (typeof text !== "string") {
      problems.push(text);
      return { text: null, parsed: {} };
    }
    const checked = checkConfigText(path, text, schemas);
    problems.push(...checked.problems);
    return { text, parsed: checked.parsed };
  };
  // In file order: the restore file's problems, its cross-key ones, then the server file's.
  const restoreFile = read(restorePath, RESTORE_KEYS);
  const restore = checkRestoreParsed(restorePath, restoreFile.parsed);
  problems.push(...restore.problems);
  const serverFile = read(serverPath, SERVER_KEYS);
  throwIfAny(problems);
  return {
    restore: restore.config,
    server: serverFromParsed(serverFile.parsed),
    files: { restore: restoreFile.text === null ? null : restorePath, server: serverFile.text === null ? null : serverPath },
  };
}
