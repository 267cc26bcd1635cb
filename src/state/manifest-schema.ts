/**
 * The manifest's schema (valibot) and types: what `<criu_dir>/manifest.json` may hold. The phases
 * and the rules for moving between them are manifest.ts's.
 */
import * as v from "valibot";

export const MANIFEST_VERSION = 1;
export const MANIFEST_FILE = "manifest.json";

export const UPDATE_PHASES = [
  "planned",
  "checkpointing",
  "dumped",
  "rolled-back",
  "committed",
  "jumping",
  "restoring",
  "restored",
  "restore-failed",
] as const;
export type UpdatePhase = (typeof UPDATE_PHASES)[number];

export const TARGET_PHASES = [
  "planned",
  "dumping",
  "dumped",
  "dump-failed",
  "resumed",
  "killing",
  "killed",
  "restoring",
  "restored",
  "restore-failed",
  "skipped",
  "lost",
] as const;
export type TargetPhase = (typeof TARGET_PHASES)[number];

const Int = v.pipe(v.number(), v.integer());
const Pid = v.pipe(v.number(), v.integer(), v.minValue(1));
const Epoch = v.pipe(v.number(), v.integer(), v.minValue(0));

export const Timing = v.object({ start: Epoch, end: v.optional(Epoch) });
export type Timing = v.InferOutput<typeof Timing>;
const Timings = v.record(v.string(), Timing);

export const ErrorRecord = v.object({
  code: v.string(),
  message: v.string(),
  hint: v.optional(v.string()),
});
export type ErrorRecord = v.InferOutput<typeof ErrorRecord>;

/** criu's own numbers from --display-stats (microseconds / pages), when it printed them. */
export const DumpStats = v.object({
  freezingUs: v.optional(Int),
  frozenUs: v.optional(Int),
  memdumpUs: v.optional(Int),
  memwriteUs: v.optional(Int),
  pagesScanned: v.optional(Int),
  pagesSkippedParent: v.optional(Int),
  pagesWritten: v.optional(Int),
});
export type DumpStats = v.InferOutput<typeof DumpStats>;

/**
 * The pre-dumps of a target (src/update/pre-dump.ts): each round while the tree ran, and the
 * directory the final dump's `parent` link names. `skipped` says why there were none.
 */
export const PreDump = v.object({
  /** ms: criu's time; syncMs: the fsync after it, still before the freeze (builds before it: absent). */
  rounds: v.array(v.object({ dir: v.pipe(v.string(), v.regex(/^pre-\d+$/)), ms: Int, bytes: Int, syncMs: v.optional(Int), stats: v.optional(DumpStats) })),
  /** The last good round: the final dump's --prev-images-dir. */
  parent: v.optional(v.pipe(v.string(), v.regex(/^pre-\d+$/))),
  skipped: v.optional(v.string()),
});
export type PreDump = v.InferOutput<typeof PreDump>;

/**
 * A lazy restore (enable_lazy_restore, src/restore/lazy.ts): the tree ran before its private memory
 * was back; criu's lazy-pages daemon (nvwa's child, `daemonPid`) copied it in. "starting" from the
 * daemon's start to the end of criu restore (the tree may already run), "copying" until it
 * exits; "done" when it exited 0 (every page in, `ms` after the restore ended); "lost" when it ended
 * any other way (pages not yet copied would read as zeros: the tree was killed, the target failed).
 */
export const LazyRestore = v.object({
  state: v.picklist(["starting", "copying", "done", "lost"]),
  daemonPid: v.optional(Pid),
  /** When the restored tree ran (epoch ms). */
  startedAt: Epoch,
  /** When the daemon ended (epoch ms). */
  endedAt: v.optional(Epoch),
  /** How it ended: "exit code 0", "killed by SIGKILL". */
  end: v.optional(v.string()),
});
export type LazyRestore = v.InferOutput<typeof LazyRestore>;

export const RestoreStats = v.object({
  restoreUs: v.optional(Int),
  forkingUs: v.optional(Int),
  pagesRestored: v.optional(Int),
});
export type RestoreStats = v.InferOutput<typeof RestoreStats>;

/** A target name is also its images directory under criu_dir: one path component. */
export const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9:_.@\\-]{0,254}$/;

const TcpTupleRecord = v.object({
  family: v.picklist(["inet", "inet6"]),
  local: v.string(),
  localPort: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)),
  remote: v.string(),
  remotePort: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)),
});

export const Target = v.object({
  kind: v.picklist(["pid", "service"]),
  /** The pid as written in the config ("948") or the full unit name ("redis.service"). */
  name: v.pipe(v.string(), v.regex(TARGET_NAME, "one path component of letters, digits and :_.@\\-")),
  unit: v.optional(v.string()),
  rootPid: Pid,
  /** Start time of the root (clock ticks since boot, /proc/<pid>/stat field 22): tells a pid reused. */
  rootStartTime: v.optional(Int),
  /** Every pid of the tree: each process and each thread id. These must be free at restore. */
  pids: v.array(Pid),
  /** The thread-group leaders among `pids`: the processes signals go to. */
  processes: v.array(Pid),
  /** Processes that were already stopped (state T) before the dump: a rollback leaves them so. */
  stoppedBefore: v.optional(v.array(Pid), []),
  cmdline: v.array(v.string()),
  comm: v.optional(v.string()),
  imagesDir: v.string(),
  /** Dumped with --shell-job (its session or process group leader is outside the tree). */
  shellJob: v.boolean(),
  /** Its images hold established TCP connections (criu left them in repair mode, locked). */
  tcpConnections: v.optional(v.boolean(), false),
  /** Those connections as 4-tuples, read while the tree was frozen: held back after the jump
   *  (net/tcp-lock.ts) until the target is restored. */
  tcpTuples: v.optional(v.array(TcpTupleRecord)),
  /** A service's journal streams: dumped as criu externals, given fresh ones at restore (src/criu/journal.ts). */
  journalStreams: v.optional(
    v.array(
      v.object({
        ino: v.pipe(v.number(), v.integer(), v.minValue(1)),
        fds: v.array(v.pipe(v.number(), v.integer(), v.minValue(0))),
        header: v.object({
          identifier: v.string(),
          unit: v.string(),
          priority: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(999)),
          levelPrefix: v.boolean(),
          forwardToKmsg: v.boolean(),
          forwardToConsole: v.boolean(),
        }),
      }),
    ),
  ),
  /** Files on a tmpfs the tree held open, copied beside the images, put back before the restore (src/criu/held-files.ts). */
  heldFiles: v.optional(
    v.array(
      v.object({
        path: v.pipe(v.string(), v.startsWith("/")),
        mode: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0o7777)),
        uid: v.pipe(v.number(), v.integer(), v.minValue(0)),
        gid: v.pipe(v.number(), v.integer(), v.minValue(0)),
        size: v.pipe(v.number(), v.integer(), v.minValue(0)),
        copy: v.pipe(v.string(), v.regex(/^held-file-\d+$/)),
      }),
    ),
  ),
  phase: v.picklist(TARGET_PHASES),
  timings: v.optional(Timings, {}),
  imageBytes: v.optional(Int),
  dumpStats: v.optional(DumpStats),
  preDump: v.optional(PreDump),
  restoreStats: v.optional(RestoreStats),
  /** Pid of the restored root (equal to rootPid: criu restores pids as they were). */
  restoredPid: v.optional(Pid),
  lazy: v.optional(LazyRestore),
  error: v.optional(ErrorRecord),
});
export type Target = v.InferOutput<typeof Target>;

export const CONTAINER_PHASES = ["planned", "checkpointing", "checkpointed", "checkpoint-failed", "resumed", "restoring", "restored", "restore-failed", "lost"] as const;
export type ContainerPhase = (typeof CONTAINER_PHASES)[number];

/**
 * A podman container kept across the jump (src/container/). podman's checkpoint stops it and
 * keeps the images in its own bundle (`staticDir`/checkpoint, fsynced by nvwa); the engine's logs
 * are copied to `logDir` (<criu_dir>/containers/<name>/). podman forgets after a reboot that it
 * checkpointed the container, so everything a restore needs is here.
 */
export const ContainerTarget = v.object({
  /** As written in `containers:` (a name or an id). */
  name: v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)),
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  engine: v.literal("podman"),
  /** Libpod-API-Version of the engine that checkpointed it. */
  apiVersion: v.optional(v.string()),
  /** The container's bundle (inspect .StaticDir): podman's checkpoint lives in its checkpoint/. */
  staticDir: v.pipe(v.string(), v.startsWith("/")),
  logDir: v.pipe(v.string(), v.startsWith("/")),
  /** Its init process and tree before the checkpoint, as the host saw them (in its own pid
   *  namespace a container keeps its pids; the host's view of them changes at restore). */
  rootPid: Pid,
  pids: v.array(Pid),
  networkMode: v.optional(v.string()),
  /** The systemd unit that runs it (`podman generate systemd`): it comes back through that unit,
   *  whose ExecStart is nvwa's restore helper after the jump (a Type=forking unit following conmon). */
  unit: v.optional(v.string()),
  /** That unit's PIDFile= (the container's conmon.pid). */
  unitPidFile: v.optional(v.pipe(v.string(), v.startsWith("/"))),
  /** Its established TCP connections (host network only), read just before the checkpoint:
   *  held back after the jump like a target's until it is restored. */
  tcpTuples: v.optional(v.array(TcpTupleRecord)),
  phase: v.picklist(CONTAINER_PHASES),
  timings: v.optional(Timings, {}),
  /** Bytes of podman's checkpoint directory. */
  imageBytes: v.optional(Int),
  error: v.optional(ErrorRecord),
});
export type ContainerTarget = v.InferOutput<typeof ContainerTarget>;

export const ManifestOptions = v.object({
  debug: v.boolean(),
  pinMemory: v.boolean(),
  restoreNet: v.boolean(),
  tcpEstablished: v.boolean(),
  extUnixSk: v.boolean(),
  fileLocks: v.boolean(),
  /** criu --network-lock method used at dump; restore must use the same. */
  networkLock: v.optional(v.picklist(["iptables", "nftables", "skip"])),
  /** false: criu ran with CRIU_FAULT=130 (no hardware breakpoints), see src/criu/argv.ts. */
  hardwareBreakpoints: v.optional(v.boolean(), false),
  /** A rehearsal (`nvwa check --rehearse`): never committed, never restored. */
  rehearsal: v.optional(v.boolean(), false),
  /** enable_lazy_restore: restore each target's private memory after it runs (src/restore/lazy.ts). */
  lazyRestore: v.optional(v.boolean(), false),
});
export type ManifestOptions = v.InferOutput<typeof ManifestOptions>;

/** One start of the daemon that found this update unfinished, and what it did. */
export const Recovery = v.object({
  at: Epoch,
  bootId: v.optional(v.string()),
  /** The update's phase as the daemon found it. */
  found: v.picklist(UPDATE_PHASES),
  action: v.picklist(["rolled-back", "restored", "lost"]),
  /** One sentence: what had happened and what was done. */
  message: v.string(),
});
export type Recovery = v.InferOutput<typeof Recovery>;

export const Manifest = v.object({
  version: v.literal(MANIFEST_VERSION),
  updateId: v.pipe(v.string(), v.minLength(1)),
  createdAt: Epoch,
  phase: v.picklist(UPDATE_PHASES),
  kernel: v.object({ from: v.string(), to: v.string(), loader: v.optional(v.string()) }),
  /** /proc/sys/kernel/random/boot_id when the manifest was created. */
  createdBootId: v.optional(v.string()),
  /** boot_id at commit: a restore on a different boot id knows the jump happened. */
  bootId: v.optional(v.string()),
  /** boot_id when the restore began: on that same boot a target caught "restoring" may already run. */
  restoreBootId: v.optional(v.string()),
  criuDir: v.string(),
  criu: v.optional(v.object({ exe: v.string(), version: v.optional(v.string()) })),
  options: ManifestOptions,
  timings: Timings,
  targets: v.array(Target),
  /** podman containers, checkpointed after the targets (their rollback costs a restore). */
  containers: v.optional(v.array(ContainerTarget), []),
  error: v.optional(ErrorRecord),
  recoveries: v.optional(v.array(Recovery)),
});
export type Manifest = v.InferOutput<typeof Manifest>;
