/**
 * Quick kexec, pin memory and cpu park against real /proc/iomem dumps and their command lines
 * (plus the one derived openEuler layout, see test/fixtures/iomem/README.md).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { checkAccelerations, checkCpuPark, checkPinMemory, checkQuickKexec, type AccelFacts } from "../../src/mem/accel.ts";
import { overlaps, parseIomem, reservations, type Iomem } from "../../src/mem/iomem.ts";
import { parseSizeAtAddr } from "../../src/mem/size.ts";
import { findParam } from "../../src/kexec/cmdline.ts";

const FIX = join(import.meta.dir, "../fixtures/iomem");
function machine(name: string): { iomem: Iomem; cmdline: string } {
  return {
    iomem: parseIomem(readFileSync(join(FIX, `${name}.txt`), "utf8")),
    cmdline: readFileSync(join(FIX, `${name}.cmdline`), "utf8").trim(),
  };
}

const MiB = 1024 * 1024;
function facts(name: string, over: Partial<AccelFacts> = {}): AccelFacts {
  const m = machine(name);
  return {
    arch: "arm64",
    cmdline: m.cmdline,
    iomem: m.iomem,
    devPinmem: false,
    quickEnabled: false,
    pinEnabled: false,
    kernelBytes: 33 * MiB,
    initrdBytes: 30 * MiB,
    pinProcesses: 3,
    targetRssBytes: 512 * MiB,
    nrCpus: 1024,
    ...over,
  };
}
const OE = "arm64-openeuler-derived-accelerations";
const DEB6G = "arm64-qemu-virt-6g-crashkernel-cpuparkmem";

describe("quick kexec", () => {
  test("off and not on the command line: no row at all", () => {
    expect(checkQuickKexec(facts(DEB6G))).toBeNull();
  });

  test("enabled on a kernel booted without quickkexec=: fail with the exact parameter to add", () => {
    const c = checkQuickKexec(facts(DEB6G, { quickEnabled: true }));
    expect(c?.status).toBe("fail");
    // kernel 33 MiB + initrd 30 MiB, with a quarter of margin, rounded up to 64 MiB steps
    expect(c?.fix).toContain("`quickkexec=128M`");
  });

  test("enabled, quickkexec= given, but the kernel has no Quick kexec region (Debian's): fail naming CONFIG_QUICK_KEXEC", () => {
    const c = checkQuickKexec(facts(DEB6G, { quickEnabled: true, cmdline: `${machine(DEB6G).cmdline} quickkexec=256M` }));
    expect(c?.status).toBe("fail");
    expect(c?.detail).toContain("CONFIG_QUICK_KEXEC");
  });

  test("region present and larger than kernel+initrd: ok, and the row explains the kexec_exe -q shell-out", () => {
    const c = checkQuickKexec(facts(OE, { quickEnabled: true }));
    expect(c?.status).toBe("ok");
    expect(c?.detail).toContain("0xd0000000-0xdfffffff");
    expect(c?.detail).toContain("kexec_exe -q");
    expect(c?.detail).toContain("KEXEC_QUICK");
  });

  test("region smaller than kernel+initrd: fail with the size to ask for", () => {
    const c = checkQuickKexec(facts(OE, { quickEnabled: true, kernelBytes: 200 * MiB, initrdBytes: 100 * MiB }));
    expect(c?.status).toBe("fail");
    expect(c?.detail).toContain("256 MiB");
    // 300 MiB of files + 8 MiB for alignment, device tree and stub, and a quarter more: 448M in 64M steps
    expect(c?.fix).toContain("quickkexec=448M");
  });

  test("a region that holds the files but not what the load adds (alignment, device tree, stub) fails too", () => {
    const c = checkQuickKexec(facts(OE, { quickEnabled: true, kernelBytes: 200 * MiB, initrdBytes: 52 * MiB }));
    expect(c?.status).toBe("fail");
    expect(checkQuickKexec(facts(OE, { quickEnabled: true, kernelBytes: 200 * MiB, initrdBytes: 40 * MiB }))?.status).toBe("ok");
  });
});

describe("pin memory", () => {
  test("enabled on a Debian kernel: the cmdline to add names a free address, and the device is missing", () => {
    const f = facts(DEB6G, { pinEnabled: true });
    const rows = checkPinMemory(f);
    const cmd = rows.find((r) => r.id === "accel.pin-memory.cmdline");
    expect(cmd?.status).toBe("fail");
    const params = /`([^`]+)`/.exec(cmd?.fix ?? "")?.[1] ?? "";
    expect(params).toMatch(/^max_pin_pid_num=16 redirect_space_size=2M pinmemory=64M@0x[0-9a-f]+$/);
    // The suggested range must be free RAM on this machine and avoid every reservation.
    const spec = parseSizeAtAddr(findParam(params, "pinmemory") ?? "");
    expect(spec).not.toBeNull();
    if (spec === null) return;
    const r = { start: spec.addr, end: spec.addr + spec.size - 1n };
    expect(reservations(f.iomem as Iomem).filter((n) => overlaps(n, r))).toEqual([]);
    expect(rows.find((r2) => r2.id === "accel.pin-memory.device")?.status).toBe("fail");
  });

  test("pinmemory= pointing into the Crash kernel reservation: no region, fail naming the overlap and a free address", () => {
    const m = machine(DEB6G);
    const rows = checkPinMemory(
      facts(DEB6G, { pinEnabled: true, devPinmem: true, cmdline: `${m.cmdline} max_pin_pid_num=16 redirect_space_size=2M pinmemory=64M@0xf0000000` }),
    );
    const region = rows.find((r) => r.id === "accel.pin-memory.region");
    expect(region?.status).toBe("fail");
    expect(region?.detail).toContain('"Crash kernel" 0xec000000-0xfbffffff');
    expect(region?.fix).toMatch(/pinmemory=64M@0x[0-9a-f]+/);
  });

  test("the openEuler layout with everything in place: all ok", () => {
    const rows = checkPinMemory(facts(OE, { pinEnabled: true, devPinmem: true }));
    expect(rows.map((r) => [r.id, r.status])).toEqual([
      ["accel.pin-memory.cmdline", "ok"],
      ["accel.pin-memory.region", "ok"],
      ["accel.pin-memory.device", "ok"],
      ["accel.pin-memory.targets", "ok"],
    ]);
  });

  test("more processes to pin than max_pin_pid_num: fail; above the kernel's 128 says so", () => {
    const rows = checkPinMemory(facts(OE, { pinEnabled: true, devPinmem: true, pinProcesses: 40 }));
    const t = rows.find((r) => r.id === "accel.pin-memory.targets");
    expect(t?.status).toBe("fail");
    expect(t?.fix).toContain("max_pin_pid_num=40");
    const many = checkPinMemory(facts(OE, { pinEnabled: true, devPinmem: true, pinProcesses: 300 })).find((r) => r.id === "accel.pin-memory.targets");
    expect(many?.fix).toContain("more than 128 cannot be pinned");
  });

  test("max_pin_pid_num above 128 is refused (the kernel would set it to 0)", () => {
    const m = machine(OE);
    const rows = checkPinMemory(facts(OE, { pinEnabled: true, devPinmem: true, cmdline: m.cmdline.replace("max_pin_pid_num=16", "max_pin_pid_num=500") }));
    expect(rows[0]?.status).toBe("fail");
    expect(rows[0]?.detail).toContain("from 1 to 128");
  });

  test("the Pin memory region overlapping the cpu park area is reported", () => {
    const m = machine(OE);
    const rows = checkPinMemory(facts(OE, { pinEnabled: true, devPinmem: true, cmdline: m.cmdline.replace("cpuparkmem=0x1b0000000", "cpuparkmem=0x101000000") }));
    const region = rows.find((r) => r.id === "accel.pin-memory.region");
    expect(region?.status).toBe("fail");
    expect(region?.detail).toContain("cpu park area");
  });

  test("off: nothing", () => {
    expect(checkPinMemory(facts(OE))).toEqual([]);
  });
});

describe("cpu park", () => {
  test("Debian's kernel ignores cpuparkmem=: the area is still System RAM, fail", () => {
    const c = checkCpuPark(facts(DEB6G));
    expect(c?.status).toBe("fail");
    expect(c?.detail).toContain("still System RAM");
    expect(c?.detail).toContain("CONFIG_ARM64_CPU_PARK");
  });

  test("Debian's kernel, cpuparkmem= inside the Crash kernel reservation: fail naming it", () => {
    const c = checkCpuPark(facts(DEB6G, { cmdline: "crashkernel=256M cpuparkmem=0xf0000000" }));
    expect(c?.status).toBe("fail");
    expect(c?.detail).toContain('"Crash kernel"');
  });

  test("reserved above 4 GiB and overlapping nothing: ok; the size follows NR_CPUS", () => {
    const c = checkCpuPark(facts(OE));
    expect(c?.status).toBe("ok");
    expect(c?.detail).toContain("0x1b0000000-0x1b00fffff");
    const small = checkCpuPark(facts(OE, { nrCpus: 4 }));
    expect(small?.detail).toContain("0x1b0000000-0x1b0000fff");
  });

  test("below 4 GiB: warn, as the openEuler guide advises", () => {
    // The 2 GiB machine with cpuparkmem=0x80000000, with the hole the cpu park kernel would cut.
    const m = machine("arm64-qemu-virt-2g-crashkernel");
    const text = readFileSync(join(FIX, "arm64-qemu-virt-2g-crashkernel.txt"), "utf8").replace(
      "40000000-bfffffff : System RAM",
      "40000000-7fffffff : System RAM",
    );
    const lines = text.split("\n");
    const idx = lines.findIndex((l) => l.startsWith("  a9800000"));
    lines.splice(idx, 0, "80100000-bfffffff : System RAM");
    const c = checkCpuPark({ ...facts("arm64-qemu-virt-2g-crashkernel"), iomem: parseIomem(lines.join("\n")), cmdline: m.cmdline });
    expect(c?.status).toBe("warn");
    expect(c?.fix).toContain("above 4 GiB");
  });

  test("on x86_64 it only warns that the parameter does nothing", () => {
    expect(checkCpuPark(facts(DEB6G, { arch: "x64" }))?.status).toBe("warn");
  });

  test("absent from the command line: no row", () => {
    expect(checkCpuPark(facts("arm64-qemu-virt-3g-crashkernel-fixed"))).toBeNull();
  });
});

describe("iomem problems", () => {
  test("unreadable or redacted /proc/iomem fails every enabled acceleration with 'run as root'", () => {
    const redacted = { roots: [], redacted: true };
    const rows = checkAccelerations(facts(OE, { quickEnabled: true, pinEnabled: true, iomem: redacted }));
    expect(rows.map((r) => r.status)).toEqual(["fail", "fail", "fail"]);
    for (const r of rows) expect(r.fix).toContain("as root");
  });
});
