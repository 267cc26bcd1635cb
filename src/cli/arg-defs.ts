/**
 * Every option and argument of the command line, each defined once, in one module that imports
 * nothing (it is on every start): OPTIONS (spelling, one-letter alias, value placeholder, help
 * text, which commands take it, whether the dispatcher takes it before or after the command) and
 * POSITIONALS. From them come citty's argument definitions (argsOf: the dispatcher parses and
 * refuses a command line with them before it loads the command, so a typo such as
 * `nvwa status --jsn` costs no yaml, valibot or criu code, and the command files use them as
 * their args), the help rows and usage lines (commands.ts, help.ts) and the options main.ts's
 * splitGlobal takes. rpm/nvwa.bash-completion spells them again; test/host/rpm-files.test.ts
 * keeps it in step.
 */
import type { ArgsDef } from "citty";

/** An argument given by position: its placeholder in usage lines (`<kernel-version>`). */
interface PositionalSpec {
  readonly required: boolean;
  /** An option that stands in for it (`<kernel-version | --latest>`): one of the two is required. */
  readonly orOption?: string;
  readonly value: string;
  readonly description: string;
}

/** Each command's positionals, in order; the keys name the commands. */
const POSITIONALS = {
  update: { version: { required: false, orOption: "latest", value: "kernel-version", description: "kernel version (or --latest)" } },
  check: { version: { required: false, value: "kernel-version", description: "kernel version to check loading (as `uname -r` prints it)" } },
  status: {},
  init: {},
  server: {},
  restore: { service: { required: true, value: "service", description: "unit" } },
  help: { command: { required: false, value: "command", description: "command to describe" } },
} as const satisfies Record<string, Record<string, PositionalSpec>>;

export type CommandName = keyof typeof POSITIONALS;

export interface OptionSpec {
  /** "string" takes a value (`--name VALUE` or `--name=VALUE`); "boolean" takes none. */
  readonly type: "string" | "boolean";
  /** The value's placeholder in help rows and usage lines (a string option's). */
  readonly value?: string;
  /** A value to show in a hint when it is missing. */
  readonly example?: string;
  /** The one-letter spelling (`v` for `-v`). */
  readonly alias?: string;
  /** The commands that take it after their name, each with its help row's text there. */
  readonly commands: { readonly [C in CommandName]?: string };
  /** Taken before the command too, by the dispatcher: its text under GLOBAL OPTIONS. */
  readonly global?: string;
  /** Taken by the dispatcher after any command as well (`nvwa status -v`). */
  readonly anywhere?: boolean;
}

/** The same help text for each of `names`. */
function each<C extends CommandName>(text: string, ...names: C[]): Record<C, string> {
  return Object.fromEntries(names.map((n) => [n, text])) as Record<C, string>;
}

/**
 * Every option. The order is the order of the help rows, of the usage lines and of GLOBAL
 * OPTIONS. Options that are global stay out of the commands' usage lines (`nvwa [global
 * options] command ...` covers them).
 */
const OPTIONS = {
  append: { type: "string", value: "PARAMS", commands: { update: "add kernel command-line parameters for the new kernel" } },
  remove: { type: "string", value: "PARAMS", commands: { update: "drop these parameters (by name) from the running command line" } },
  latest: {
    type: "boolean",
    commands: {
      update: "the newest kernel installed in /boot that is newer than the running one (exit 6 when there is none)",
      check: "check loading the kernel `update --latest` would pick",
    },
  },
  fast: { type: "boolean", commands: { update: "jump with reboot(KEXEC) right after sync, without systemd's orderly shutdown" } },
  json: {
    type: "boolean",
    commands: {
      update: "print one result object as JSON on stdout (progress goes to stderr)",
      check: "print the checks as JSON",
      status: "print the manifest as JSON",
    },
  },
  wait: { type: "boolean", commands: { status: "block until the update has finished: restored, failed or rolled back" } },
  timeout: { type: "string", value: "SECONDS", example: "900", commands: { status: "with --wait: give up after SECONDS (default 900; exit 7)" } },
  root: { type: "string", value: "DIR", example: "/srv/image", commands: { check: "check an OS image tree offline: kernels, their configs, criu, nvwa's unit and configs" } },
  rehearse: { type: "boolean", commands: { check: "checkpoint each target and resume it at once, reporting freeze time and image size" } },
  force: { type: "boolean", commands: { init: "also discard images of processes still waiting for their restore" } },
  "config-dir": {
    type: "string",
    value: "DIR",
    example: "/etc/nvwa",
    commands: each("read nvwa-restore.yaml and nvwa-server.yaml from DIR (default /etc/nvwa, or $NVWA_CONFIG_DIR)", "update", "check", "status", "init", "server", "restore"),
    global: "configuration directory (default /etc/nvwa, or $NVWA_CONFIG_DIR)",
  },
  verbose: { type: "boolean", alias: "v", commands: {}, global: "show debug output", anywhere: true },
  help: { type: "boolean", alias: "h", commands: {}, global: "show help", anywhere: true },
  version: { type: "boolean", alias: "V", commands: {}, global: "print the version" },
} as const satisfies Record<string, OptionSpec>;

type Options = typeof OPTIONS;
type OptionName = keyof Options;
export type GlobalName = { [K in OptionName]: Options[K] extends { global: string } ? K : never }[OptionName];

/** OPTIONS in order, as [name, spec]. */
const OPTION_LIST = Object.entries(OPTIONS) as [OptionName, OptionSpec][];

/** How help shows an option: `--config-dir DIR`, `--verbose, -v`. */
function optionLabel(name: string, o: OptionSpec): string {
  return `--${name}${o.alias === undefined ? "" : `, -${o.alias}`}${o.value === undefined ? "" : ` ${o.value}`}`;
}

/** A command's help rows: [label, text] for each option it takes. */
export function optionRows(command: CommandName): [string, string][] {
  return OPTION_LIST.flatMap(([name, o]) => {
    const text = o.commands[command];
    return text === undefined ? [] : [[optionLabel(name, o), text]];
  });
}

/** The options the dispatcher takes (those with a `global` text), in order. */
export const GLOBAL_OPTIONS = OPTION_LIST.filter(([, o]) => o.global !== undefined) as [GlobalName, OptionSpec][];

/** The rows under GLOBAL OPTIONS. */
export function globalRows(): [string, string][] {
  return GLOBAL_OPTIONS.map(([name, o]) => [optionLabel(name, o), o.global ?? ""]);
}

/** `nvwa update <kernel-version> [--append PARAMS] [--remove PARAMS] [--fast]`, for `nvwa <spelling>`. */
export function usageLine(command: CommandName, spelling: string): string {
  const positionals: Readonly<Record<string, PositionalSpec>> = POSITIONALS[command];
  const standIns = new Set(Object.values(positionals).map((p) => p.orOption));
  const words = Object.values(positionals).map((p) => (p.orOption !== undefined ? `<${p.value} | --${p.orOption}>` : p.required ? `<${p.value}>` : `[${p.value}]`));
  for (const [name, o] of OPTION_LIST) {
    if (o.commands[command] !== undefined && o.global === undefined && !standIns.has(name)) words.push(`[--${name}${o.value === undefined ? "" : ` ${o.value}`}]`);
  }
  return ["nvwa", spelling, ...words].join(" ");
}

/** citty's definition of one command's arguments: its positionals, then its options. */
export type ArgsOf<C extends CommandName> = {
  [K in keyof (typeof POSITIONALS)[C]]: { type: "positional"; required: boolean; description: string };
} & {
  [K in OptionName as C extends keyof Options[K]["commands"] ? K : never]: { type: Options[K]["type"]; description: string; alias?: string };
};

/** A command's citty argument definitions (its args, in its command file), derived from POSITIONALS and OPTIONS. */
export function argsOf<C extends CommandName>(command: C): ArgsOf<C> {
  const def: ArgsDef = {};
  const positionals: Readonly<Record<string, PositionalSpec>> = POSITIONALS[command];
  for (const [name, p] of Object.entries(positionals)) def[name] = { type: "positional", required: p.required, description: p.description };
  for (const [name, o] of OPTION_LIST) {
    const text = o.commands[command];
    if (text !== undefined) def[name] = { type: o.type, description: text, ...(o.alias === undefined ? {} : { alias: o.alias }) };
  }
  return def as ArgsOf<C>;
}

