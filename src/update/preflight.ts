/**
 * Preflight: every check made before an update changes anything (privileges, kernel files,
 * loader, criu, targets, criu_dir, SELinux, accelerations, lock, watchdog), as pure functions
 * over probed Facts. `nvwa check` shows the result as a table; `nvwa update` runs the same list
 * first and refuses on any fail.
 */
import { checkContainers } from "../container/preflight.ts";
import type { NvwaConfig } from "../config/types.ts";
import { ExitCode, NvwaError } from "../errors.ts";
import { chooseLoader } from "../kexec/loader.ts";
import { checkAccelerations } from "../mem/accel.ts";
import { humanBytes } from "../mem/size.ts";
import type { Facts } from "./facts-types.ts";
import { fail, failed, ok, warn, type Check } from "./preflight-types.ts";
import { checkServices } from "./preflight-services.ts";
import { checkKexecWatchdog } from "./preflight-watchdog.ts";

export type { Check } from "./preflight-types.ts";

const ROOT = fail("privileges", "privileges", "", "run nvwa as root (sudo nvwa check …)");

function checkPrivileges(f: Facts): Check {
  return f.uid === 0 ? ok("privileges", "privileges", "running as root") : { ...ROOT, detail: `running as uid ${f.uid}; kexec, criu and /proc/iomem need root` };
}

function checkKernel(f: Facts): Check[] {
  const k = f.kernel;
  if (k === null) return [];
  if (k.versionProblem !== null) {
    return [fail("kernel.version", "kernel version", `"${k.version}" is not a kernel version: ${k.versionProblem}`, "give the release as `uname -r` prints it for that kernel, e.g. 6.1.0-18-amd64")];
  }
  const out: Check[] = [];
  if (k.kernelPath === null) {
    out.push(fail("kernel.image", "kernel image", `no kernel image for ${k.version}: tried ${k.triedKernels.join(", ")}`, `install the kernel package for ${k.version}`));
  } else if (k.image === null || !k.image.ok) {
    out.push(fail("kernel.image", "kernel image", k.image === null ? `${k.kernelPath} was not read` : k.image.message, (k.image !== null && !k.image.ok && k.image.hint) || "reinstall the kernel package"));
  } else {
    const via = k.image.unwrapped.length > 0 ? `; unwrapped in user space (${k.image.unwrapped.join(", ")}) and handed over through a memfd` : "";
    out.push(ok("kernel.image", "kernel image", `${k.kernelPath}: ${k.image.format}, ${humanBytes(k.image.bytes)}${via}`));
  }
  if (k.initrdPath === null) {
    out.push(
      fail(
        "kernel.initrd",
        "initramfs",
        `no initramfs for ${k.version}: tried ${k.triedInitrds.join(", ")}`,
        `build it: \`dracut --kver ${k.version}\` (openEuler/Fedora) or \`update-initramfs -c -k ${k.version}\` (Debian)`,
      ),
    );
  } else {
    out.push(ok("kernel.initrd", "initramfs", `${k.initrdPath}, ${humanBytes(k.initrdBytes ?? 0)}`));
  }
  if (k.version === f.runningRelease) {
    out.push(warn("kernel.same", "target kernel", `${k.version} is the kernel already running`, "that is fine for a rehearsal; for an upgrade name the new version"));
  }
  return out;
}

const IN_WINDOW = ["planned", "checkpointing", "dumped", "committed", "jumping"];

/**
 * A kernel loaded for kexec outside nvwa's update window is a trap: `systemctl kexec` (and
 * `systemctl reboot` on systemd versions that turn a reboot into a kexec when a kernel is loaded,
 * unless SYSTEMCTL_SKIP_AUTO_KEXEC=1) jumps into it with nothing checkpointed. nvwa unloads its
 * own kernel on every way out of an update, so a loaded kernel is nvwa's only while its update on
 * this boot is in flight.
 */
export function loadedKernelCheck(u: Facts["kexec"]["nvwaUpdate"]): Check {
  if (u !== null && u.sameBoot && u.loader !== undefined && IN_WINDOW.includes(u.phase)) {
    return ok("kexec.support", "kexec support", `the loaded kernel is nvwa's: update ${u.updateId} is ${u.phase}`);
  }
  return warn(
    "kexec.support",
    "kexec support",
    "a kernel that nvwa did not load is loaded for kexec (/sys/kernel/kexec_loaded is 1): until it is unloaded, `systemctl kexec` (and on newer systemd `systemctl reboot`) jumps into it with nothing checkpointed; an update would replace it",
    "unload it with `kexec -u` (or `nvwa init`) unless it was loaded on purpose; if Debian's kexec-tools loads kernels at shutdown, set LOAD_KEXEC=false in /etc/default/kexec",
  );
}

function checkKexec(f: Facts, config: NvwaConfig): Check[] {
  const out: Check[] = [];
  if (!f.kexec.core) {
    out.push(
      fail(
        "kexec.support",
        "kexec support",
        "/sys/kernel/kexec_loaded does not exist: the running kernel was built without kexec (CONFIG_KEXEC_CORE)",
        "boot a kernel built with CONFIG_KEXEC/CONFIG_KEXEC_FILE once, the traditional way",
      ),
    );
  } else if (f.kexec.loaded === true) {
    out.push(loadedKernelCheck(f.kexec.nvwaUpdate));
  } else {
    out.push(ok("kexec.support", "kexec support", "the kernel supports kexec and nothing is loaded yet"));
  }
  const choice = chooseLoader({
    arch: f.arch,
    prefer: config.server.kexecLoader,
    firmwareFdt: f.kexec.firmwareFdt,
    kexecCore: f.kexec.core,
    fileLoad: f.kexec.fileLoad,
    quick: config.restore.enableQuickKexec,
    kexecExe: f.kexec.exe,
    kexecExeExists: f.kexec.exeExists,
    lockdown: f.lockdown,
    kexecLoadDisabled: f.kexec.loadDisabled,
  });
  if (choice.ok) out.push(ok("kexec.loader", "kexec loader", `${choice.loader}: ${choice.reason}`));
  else if (f.kexec.core) out.push(fail("kexec.loader", "kexec loader", choice.error.message, choice.error.hint ?? ""));
  else if (f.kexec.fileLoad.kind === "missing") {
    out.push(
      fail(
        "kexec.loader",
        "kexec loader",
        "kexec_file_load answers ENOSYS (the kernel was built without CONFIG_KEXEC_FILE), and without CONFIG_KEXEC_CORE the kexec_exe fallback (kexec_load) has nothing to call either",
        "boot a kernel with CONFIG_KEXEC_FILE (or at least CONFIG_KEXEC plus kexec-tools for the kexec_exe -c fallback)",
      ),
    );
  }
  out.push(checkLockdown(f, choice.ok ? choice.loader : null));
  return out;
}

function checkLockdown(f: Facts, loader: string | null): Check {
  const id = "kexec.lockdown";
  const title = "lockdown / signatures";
  const sb = f.secureBoot === null ? "" : f.secureBoot ? ", Secure Boot on" : ", Secure Boot off";
  if (f.lockdown === null || f.lockdown === "none") {
    return ok(id, title, `the kernel is not locked down${sb}; unsigned kernels load (unless KEXEC_SIG_FORCE)`);
  }
  if (loader !== null && loader.startsWith("kexec_exe")) {
    return fail(id, title, `lockdown is "${f.lockdown}"${sb}: ${loader} uses kexec_load, which the kernel refuses in lockdown`, "use a kernel with kexec_file_load and signed images, or disable lockdown");
  }
  const img = f.kernel?.image;
  if (img === undefined || img === null || !img.ok) {
    return warn(id, title, `lockdown is "${f.lockdown}"${sb}: only kernels signed by a trusted key can be loaded`, "make sure the target kernel is distribution-signed (or signed with an enrolled MOK key)");
  }
  if (img.signed !== true) {
    const why =
      img.unwrapped.length > 0
        ? `the image had to be unwrapped (${img.unwrapped.join(", ")}) and what the kernel gets carries no signature (a wrapper's signature does not cover its payload)`
        : `${f.kernel?.kernelPath} is not signed`;
    return fail(
      id,
      title,
      `lockdown is "${f.lockdown}"${sb} and ${why}: the kernel will refuse it (EPERM)`,
      img.unwrapped.length > 0 ? "install the kernel as a signed raw Image, or disable lockdown" : "install the distribution-signed kernel package, or sign it with an enrolled key (sbsign + mokutil)",
    );
  }
  return ok(
    id,
    title,
    `lockdown is "${f.lockdown}"${sb}; the image handed to the kernel${img.unwrapped.length > 0 ? ` (unwrapped: ${img.unwrapped.join(", ")})` : ""} carries a signature, which the kernel verifies against its trusted keys at load`,
  );
}

function checkCriu(f: Facts): Check[] {
  const c = f.criu;
  if (c === null) return [];
  const id = "criu.check";
  const title = "criu check";
  if (!c.exists) return [fail(id, title, `criu_exe ${c.exe} does not exist or is not executable`, "install criu (dnf install criu / apt install criu) or set criu_exe in nvwa-server.yaml")];
  const last = c.output.split("\n").filter((l) => l.trim() !== "").slice(-2).join(" | ") || "(no output)";
  if (c.timedOut) return [fail(id, title, `${c.exe} check did not finish in time`, "run `criu check` by hand and look for what hangs")];
  if (c.exitCode !== 0) return [fail(id, title, `${c.exe} check failed (exit ${c.exitCode}): ${last}`, "criu cannot checkpoint on this kernel; install a criu release that supports it")];
  // criu check can print "Error (...)" lines from optional probes (e.g. a firewall tool it
  // could use) and still end with "Looks good." and exit 0: that is a warning, not a pass.
  const noted = c.output.split("\n").filter((l) => /^\s*(Error|Warn)/.test(l) || /missing/i.test(l));
  if (noted.length > 0) {
    return [warn(id, title, `${c.exe} check passed with ${noted.length} message(s), first: ${noted[0]?.trim()}`, "some optional kernel features or tools criu can use are missing; run `criu check --all -v4` to see which")];
  }
  return [ok(id, title, `${c.exe} check: ${last}`)];
}

/** enable_pre_dump: incremental only where the kernel tracks dirty pages (soft-dirty); else said, and dumped in full. */
function checkPreDump(f: Facts, config: NvwaConfig): Check[] {
  if (!config.restore.enablePreDump || f.criu === null || !f.criu.exists) return [];
  const id = "criu.pre-dump";
  const title = "pre-dump";
  if (f.criu.memTrack === true) {
    return [ok(id, title, "soft-dirty pages are tracked: each target's memory is written while it runs, and the freeze writes only what changed since")];
  }
  const why = f.arch === "arm64" ? "arm64 has no soft-dirty page tracking" : "this kernel does not track dirty pages (criu check --feature mem_dirty_track fails: CONFIG_MEM_SOFT_DIRTY is not set)";
  return [
    warn(
      id,
      title,
      `${why}: enable_pre_dump cannot shorten the freeze, and each target is dumped in full while frozen`,
      f.arch === "arm64" ? "nothing to do on arm64; set enable_pre_dump: false to silence this" : "boot a kernel with CONFIG_MEM_SOFT_DIRTY=y, or set enable_pre_dump: false",
    ),
  ];
}

/** enable_lazy_restore: the running kernel's userfaultfd (the kernel after the jump is asked again at restore). */
function checkLazyRestore(f: Facts, config: NvwaConfig): Check[] {
  if (!config.restore.enableLazyRestore || f.criu === null || !f.criu.exists) return [];
  const id = "criu.lazy-restore";
  const title = "lazy restore";
  if (config.restore.enablePinMemory) {
    return [warn(id, title, "enable_pin_memory keeps memory in place across the jump: there is nothing for a lazy restore to copy, and targets are restored in full", "set enable_lazy_restore: false, or enable_pin_memory: false")];
  }
  if (f.criu.uffd === true) {
    return [
      ok(
        id,
        title,
        "non-cooperative userfaultfd works on this kernel: targets run again before their memory is back, and nvwa watches criu lazy-pages until all of it is in (a target whose daemon ends early is killed and reported lost); the new kernel is asked again at restore",
      ),
    ];
  }
  return [
    warn(
      id,
      title,
      "this kernel has no non-cooperative userfaultfd (criu check --feature uffd-noncoop fails): targets restored on it come back in full; the new kernel is asked again at restore",
      "boot kernels with CONFIG_USERFAULTFD=y, or set enable_lazy_restore: false to silence this",
    ),
  ];
}

function checkTargets(f: Facts, config: NvwaConfig): Check[] {
  const out: Check[] = [];
  for (const pid of config.restore.pids) {
    const id = `target.pid.${pid}`;
    const title = `pid ${pid}`;
    const p = f.pids.find((x) => x.pid === pid);
    if (pid === 1) out.push(fail(id, title, "pid 1 is init and cannot be checkpointed", "list the workload's pid, or its systemd service under services:"));
    else if (pid === f.pid) out.push(fail(id, title, `pid ${pid} is nvwa itself`, "remove it from pids: in nvwa-restore.yaml"));
    else if (p === undefined || !p.alive) {
      out.push(fail(id, title, p?.zombie ? `pid ${pid} (${p.comm}) is a zombie` : `no process with pid ${pid} is running`, "remove it from pids: in nvwa-restore.yaml or start the workload"));
    } else if (p.kernelThread) {
      out.push(fail(id, title, `pid ${pid} (${p.comm}) is a kernel thread; there is nothing to checkpoint`, "list the workload's pid instead (pgrep -f <name>)"));
    } else {
      out.push(ok(id, title, `${p.comm} is running; ${p.treePids.length} process(es) in its tree, ${humanBytes(p.rssBytes)} resident`));
    }
  }
  out.push(...checkServices(config.restore.services, f.services, config.server.systemdEtc, f.capabilities.journalStdio, f.servicesProbeError, f.serviceNamespaces));
  if (config.restore.pids.length === 0 && config.restore.services.length === 0) {
    out.push(warn("targets", "targets", "no pids or services are configured: an update would only switch kernels", "list them in nvwa-restore.yaml (pids:, services:)"));
  }
  return out;
}

function targetRss(f: Facts): number {
  return [...f.pids, ...(f.serviceTrees ?? [])].filter((p) => p.alive).reduce((s, p) => s + p.rssBytes, 0);
}

function checkCriuDir(f: Facts, config: NvwaConfig): Check[] {
  const d = f.criuDir;
  const out: Check[] = [];
  const where = d.probedPath === d.path ? d.path : `${d.path} (to be created under ${d.probedPath})`;
  if (d.fsType === "tmpfs" || d.fsType === "ramfs") {
    out.push(fail("criu-dir.fs", "criu_dir filesystem", `${where} is on ${d.fsType}, which does not survive the jump`, "set criu_dir in nvwa-server.yaml to a directory on disk, e.g. /var/nvwa/running/"));
  } else if (d.fsType === "unknown") {
    out.push(warn("criu-dir.fs", "criu_dir filesystem", `the filesystem of ${where} could not be determined`, "make sure criu_dir is on a disk filesystem"));
  } else {
    out.push(ok("criu-dir.fs", "criu_dir filesystem", `${where} is on ${d.fsType}`));
  }
  // Pre-dump rounds hold the whole memory once more than the final dump's changes.
  const need = targetRss(f) * (config.restore.enablePreDump ? 1.25 : 1);
  const svcNote = config.restore.services.length > 0 && f.serviceTrees === undefined ? " (services' memory not counted: systemd unreachable)" : "";
  if (d.freeBytes === null) {
    out.push(warn("criu-dir.space", "criu_dir free space", `free space of ${where} could not be read`, "check with df"));
  } else if (d.freeBytes < need) {
    out.push(fail("criu-dir.space", "criu_dir free space", `${humanBytes(d.freeBytes)} free, the targets hold ${humanBytes(need)} in memory${svcNote}`, "free space on that filesystem or point criu_dir elsewhere"));
  } else if (d.freeBytes < need * 1.5 + 64 * 1024 * 1024) {
    out.push(warn("criu-dir.space", "criu_dir free space", `${humanBytes(d.freeBytes)} free for ${humanBytes(need)} of target memory${svcNote}: little margin`, "free space on that filesystem"));
  } else {
    out.push(ok("criu-dir.space", "criu_dir free space", `${humanBytes(d.freeBytes)} free, targets hold ${humanBytes(need)}${svcNote}`));
  }
  return out;
}

function checkSelinux(f: Facts): Check {
  if (f.selinux === "enforcing") {
    return warn(
      "selinux",
      "SELinux",
      "SELinux is enforcing: criu restore needs a policy that lets it recreate the processes with their labels",
      "rehearse with `nvwa check --rehearse`; if restore is denied, load criu's policy module or run the update with `setenforce 0`",
    );
  }
  return ok("selinux", "SELinux", f.selinux === "permissive" ? "SELinux is permissive" : "SELinux is not enabled");
}

function checkLock(f: Facts): Check {
  const l = f.lock;
  if (!l.exists) return ok("update.lock", "no update running", `${l.path} does not exist`);
  if (l.pid !== null && l.alive === true && l.pid !== f.pid) {
    return fail("update.lock", "no update running", `an update is already running (pid ${l.pid} holds ${l.path})`, "wait for it to finish; `nvwa status` shows its progress");
  }
  if (l.pid === null) return warn("update.lock", "no update running", `${l.path} exists but names no pid`, `if no update is running, remove ${l.path}`);
  return warn("update.lock", "no update running", `${l.path} is left over from pid ${l.pid}, which is no longer running`, `it is taken over by the next update; remove ${l.path} to be sure`);
}

/** Pure: the whole preflight, in display order. */
export function evaluatePreflight(f: Facts, config: NvwaConfig): Check[] {
  const pinProcesses = f.pids.filter((p) => p.alive).reduce((s, p) => s + p.treePids.length, 0) + config.restore.services.length;
  const img = f.kernel?.image;
  return [
    checkPrivileges(f),
    ...checkKernel(f),
    ...checkKexec(f, config),
    ...checkCriu(f),
    ...checkPreDump(f, config),
    ...checkLazyRestore(f, config),
    ...checkTargets(f, config),
    ...checkContainers(f.containers, config),
    ...checkCriuDir(f, config),
    checkSelinux(f),
    ...checkAccelerations({
      arch: f.arch,
      cmdline: f.cmdline,
      iomem: f.iomem,
      devPinmem: f.devPinmem,
      quickEnabled: config.restore.enableQuickKexec,
      pinEnabled: config.restore.enablePinMemory,
      kernelBytes: img && img.ok ? img.bytes : null,
      initrdBytes: f.kernel?.initrdBytes ?? null,
      pinProcesses,
      targetRssBytes: targetRss(f),
      nrCpus: f.nrCpus,
    }),
    checkLock(f),
    checkKexecWatchdog(f.watchdog, f.watchdogDevices),
  ];
}

/** A refused update names this many failed checks with their fixes; `nvwa check` shows the rest. */
export const MAX_LISTED_FAILURES = 5;

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, " ");

/**
 * Throws the preflight failure `nvwa update` reports (exit code 3), or returns the checks. The
 * message names each failed check with what was found and its fix, one line each (up to
 * MAX_LISTED_FAILURES, then how many more and the `nvwa check` that shows them), so that a
 * refused update says why without a second command. details.failed has every failed check.
 */
export function assertPreflight(checks: Check[], version?: string): Check[] {
  const bad = failed(checks);
  if (bad.length === 0) return checks;
  const first = bad[0] as Check;
  const checkCmd = `nvwa check ${version ?? "<version>"}`;
  const opts = { exitCode: ExitCode.preflight, details: { failed: bad } };
  if (bad.length === 1) {
    return refuse(`preflight failed: ${first.title}: ${oneLine(first.detail)}`, { ...opts, hint: oneLine(first.fix ?? `run \`${checkCmd}\``) });
  }
  const lines = bad.slice(0, MAX_LISTED_FAILURES).map((c) => `  ${c.title}: ${oneLine(c.detail)}${c.fix ? ` — ${oneLine(c.fix)}` : ""}`);
  const more = bad.length - MAX_LISTED_FAILURES;
  if (more > 0) lines.push(`  … and ${more} more: ${checkCmd}`);
  return refuse([`preflight failed (${bad.length} checks):`, ...lines].join("\n"), {
    ...opts,
    hint: `nothing was changed; \`${checkCmd}\` shows every check, warnings included`,
  });
}

function refuse(message: string, opts: { hint: string; exitCode: ExitCode; details: Record<string, unknown> }): never {
  throw new NvwaError("preflight.failed", message, opts);
}
