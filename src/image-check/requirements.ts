/**
 * What nvwa needs from a kernel's build configuration, and what it loses without each option.
 * Pure: a parsed config (kernel-config.ts) in, findings out. Each option is here for a reason
 * nvwa's own code or criu's gives; the table in this folder's README.md repeats the reasons.
 */
import type { CheckStatus } from "../update/preflight-types.ts";
import type { KexecLoaderChoice } from "../config/types.ts";
import { configArch, isEnabled, type KernelConfig } from "./kernel-config.ts";

/** Something the kernel lacks (or has that gets in the way), and what it costs. */
export interface Finding {
  /** The options concerned, without `CONFIG_`: ["NF_TABLES_INET"]. */
  options: string[];
  /** What the config says about them: "CONFIG_USERFAULTFD is not set". */
  what: string;
  status: "fail" | "warn";
  /** What nvwa cannot do because of it, as a person reads it. */
  cost: string;
  fix: string;
}

/** Options that are needed together for one thing nvwa does; any missing one costs that thing. */
interface Requirement {
  readonly options: readonly string[];
  readonly status: "fail" | "warn";
  readonly cost: string;
}

/**
 * Everything but kexec (judged apart: two options either of which will do, and which also
 * depend on kexec-tools in the image).
 *
 * - CHECKPOINT_RESTORE: criu's base (/proc/<pid>/map_files, kcmp, writable ns_last_pid,
 *   PR_SET_MM); `criu check` fails without it, and nvwa's preflight with it.
 * - NF_TABLES, NF_TABLES_INET: the TCP lock nvwa re-creates after the jump is an nf_tables table
 *   of family inet (src/net/tcp-lock.ts); without it a peer's packet meets no socket and resets.
 * - MEM_SOFT_DIRTY: criu's pre-dump tracks the pages written since with soft-dirty bits; without
 *   them every page is written while the processes are frozen.
 * - USERFAULTFD: criu's lazy restore (`criu lazy-pages`) serves pages on first touch.
 * - UNIX_DIAG, INET_DIAG: criu finds the sockets a process holds through sock_diag; in its own
 *   network namespace (nvwa's case) a missing family fails only the dump of a process that holds
 *   such a socket (criu/sockets.c collect_sockets), so this is a warning, not a refusal.
 *
 * Namespaces (PID_NS, NET_NS, ...) are not here: nvwa checkpoints processes of the host's own
 * namespaces and never asks criu to create one.
 */
const REQUIREMENTS: readonly Requirement[] = [
  { options: ["CHECKPOINT_RESTORE"], status: "fail", cost: "criu cannot checkpoint or restore anything (no /proc/<pid>/map_files, kcmp, ns_last_pid)" },
  { options: ["NF_TABLES", "NF_TABLES_INET"], status: "warn", cost: "TCP connections cannot be kept (the TCP lock uses nftables)" },
  { options: ["MEM_SOFT_DIRTY"], status: "warn", cost: "no incremental pre-dump: the whole memory is written while frozen (nvwa always dumps in full today; pre-dump is planned)" },
  { options: ["USERFAULTFD"], status: "warn", cost: "no lazy restore (not used by nvwa yet; planned for large targets)" },
  { options: ["UNIX_DIAG"], status: "warn", cost: "processes holding a unix socket cannot be checkpointed (criu finds sockets through sock_diag)" },
  { options: ["INET_DIAG"], status: "warn", cost: "processes holding a TCP or UDP socket cannot be checkpointed (criu finds sockets through sock_diag)" },
];

/**
 * kexec-tools as the image has it: the loader where the kernel lacks kexec_file_load on x86_64, or
 * everywhere with kexec_loader: kexec_exe. arm64 needs none (nvwa calls kexec_load itself).
 */
export interface KexecTools {
  /** kexec_exe inside the image (nvwa-server.yaml's, else /usr/sbin/kexec). */
  path: string;
  executable: boolean;
  /** nvwa-server.yaml kexec_loader inside the image (default auto). */
  prefer?: KexecLoaderChoice;
}

export type Loader = "kexec_file_load" | "kexec_load";

export interface KernelJudgment {
  /** The worst finding's status; ok when there is none. */
  status: CheckStatus;
  /** How nvwa loads the next kernel while this one runs; null when it cannot. */
  loader: Loader | null;
  findings: Finding[];
}

const withConfig = (options: readonly string[]): string => options.map((o) => `CONFIG_${o}=y`).join(" and ");

/**
 * The kexec options of the kernel that will be running when nvwa loads the next one: this
 * kernel's syscalls are the ones nvwa calls then (DESIGN.md §3, src/kexec/loader.ts).
 */
function judgeKexec(c: KernelConfig, tools: KexecTools): { loader: Loader | null; findings: Finding[] } {
  const file = isEnabled(c, "KEXEC_FILE");
  const load = isEnabled(c, "KEXEC");
  // kexec_loader: kexec_exe: kexec-tools loads whatever the kernel offers (chooseLoader).
  if ((tools.prefer ?? "auto") === "kexec_exe") {
    if (!load) {
      return {
        loader: null,
        findings: [{ options: ["KEXEC"], what: "CONFIG_KEXEC is not set", status: "fail", cost: `kexec_loader is kexec_exe, and ${tools.path} -c needs kexec_load, which this kernel lacks`, fix: "set kexec_loader: auto in nvwa-server.yaml, or build the kernel with CONFIG_KEXEC=y" }],
      };
    }
    if (!tools.executable) {
      return {
        loader: null,
        findings: [{ options: ["KEXEC"], what: `${tools.path} is not in the image`, status: "fail", cost: `cannot load a kernel: kexec_loader is kexec_exe, and the fallback ${tools.path} (kexec-tools, kexec_load) is not in the image`, fix: "install kexec-tools in the image, or set kexec_loader: auto" }],
      };
    }
    return {
      loader: "kexec_load",
      findings: [
        {
          options: ["KEXEC"],
          what: "kexec_loader is kexec_exe",
          status: "warn",
          cost: `nvwa loads the next kernel with ${tools.path} -c (kexec_load), which lockdown (Secure Boot) refuses`,
          fix: "nothing while lockdown is off; kexec_loader: auto loads with the kernel's own loaders",
        },
      ],
    };
  }
  if (file) {
    if (c.options.get("KEXEC_SIG_FORCE") === "y") {
      return {
        loader: "kexec_file_load",
        findings: [
          {
            options: ["KEXEC_SIG_FORCE"],
            what: "CONFIG_KEXEC_SIG_FORCE=y",
            status: "warn",
            cost: "kexec_file_load accepts only kernels signed with a trusted key: an unsigned kernel, or one nvwa unwraps (gzip, EFI zboot), is refused",
            fix: "move only to signed kernels, or build without CONFIG_KEXEC_SIG_FORCE",
          },
        ],
      };
    }
    return { loader: "kexec_file_load", findings: [] };
  }
  if (!load) {
    return {
      loader: null,
      findings: [{ options: ["KEXEC_FILE", "KEXEC"], what: "neither CONFIG_KEXEC_FILE nor CONFIG_KEXEC is set", status: "fail", cost: "cannot load a kernel: nvwa could not move this machine to another one", fix: "build the kernel with CONFIG_KEXEC_FILE=y (or at least CONFIG_KEXEC=y with kexec-tools in the image)" }],
    };
  }
  // Without kexec_file_load, kexec_load loads: nvwa's own on arm64, kexec-tools elsewhere.
  const withoutFileLoad = (by: string): { loader: Loader; findings: Finding[] } => ({
    loader: "kexec_load",
    findings: [
      {
        options: ["KEXEC_FILE"],
        what: "CONFIG_KEXEC_FILE is not set",
        status: "warn",
        cost: `no kexec_file_load: nvwa loads the next kernel with ${by}, which lockdown (Secure Boot) refuses`,
        fix: "nothing while lockdown is off; build the kernel with CONFIG_KEXEC_FILE=y to load under lockdown",
      },
    ],
  });
  if (configArch(c) === "arm64" && (tools.prefer ?? "auto") === "auto") return withoutFileLoad("kexec_load itself (no kexec-tools needed)");
  if (!tools.executable) {
    return {
      loader: null,
      findings: [
        {
          options: ["KEXEC_FILE"],
          what: "CONFIG_KEXEC_FILE is not set",
          status: "fail",
          cost: `cannot load a kernel: there is no kexec_file_load, and the fallback ${tools.path} (kexec-tools, kexec_load) is not in the image`,
          fix: `install kexec-tools in the image (or set kexec_exe in nvwa-server.yaml), or build the kernel with CONFIG_KEXEC_FILE=y`,
        },
      ],
    };
  }
  return withoutFileLoad(`${tools.path} -c (kexec_load)`);
}

/** Pure: every finding for one kernel's config, fails first, and the loader it leaves nvwa. */
export function judgeKernelConfig(c: KernelConfig, tools: KexecTools): KernelJudgment {
  const kexec = judgeKexec(c, tools);
  const findings = [...kexec.findings];
  for (const r of REQUIREMENTS) {
    const missing = r.options.filter((o) => !isEnabled(c, o));
    if (missing.length === 0) continue;
    // arm64 has no soft-dirty tracking at all (HAVE_ARCH_SOFT_DIRTY): no kernel build adds it.
    const noArch = missing.includes("MEM_SOFT_DIRTY") && configArch(c) === "arm64";
    findings.push({
      options: missing,
      what: `${missing.map((o) => `CONFIG_${o}`).join(", ")} ${missing.length === 1 ? "is" : "are"} not set`,
      status: r.status,
      cost: noArch ? `${r.cost} (arm64 has no soft-dirty tracking)` : r.cost,
      fix: noArch ? "none on arm64" : `build the kernel with ${withConfig(missing)}`,
    });
  }
  findings.sort((a, b) => (a.status === b.status ? 0 : a.status === "fail" ? -1 : 1));
  const status: CheckStatus = findings.some((f) => f.status === "fail") ? "fail" : findings.length > 0 ? "warn" : "ok";
  return { status, loader: kexec.loader, findings };
}
