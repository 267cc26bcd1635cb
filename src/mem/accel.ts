/**
 * openEuler's three accelerations, checked against the running kernel. Pure: the command line,
 * /proc/iomem and a few facts in; Check results out.
 *
 * - quick kexec: `quickkexec=<size>` reserves a "Quick kexec" region (kernel/kexec_core.c) that
 *   kexec_load(KEXEC_QUICK) copies the new kernel into at load time, so the jump skips the copy.
 * - pin memory: `pinmemory=<size>@<addr>` reserves a "Pin memory" region holding the page map
 *   of pinned processes across the jump; `max_pin_pid_num=` (at most 128, mm/pin_mem.c) bounds
 *   how many processes can be pinned and `redirect_space_size=` the redirect table.
 * - cpu park (arm64): `cpuparkmem=<addr>` takes PAGE_ALIGN(1 KiB x NR_CPUS) out of System RAM
 *   (memblock_remove, so it leaves /proc/iomem's RAM) for secondary CPUs to spin in.
 */
import type { Arch } from "../../ffi/arch.ts";
import { findParam } from "../kexec/cmdline.ts";
import { fail, ok, warn, type Check } from "../update/preflight-types.ts";
import { findRegions, flatten, formatRange, hex, overlaps, reservations, size, systemRam, type Iomem, type IomemNode, type Range } from "./iomem.ts";
import { alignUp, humanBytes, memparse, parseSizeAtAddr, suggestSize } from "./size.ts";

export const QUICK_KEXEC_REGION = "Quick kexec";
export const PIN_MEMORY_REGION = "Pin memory";
/** mm/pin_mem.c MAX_PIN_PID_NUM: larger values are rejected (set to 0) at boot. */
export const MAX_PIN_PID_NUM = 128;
/** What a quick kexec load takes in its region beyond the kernel and initramfs files. */
export const QUICK_KEXEC_OVERHEAD = 8n << 20n;
const PARK_SECTION_SIZE = 1024n;
const PAGE = 4096n;
const FOUR_GIB = 1n << 32n;

export interface AccelFacts {
  arch: Arch;
  cmdline: string;
  /** null when /proc/iomem could not be read. */
  iomem: Iomem | null;
  devPinmem: boolean;
  quickEnabled: boolean;
  pinEnabled: boolean;
  /** Bytes kexec will place (kernel as loaded + initramfs), when a version is known. */
  kernelBytes: number | null;
  initrdBytes: number | null;
  /** Processes that would be pinned (every process of every target tree), when known. */
  pinProcesses: number | null;
  /** Resident memory of the targets, to size the pin memory page map. */
  targetRssBytes: number | null;
  /** CONFIG_NR_CPUS of the running kernel (sizes the cpu park area), when known. */
  nrCpus: number | null;
}

export function addToCmdline(params: string): string {
  return `add \`${params}\` to the kernel command line (openEuler: grubby --update-kernel=ALL --args="${params}"; elsewhere GRUB_CMDLINE_LINUX in /etc/default/grub and regenerate grub.cfg) and reboot once`;
}

function iomemProblem(f: AccelFacts, id: string, title: string): Check | null {
  if (f.iomem === null) return fail(id, title, "/proc/iomem could not be read", "run nvwa check as root");
  if (f.iomem.redacted) return fail(id, title, "/proc/iomem shows only zero addresses (read without CAP_SYS_ADMIN)", "run nvwa check as root");
  return null;
}

function describeNode(n: IomemNode): string {
  return `"${n.name}" ${formatRange(n)}`;
}

/** Reservations in iomem that overlap `r`, other than `self` and what is nested inside it. */
export function conflictsWith(io: Iomem, r: Range, self: IomemNode | null = null): IomemNode[] {
  const own = new Set<IomemNode>(self === null ? [] : flatten([self]));
  return reservations(io).filter((n) => !own.has(n) && overlaps(n, r));
}

/** Highest 2 MiB-aligned free stretch of System RAM of `bytes`, avoiding every child reservation. */
export function suggestFreeAddress(io: Iomem, bytes: bigint, avoid: Range[] = []): bigint | null {
  const align = 2n << 20n;
  let best: bigint | null = null;
  for (const ram of systemRam(io)) {
    const taken: Range[] = [...ram.children, ...avoid].filter((c) => overlaps(c, ram)).sort((a, b) => (a.start < b.start ? -1 : 1));
    let cursor = ram.start;
    const gaps: Range[] = [];
    for (const t of taken) {
      if (t.start > cursor) gaps.push({ start: cursor, end: t.start - 1n });
      if (t.end + 1n > cursor) cursor = t.end + 1n;
    }
    if (cursor <= ram.end) gaps.push({ start: cursor, end: ram.end });
    for (const g of gaps) {
      const top = ((g.end + 1n - bytes) / align) * align;
      if (top >= alignUp(g.start, align) && top + bytes - 1n <= g.end && (best === null || top > best)) best = top;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------

export function checkQuickKexec(f: AccelFacts): Check | null {
  const id = "accel.quick-kexec";
  const title = "quick kexec";
  const param = findParam(f.cmdline, "quickkexec");
  if (!f.quickEnabled) {
    return param === null ? null : ok(id, title, `quickkexec=${param} is on the command line but enable_quick_kexec is off; the normal loader is used`);
  }
  const bad = iomemProblem(f, id, title);
  if (bad) return bad;
  const io = f.iomem as Iomem;
  // Besides the files: the Image's BSS (image_size exceeds the file), its 2 MiB-aligned start, the
  // device tree's own 2 MiB block, the entry stub and the control page (src/kexec/arm64/plan.ts).
  const need = f.kernelBytes !== null ? BigInt(f.kernelBytes + (f.initrdBytes ?? 0)) + QUICK_KEXEC_OVERHEAD : null;
  const suggested = suggestSize(need === null ? 256n << 20n : (need * 5n) / 4n);
  if (param === null) {
    return fail(id, title, "enable_quick_kexec is on but the running kernel was not booted with quickkexec=, so there is no Quick kexec region", addToCmdline(`quickkexec=${suggested}`));
  }
  const regions = findRegions(io, QUICK_KEXEC_REGION);
  const region = regions[0];
  if (region === undefined) {
    return fail(
      id,
      title,
      `quickkexec=${param} is on the command line but /proc/iomem has no "${QUICK_KEXEC_REGION}" region: the kernel lacks CONFIG_QUICK_KEXEC or could not reserve it (dmesg | grep quick_kexec)`,
      `boot an openEuler kernel with CONFIG_QUICK_KEXEC, or set enable_quick_kexec: false`,
    );
  }
  const clash = conflictsWith(io, region, region);
  if (clash.length > 0) {
    return fail(id, title, `the ${describeNode(region)} region overlaps ${clash.map(describeNode).join(", ")}`, "move the other reservation or change quickkexec=, then reboot once");
  }
  const have = size(region);
  if (need !== null && have <= need) {
    return fail(
      id,
      title,
      `the Quick kexec region is ${humanBytes(have)} but the kernel and initramfs need ${humanBytes(need)} (with the room alignment, the device tree and the entry stub take)`,
      `raise the reservation: ${addToCmdline(`quickkexec=${suggestSize((need * 5n) / 4n)}`)} (replacing quickkexec=${param})`,
    );
  }
  return ok(
    id,
    title,
    `${describeNode(region)} (${humanBytes(have)})${need === null ? "" : ` holds kernel+initramfs (${humanBytes(need)})`}; the kernel is loaded into it with kexec_load and KEXEC_QUICK, which kexec_file_load does not offer (natively on arm64, kexec_exe -q on x86_64)`,
  );
}

// ---------------------------------------------------------------------------------------------

export function cpuParkRange(f: Pick<AccelFacts, "cmdline" | "nrCpus">): Range | null {
  const v = findParam(f.cmdline, "cpuparkmem");
  if (v === null) return null;
  const addr = memparse(v);
  if (addr === null) return null;
  const start = alignUp(addr, PAGE);
  const len = alignUp(PARK_SECTION_SIZE * BigInt(f.nrCpus ?? 1024), PAGE);
  return { start, end: start + len - 1n };
}

export function checkPinMemory(f: AccelFacts): Check[] {
  if (!f.pinEnabled) return [];
  const id = "accel.pin-memory";
  const title = "pin memory";
  const bad = iomemProblem(f, id, title);
  if (bad) return [bad];
  const io = f.iomem as Iomem;
  const out: Check[] = [];

  const pinParam = findParam(f.cmdline, "pinmemory");
  const maxParam = findParam(f.cmdline, "max_pin_pid_num");
  const redirParam = findParam(f.cmdline, "redirect_space_size");
  const spec = pinParam === null ? null : parseSizeAtAddr(pinParam);

  const missing: string[] = [];
  const wantPids = Math.min(MAX_PIN_PID_NUM, Math.max(16, (f.pinProcesses ?? 0) * 2));
  if (maxParam === null) missing.push(`max_pin_pid_num=${wantPids}`);
  if (redirParam === null) missing.push("redirect_space_size=2M");
  if (spec === null) {
    // The page map holds 8 bytes per pinned 4 KiB page plus the redirect space; leave room.
    const mapBytes = BigInt(Math.ceil((f.targetRssBytes ?? 0) / 512)) * 2n + (16n << 20n);
    const sz = suggestSize(mapBytes < 64n << 20n ? 64n << 20n : mapBytes, 16n);
    const szBytes = memparse(sz) ?? 64n << 20n;
    const park = cpuParkRange(f);
    const addr = suggestFreeAddress(io, szBytes, park === null ? [] : [park]);
    missing.push(`pinmemory=${sz}@${addr === null ? "<free RAM address>" : hex(addr)}`);
  }
  if (missing.length > 0) {
    const detail = pinParam !== null && spec === null ? `pinmemory=${pinParam} is not size@address` : "enable_pin_memory is on but the running kernel was not booted with the pin memory parameters";
    out.push(fail(`${id}.cmdline`, `${title}: cmdline`, `${detail} (missing: ${missing.map((m) => m.split("=")[0]).join(", ")})`, addToCmdline(missing.join(" "))));
    if (!f.devPinmem) out.push(fail(`${id}.device`, `${title}: device`, "/dev/pinmem does not exist", "boot an openEuler kernel with CONFIG_PIN_MEMORY and CONFIG_PIN_MEMORY_DEV"));
    return out;
  }
  if (spec === null) return out;
  const maxPids = Number(maxParam);
  if (!Number.isInteger(maxPids) || maxPids <= 0 || maxPids > MAX_PIN_PID_NUM) {
    out.push(
      fail(`${id}.cmdline`, `${title}: cmdline`, `max_pin_pid_num=${maxParam} is not a number from 1 to ${MAX_PIN_PID_NUM}; the kernel disables pinning`, addToCmdline(`max_pin_pid_num=${wantPids}`)),
    );
  } else {
    out.push(ok(`${id}.cmdline`, `${title}: cmdline`, `pinmemory=${pinParam} max_pin_pid_num=${maxPids} redirect_space_size=${redirParam}`));
  }

  const want: Range = { start: spec.addr, end: spec.addr + spec.size - 1n };
  const region = findRegions(io, PIN_MEMORY_REGION)[0];
  if (region === undefined) {
    const clash = conflictsWith(io, want);
    out.push(
      fail(
        `${id}.region`,
        `${title}: region`,
        `pinmemory=${pinParam} asks for ${formatRange(want)} but /proc/iomem has no "${PIN_MEMORY_REGION}" region${clash.length > 0 ? `: it overlaps ${clash.map(describeNode).join(", ")}` : ": the kernel lacks CONFIG_PIN_MEMORY or the reservation failed (dmesg | grep -i pin)"}`,
        clash.length > 0
          ? (() => {
              const addr = suggestFreeAddress(io, size(want));
              return addr === null ? "choose a free RAM address for pinmemory= and reboot once" : `move it: ${addToCmdline(`pinmemory=${humanBytesParam(size(want))}@${hex(addr)}`)}`;
            })()
          : "boot an openEuler kernel with CONFIG_PIN_MEMORY, or set enable_pin_memory: false",
      ),
    );
  } else {
    const clash = conflictsWith(io, region, region);
    const park = cpuParkRange(f);
    if (park !== null && overlaps(park, region)) clash.push({ name: "cpu park area (cpuparkmem=)", start: park.start, end: park.end, depth: 0, children: [] });
    if (clash.length > 0) {
      out.push(fail(`${id}.region`, `${title}: region`, `${describeNode(region)} overlaps ${clash.map(describeNode).join(", ")}`, "choose a pinmemory= address that no other reservation uses, then reboot once"));
    } else if (region.start !== want.start || size(region) !== size(want)) {
      out.push(warn(`${id}.region`, `${title}: region`, `${describeNode(region)} differs from pinmemory=${pinParam} (${formatRange(want)})`, "check dmesg for how the kernel adjusted the reservation"));
    } else {
      out.push(ok(`${id}.region`, `${title}: region`, `${describeNode(region)} (${humanBytes(size(region))}), no overlap with other reservations`));
    }
  }

  out.push(
    f.devPinmem
      ? ok(`${id}.device`, `${title}: device`, "/dev/pinmem is present; dumps run one at a time with --pin-memory, FINISH_PIN_MEM_DUMP after the last")
      : fail(`${id}.device`, `${title}: device`, "/dev/pinmem does not exist", "boot an openEuler kernel with CONFIG_PIN_MEMORY_DEV (or load its module)"),
  );

  if (f.pinProcesses !== null && Number.isInteger(maxPids) && maxPids > 0) {
    out.push(
      f.pinProcesses <= maxPids
        ? ok(`${id}.targets`, `${title}: targets`, `${f.pinProcesses} process(es) to pin, max_pin_pid_num=${maxPids}`)
        : fail(
            `${id}.targets`,
            `${title}: targets`,
            `${f.pinProcesses} processes would be pinned but max_pin_pid_num=${maxPids}`,
            addToCmdline(`max_pin_pid_num=${Math.min(MAX_PIN_PID_NUM, f.pinProcesses)}`) + (f.pinProcesses > MAX_PIN_PID_NUM ? ` — more than ${MAX_PIN_PID_NUM} cannot be pinned; reduce the targets` : ""),
          ),
    );
  }
  return out;
}

function humanBytesParam(n: bigint): string {
  return suggestSize(n, 1n);
}

// ---------------------------------------------------------------------------------------------

export function checkCpuPark(f: AccelFacts): Check | null {
  const v = findParam(f.cmdline, "cpuparkmem");
  if (v === null) return null;
  const id = "accel.cpu-park";
  const title = "cpu park";
  if (f.arch !== "arm64") return warn(id, title, `cpuparkmem=${v} is on the command line but cpu park exists only on arm64`, "remove cpuparkmem= from the command line");
  const range = cpuParkRange(f);
  if (range === null) return fail(id, title, `cpuparkmem=${v} is not an address`, addToCmdline("cpuparkmem=0x200000000"));
  const bad = iomemProblem(f, id, title);
  if (bad) return bad;
  const io = f.iomem as Iomem;
  const sizeNote = f.nrCpus === null ? " (assuming NR_CPUS=1024: 1 MiB)" : ` (${f.nrCpus} CPUs: ${humanBytes(size(range))})`;
  const stillRam = systemRam(io).find((r) => overlaps(r, range));
  const clash = reservations(io).filter((n) => overlaps(n, range));
  if (clash.length > 0) {
    return fail(id, title, `the cpu park area ${formatRange(range)}${sizeNote} overlaps ${clash.map(describeNode).join(", ")}`, "choose a cpuparkmem= address in free RAM, away from crashkernel, quickkexec and pinmemory, then reboot once");
  }
  if (stillRam !== undefined) {
    const addr = suggestFreeAddress(io, size(range));
    return fail(
      id,
      title,
      `cpuparkmem=${v} is on the command line but ${formatRange(range)} is still System RAM: the kernel lacks cpu park (CONFIG_ARM64_CPU_PARK) or refused the address (dmesg | grep cpu-park)`,
      addr === null ? "boot a kernel with CONFIG_ARM64_CPU_PARK" : `boot a kernel with CONFIG_ARM64_CPU_PARK; a free address here is ${hex(addr)}`,
    );
  }
  if (range.start < FOUR_GIB) {
    return warn(id, title, `the cpu park area ${formatRange(range)}${sizeNote} is below 4 GiB`, "the openEuler guide advises placing cpuparkmem= above 4 GiB (e.g. 0x200000000), where it cannot collide with firmware and DMA reservations");
  }
  return ok(id, title, `cpu park area ${formatRange(range)}${sizeNote} is reserved and overlaps nothing`);
}

export function checkAccelerations(f: AccelFacts): Check[] {
  return [checkQuickKexec(f), ...checkPinMemory(f), checkCpuPark(f)].filter((c): c is Check => c !== null);
}
