/**
 * criu command lines, built as pure functions so every flag nvwa passes is tested without root.
 * Option names are criu's own (criu/config.c, 3.17 – 4.2):
 *
 * - `--leave-stopped` on dump: the tree stays frozen after a good dump, so a later failure can
 *   still resume it (SIGCONT). Without it criu kills the tree and there is no way back.
 * - `--shell-job` on dump AND restore, only for trees whose session or process-group leader is
 *   outside the tree, or that have a controlling terminal: jobs started from a shell, and also
 *   classic double-forked daemons, whose session leader has exited (criu/pstree.c refuses a root
 *   that does not lead its session: "Consider using --shell-job"). A unit systemd started leads
 *   its own session and must not get it: on restore `--shell-job` puts the tree into criu's
 *   session instead of its own. The decision is src/criu/plan.ts needsShellJob().
 * - `--tcp-established` both ways, with `--network-lock <method>` both ways (the restore unlocks
 *   what the dump locked; the default method, iptables, needs iptables-restore on the machine).
 * - `--ext-unix-sk` both ways: a unix socket whose peer is outside the tree (syslog's /dev/log)
 *   is dumped as external instead of failing the dump.
 * - `--file-locks` both ways: flock/POSIX locks are saved and taken again.
 * - `-o dump.log` / `-o restore.log` are relative to the work dir, which is the images dir.
 * - `--pin-memory` only exists in openEuler's criu; passed only when enabled and probed.
 * - `--display-stats` makes criu print its timings on stdout (parsed by src/criu/log.ts).
 *
 * Environment: CRIU_FAULT=130 (criu/include/fault-injection.h, FI_NO_BREAKPOINTS) makes criu
 * leave its parasite by tracing syscalls instead of with a hardware breakpoint. Where the
 * hypervisor does not deliver debug-register breakpoints (seen on a Firecracker VM, kernel
 * 6.18), criu 4.1 otherwise hangs for ever in wait4() curing the parasite, with the dumpee
 * seized. criu 4.2 detects this itself ("Hardware breakpoints don't seem to work"); 4.1 and
 * 3.x do not. The cost is a few traced syscalls per task, so nvwa sets it unless told that the
 * breakpoints work.
 */

export type NetworkLock = "iptables" | "nftables" | "skip";
export type ManageCgroups = "none" | "props" | "soft" | "full" | "strict" | "ignore";

/** Options that must be the same at dump and at restore (they are kept in the manifest). */
export interface SharedCriuOptions {
  shellJob: boolean;
  tcpEstablished: boolean;
  extUnixSk: boolean;
  fileLocks: boolean;
  networkLock?: NetworkLock;
  pinMemory: boolean;
  /** 0–4; 4 is criu's "lots of debug" (debug mode). Default: criu's own (2). */
  verbosity?: number;
  displayStats: boolean;
}

export interface DumpArgs extends SharedCriuOptions {
  pid: number;
  imagesDir: string;
  /** Relative to imagesDir. */
  logFile?: string;
  /** Default true: what makes a rollback possible. */
  leaveStopped?: boolean;
  /** Seconds criu waits to collect (seize) the tree; criu's default is 10. */
  collectTimeoutS?: number;
  /** `--external` resources (e.g. "unix[12345]"). */
  externals?: readonly string[];
  extra?: readonly string[];
}

export interface RestoreArgs extends SharedCriuOptions {
  imagesDir: string;
  logFile?: string;
  /** `--restore-detached`: criu exits once the tree runs; the root is reparented. Default true. */
  detached?: boolean;
  /** `--pidfile`: criu writes the restored root's pid there (systemd Type=forking PIDFile=). */
  pidfile?: string;
  manageCgroups?: ManageCgroups;
  /** `--inherit-fd fd[N]:RES` pairs, e.g. a journal stream handed over by the restore helper. */
  inheritFds?: readonly { fd: number; resource: string }[];
  extra?: readonly string[];
}

/**
 * `criu pre-dump`: the tree's memory written while it runs (frozen only while its pages are
 * collected), soft-dirty bits reset so the next round or the final dump writes only what changed.
 * - `--track-mem` always: criu 4.1 crashes on a pre-dump without it where the kernel lacks
 *   soft-dirty; nvwa never runs one there anyway (probed: criu check --feature mem_dirty_track).
 * - `--prev-images-dir` is relative to the images dir and becomes its `parent` link.
 * - `--pre-dump-mode=read`: pages are copied with process_vm_readv after the tree is thawed
 *   rather than held in kernel pipes while it is frozen: a shorter freeze and no pinned copy of
 *   its whole memory.
 * - No socket, lock or session options: pre-dump dumps none of those and ignores them.
 */
export interface PreDumpArgs {
  pid: number;
  imagesDir: string;
  prevImagesDir?: string;
  logFile?: string;
  verbosity?: number;
  collectTimeoutS?: number;
}

export const PRE_DUMP_LOG = "pre-dump.log";

export function preDumpArgv(o: PreDumpArgs): string[] {
  if (!Number.isInteger(o.pid) || o.pid < 1) throw new RangeError(`criu pre-dump: bad pid ${o.pid}`);
  const a = ["pre-dump", "--tree", String(o.pid), "--images-dir", o.imagesDir, "--log-file", o.logFile ?? PRE_DUMP_LOG, "--track-mem"];
  if (o.prevImagesDir !== undefined) a.push("--prev-images-dir", o.prevImagesDir);
  a.push("--pre-dump-mode=read", "--display-stats");
  if (o.verbosity !== undefined) a.push(`-v${clampVerbosity(o.verbosity)}`);
  if (o.collectTimeoutS !== undefined) a.push("--timeout", String(Math.max(1, Math.trunc(o.collectTimeoutS))));
  return a;
}

/** What the final dump adds after pre-dumps: only what changed since `parent` (both flags are needed). */
export function chainOptions(parent: string): string[] {
  return ["--track-mem", "--prev-images-dir", parent];
}

/**
 * `criu lazy-pages`: the daemon that hands a lazily restored tree its private memory (enable_lazy_restore,
 * src/criu/lazy-pages.ts). It meets `criu restore --lazy-pages` on the relative socket
 * "lazy-pages.socket" in the work dir, so both must run with the same images dir (the default work
 * dir) and the same cwd. `--status-fd` gets one byte once it listens (criu's status_ready); it stays
 * in the foreground (no `-d`) so that nvwa, its parent, learns how it ended.
 */
export interface LazyPagesArgs {
  imagesDir: string;
  statusFd: number;
  logFile?: string;
  verbosity?: number;
}

export const LAZY_PAGES_LOG = "lazy-pages.log";

export function lazyPagesArgv(o: LazyPagesArgs): string[] {
  if (!Number.isInteger(o.statusFd) || o.statusFd < 3) throw new RangeError(`criu lazy-pages: bad status fd ${o.statusFd}`);
  const a = ["lazy-pages", "--images-dir", o.imagesDir, "--log-file", o.logFile ?? LAZY_PAGES_LOG, "--status-fd", String(o.statusFd)];
  if (o.verbosity !== undefined) a.push(`-v${clampVerbosity(o.verbosity)}`);
  return a;
}

/** What `criu restore` adds to meet the lazy-pages daemon. */
export const LAZY_RESTORE_ARGS: readonly string[] = ["--lazy-pages"];

export const DUMP_LOG = "dump.log";
export const RESTORE_LOG = "restore.log";

function shared(o: SharedCriuOptions): string[] {
  const a: string[] = [];
  if (o.shellJob) a.push("--shell-job");
  if (o.tcpEstablished) a.push("--tcp-established");
  if (o.networkLock !== undefined) a.push("--network-lock", o.networkLock);
  if (o.extUnixSk) a.push("--ext-unix-sk");
  if (o.fileLocks) a.push("--file-locks");
  if (o.pinMemory) a.push("--pin-memory");
  if (o.verbosity !== undefined) a.push(`-v${clampVerbosity(o.verbosity)}`);
  if (o.displayStats) a.push("--display-stats");
  return a;
}

function clampVerbosity(v: number): number {
  return Math.max(0, Math.min(4, Math.trunc(v)));
}

export function dumpArgv(o: DumpArgs): string[] {
  if (!Number.isInteger(o.pid) || o.pid < 1) throw new RangeError(`criu dump: bad pid ${o.pid}`);
  const a = ["dump", "--tree", String(o.pid), "--images-dir", o.imagesDir, "--log-file", o.logFile ?? DUMP_LOG];
  if (o.leaveStopped ?? true) a.push("--leave-stopped");
  a.push(...shared(o));
  if (o.collectTimeoutS !== undefined) a.push("--timeout", String(Math.max(1, Math.trunc(o.collectTimeoutS))));
  for (const ext of o.externals ?? []) a.push("--external", ext);
  a.push(...(o.extra ?? []));
  return a;
}

export function restoreArgv(o: RestoreArgs): string[] {
  const a = ["restore", "--images-dir", o.imagesDir, "--log-file", o.logFile ?? RESTORE_LOG];
  if (o.detached ?? true) a.push("--restore-detached");
  a.push(...shared(o));
  if (o.pidfile !== undefined) a.push("--pidfile", o.pidfile);
  if (o.manageCgroups !== undefined) a.push(`--manage-cgroups=${o.manageCgroups}`);
  for (const f of o.inheritFds ?? []) a.push("--inherit-fd", `fd[${f.fd}]:${f.resource}`);
  a.push(...(o.extra ?? []));
  return a;
}

/** `criu check`, optionally for one feature (`--feature network_lock_nftables`). */
export function checkArgv(feature?: string): string[] {
  return feature === undefined ? ["check"] : ["check", "--feature", feature];
}

/** The environment criu runs with (added to nvwa's own). */
export function criuEnv(o: { hardwareBreakpoints: boolean }): Record<string, string> {
  return o.hardwareBreakpoints ? {} : { CRIU_FAULT: "130" };
}

/** Pure: the argv as one line for logs and error details, quoting what needs it. */
export function formatArgv(exe: string, argv: readonly string[]): string {
  return [exe, ...argv].map((s) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)).join(" ");
}
