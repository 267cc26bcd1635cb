/**
 * What each config key accepts. Kept per key (not one object schema) so that an error can be
 * pinned to the line and column of the offending value in the YAML file.
 */
import * as v from "valibot";

/** PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h): no pid can be larger. */
export const PID_MAX_LIMIT = 4_194_304;

/**
 * systemd unit name rules (src/basic/unit-name.c): at most 255 bytes, characters from
 * [A-Za-z0-9:_.\\-@], a prefix before the type suffix, an optional template instance after
 * '@'. We accept only services, with or without the ".service" suffix.
 */
const UNIT_PREFIX = /^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?$/;

export function unitNameProblem(raw: string): string | undefined {
  if (raw.length === 0) return "is empty";
  if (raw.includes("/")) return "contains '/': give the unit name, not a path";
  if (raw.includes("..")) return "contains '..'";
  const dot = raw.lastIndexOf(".");
  const suffix = dot > 0 ? raw.slice(dot + 1) : "";
  const knownTypes = ["service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope"];
  if (knownTypes.includes(suffix) && suffix !== "service") {
    return `is a .${suffix} unit; only services can be checkpointed`;
  }
  const full = suffix === "service" ? raw : `${raw}.service`;
  if (full.length > 255) return "is longer than systemd's 255-character limit";
  const prefix = full.slice(0, -".service".length);
  if (prefix.startsWith(".") || prefix.startsWith("-")) return "cannot start with '.' or '-'";
  if (prefix.endsWith("@")) return "is a template without an instance (e.g. getty@tty1)";
  if (!UNIT_PREFIX.test(prefix)) return "has characters systemd does not allow in unit names (allowed: letters, digits, : _ . - \\ @)";
  return undefined;
}

export function normaliseUnitName(raw: string): string {
  return raw.endsWith(".service") ? raw : `${raw}.service`;
}

const absolutePath = v.pipe(
  v.string("must be a path (a string)"),
  v.minLength(1, "must not be empty"),
  v.startsWith("/", "must be an absolute path starting with '/'"),
  v.check((s) => !s.includes("\0"), "must not contain NUL bytes"),
  v.check((s) => !s.split("/").includes(".."), "must not contain '..' components"),
  v.maxLength(4095, "is longer than PATH_MAX"),
);

const flag = v.boolean("must be true or false");

/** Lists may be written as `pids:` with nothing after them (null), as in the original's samples. */
const pidList = v.pipe(
  v.nullish(
    v.array(
      v.pipe(
        v.number("must be a process id (a whole number)"),
        v.integer("must be a whole number"),
        v.minValue(2, "must be a pid of 2 or more (pid 1 is init and cannot be checkpointed)"),
        v.maxValue(PID_MAX_LIMIT, `must be at most ${PID_MAX_LIMIT} (the kernel's PID_MAX_LIMIT)`),
      ),
      "must be a list of process ids, e.g. [1234, 5678]",
    ),
  ),
  v.transform((x) => x ?? []),
);

/** A YAML list of names, each checked by `problemOf` (null/absent = none). */
function nameList(what: string, stringMessage: string, problemOf: (raw: string) => string | undefined, listMessage: string) {
  return v.pipe(
    v.nullish(
      v.array(
        v.pipe(
          v.string(stringMessage),
          v.rawCheck(({ dataset, addIssue }) => {
            if (!dataset.typed) return;
            const problem = problemOf(dataset.value);
            if (problem !== undefined) addIssue({ message: `${what} "${dataset.value}" ${problem}` });
          }),
        ),
        listMessage,
      ),
    ),
    v.transform((x) => x ?? []),
  );
}

const serviceList = nameList("service name", "must be a service name (a string)", unitNameProblem, "must be a list of service names, e.g. [redis, nginx.service]");

/**
 * podman's own rule for names (libpod/define: NameRegex ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$) or an id
 * (12 to 64 hex digits, a prefix of the full id as `podman ps` prints it).
 */
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function containerNameProblem(raw: string): string | undefined {
  if (raw.length === 0) return "is empty";
  if (raw.length > 253) return "is longer than 253 characters";
  if (!CONTAINER_NAME.test(raw)) return "is not a container name or id (letters, digits, _ . - and not starting with _ . -)";
  return undefined;
}

const containerList = nameList("container", "must be a container name or id (a string)", containerNameProblem, "must be a list of container names or ids, e.g. [web, 3f2a9c1d4e5b]");

export const RESTORE_KEYS = {
  pids: pidList,
  services: serviceList,
  containers: containerList,
  restore_net: v.nullish(flag),
  enable_quick_kexec: v.nullish(flag),
  enable_pin_memory: v.nullish(flag),
  enable_pre_dump: v.nullish(flag),
  enable_lazy_restore: v.nullish(flag),
  enable_debug_mode: v.nullish(flag),
  /** The original's misspelling; existing installations have it, so it stays valid. */
  enbale_debug_mode: v.nullish(flag),
} as const;

export const SERVER_KEYS = {
  criu_dir: v.nullish(absolutePath),
  criu_exe: v.nullish(absolutePath),
  kexec_exe: v.nullish(absolutePath),
  kexec_loader: v.nullish(v.picklist(["auto", "kexec_exe"], 'must be "auto" or "kexec_exe"')),
  systemd_etc: v.nullish(absolutePath),
  log_dir: v.nullish(absolutePath),
} as const;

export type KeySchemas = Record<string, v.GenericSchema>;
