/**
 * Network save/restore against the real kernel, each scenario in its own network namespace
 * (`unshare -n`, run by test/host/net-worker.ts). The network nvwa restores is compared with
 * what `ip -j` showed before it was saved. Needs root.
 *
 * This host's kernel has no dummy or 8021q driver, so bridges stand in for dummies here;
 * dummy creation is covered by the guest scenario.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const WORKER = join(import.meta.dir, "net-worker.ts");

interface ItemReport {
  kind: string;
  item: string;
  status: "applied" | "present" | "failed";
  reason?: string;
  notes: string[];
}
interface Report {
  items: ItemReport[];
  applied: number;
  present: number;
  failed: number;
}
interface View {
  links: IpLink[];
  addrs: IpLink[];
  routes4: IpRoute[];
  routes6: IpRoute[];
  rules4: Record<string, unknown>[];
  rules6: Record<string, unknown>[];
}
interface IpLink {
  ifname: string;
  flags: string[];
  mtu: number;
  master?: string;
  address?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number; address?: string; scope: string }[];
}
interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  metric?: number;
  protocol?: string;
  nexthops?: { gateway?: string; dev?: string; weight?: number }[];
}

function runScenario<T>(scenario: string): T {
  const dir = mkdtempSync(join(tmpdir(), `nvwa-net-${scenario}-`));
  try {
    const r = Bun.spawnSync(["unshare", "-n", process.execPath, WORKER, scenario, dir], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`net-worker ${scenario} failed (${r.exitCode}):\n${r.stderr.toString()}`);
    return JSON.parse(readFileSync(join(dir, "result.json"), "utf8")) as T;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- `ip -j` views reduced to what a restore must bring back

function links(v: View): Map<string, { mtu: number; up: boolean; master: string | null; mac: string | null; kind: string | null }> {
  return new Map(
    v.links.map((l) => [
      l.ifname,
      { mtu: l.mtu, up: l.flags.includes("UP"), master: l.master ?? null, mac: l.address ?? null, kind: l.linkinfo?.info_kind ?? null },
    ]),
  );
}

/** Configured addresses: not loopback's own, not the kernel's IPv6 link-local ones. */
function addrs(v: View): string[] {
  const out: string[] = [];
  for (const l of v.addrs) {
    for (const a of l.addr_info ?? []) {
      if (a.scope === "host" && l.ifname === "lo") continue;
      if (a.family === "inet6" && a.scope === "link") continue;
      const peer = a.address !== undefined && a.address !== a.local ? ` peer ${a.address}` : "";
      out.push(`${l.ifname} ${a.family} ${a.local}/${a.prefixlen}${peer}`);
    }
  }
  return out.sort();
}

/** Configured routes: not the kernel's (proto kernel), not table local. */
function routes(v: View): string[] {
  return [...v.routes4.map((r) => ["4", r] as const), ...v.routes6.map((r) => ["6", r] as const)]
    .filter(([, r]) => r.protocol !== "kernel" && r.table !== "local")
    .map(([f, r]) =>
      JSON.stringify({
        f,
        type: r.type ?? "unicast",
        dst: r.dst,
        gateway: r.gateway ?? null,
        dev: r.dev ?? null,
        table: r.table ?? "main",
        metric: r.metric ?? 0,
        nexthops: (r.nexthops ?? []).map((h) => `${h.gateway ?? ""} ${h.dev ?? ""} ${h.weight ?? 1}`).sort(),
      }),
    )
    .sort();
}

function rules(v: View): string[] {
  const canon = (o: Record<string, unknown>) => JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))));
  return [...v.rules4.map((r) => `4 ${canon(r)}`), ...v.rules6.map((r) => `6 ${canon(r)}`)].sort();
}

function byItem(report: Report, pattern: RegExp): ItemReport {
  const found = report.items.filter((i) => pattern.test(i.item));
  if (found.length !== 1) throw new Error(`expected one report item matching ${pattern}, found ${found.length}: ${report.items.map((i) => i.item).join(" | ")}`);
  return found[0] as ItemReport;
}

describe("network save and restore in a namespace", () => {
  test("roundtrip: save, flush, restore brings back links, v4/v6 addresses, routes of every table and rules; a second restore finds everything present", () => {
    const r = runScenario<{
      snapshot: { links: unknown[]; addresses: { local: string }[]; routes: { table: number; protocol: number }[]; rules: { priority: number }[] };
      rereadEqual: boolean;
      before: View;
      flushed: View;
      after: View;
      afterSecond: View;
      first: { report: Report; consumedPath: string | null };
      second: { report: Report };
      fileGoneAfterFirst: boolean;
      consumedExists: boolean;
    }>("roundtrip");

    expect(r.rereadEqual).toBe(true);
    // Kernel-made items are not saved.
    const saved = r.snapshot.addresses.map((a) => a.local);
    expect(saved).not.toContain("127.0.0.1");
    expect(saved).not.toContain("::1");
    expect(saved.some((a) => a.startsWith("fe80:"))).toBe(false);
    expect(r.snapshot.routes.some((x) => x.table === 255 || x.protocol === 2)).toBe(false);
    expect(r.snapshot.rules.map((x) => x.priority).sort()).toEqual([1000, 1000, 1001, 1002, 1003]);
    expect(saved.sort()).toEqual(["10.1.0.1", "10.1.0.2", "10.2.0.1", "10.3.0.1", "2001:db8:1::1", "2001:db8:2::1"]);

    // The flush really removed the configuration (otherwise the comparison below proves nothing).
    expect(links(r.flushed).has("br0")).toBe(false);
    expect(addrs(r.flushed)).toEqual([]);
    expect(routes(r.flushed)).toEqual([]);
    expect(rules(r.flushed)).not.toEqual(rules(r.before));

    // Restored: the same as before, per `ip -j`.
    expect(addrs(r.after)).toEqual(addrs(r.before));
    expect(routes(r.after)).toEqual(routes(r.before));
    expect(rules(r.after)).toEqual(rules(r.before));
    const before = links(r.before);
    const after = links(r.after);
    for (const [name, l] of before) {
      const a = after.get(name);
      expect({ name, ...a, mac: name === "br0" || name === "v0" ? a?.mac : null }).toEqual({
        name,
        ...l,
        mac: name === "br0" || name === "v0" ? l.mac : null,
      });
    }
    expect(after.get("br0")?.mac).toBe("02:aa:00:00:00:01");

    const first = r.first.report;
    expect(first.failed).toBe(0);
    expect(first.applied).toBe(first.items.length - 1); // all but lo
    expect(byItem(first, /^link lo$/).status).toBe("present");
    expect(byItem(first, /^link br0/).notes.join()).toContain("created");
    expect(r.fileGoneAfterFirst).toBe(true);
    expect(r.consumedExists).toBe(true);
    expect(r.first.consumedPath).toMatch(/net\.json\.consumed$/);

    const second = r.second.report;
    expect(second.items.length).toBe(first.items.length);
    expect(second.applied).toBe(0);
    expect(second.failed).toBe(0);
    expect(second.present).toBe(second.items.length);
    expect(addrs(r.afterSecond)).toEqual(addrs(r.after));
    expect(routes(r.afterSecond)).toEqual(routes(r.after));
    expect(rules(r.afterSecond)).toEqual(rules(r.after));
  });

  test("what the new boot configured is kept; a saved route whose slot is taken is reported, not forced", () => {
    const r = runScenario<{ newBootView: View; after: View; outcome: { report: Report } }>("new-boot-config");
    const report = r.outcome.report;

    // Nothing the new boot set up was removed.
    for (const a of addrs(r.newBootView)) expect(addrs(r.after)).toContain(a);
    for (const x of routes(r.newBootView)) expect(routes(r.after)).toContain(x);
    for (const x of rules(r.newBootView)) expect(rules(r.after)).toContain(x);
    expect(addrs(r.after)).toContain("v0 inet 10.2.0.99/24");

    const clash = byItem(report, /^route 10\.9\.0\.0\/16 /);
    expect(clash.status).toBe("failed");
    expect(clash.reason).toContain("10.9.0.0/16 via 10.2.0.253 dev v0");
    const kept = r.after.routes4.filter((x) => x.dst === "10.9.0.0/16");
    expect(kept.map((x) => x.gateway)).toEqual(["10.2.0.253"]);

    expect(byItem(report, /^address 10\.1\.0\.1\/24 on br0$/).status).toBe("present");
    expect(byItem(report, /^address 10\.1\.0\.2\/24 on br0$/).status).toBe("applied");
    expect(byItem(report, /^link br0/).notes).toContain("mtu 1300 → 1400");
    expect(links(r.after).get("br0")?.mtu).toBe(1400);
    expect(report.failed).toBe(1);
    expect(rules(r.after).some((x) => x.includes('"priority":1002'))).toBe(true);
  });

  test("links are matched by name: a changed MAC is reported and kept, missing veths and their items fail with the reason, a missing bridge is recreated", () => {
    const r = runScenario<{ outcome: { report: Report }; after: View; dummyKernel: boolean }>("links");
    const report = r.outcome.report;
    const after = links(r.after);

    const v0 = byItem(report, /^link v0 /);
    expect(v0.status).toBe("applied"); // brought up
    expect(v0.notes.join()).toContain("MAC differs: saved 02:bb:00:00:00:01, now 02:cc:00:00:00:09");
    expect(after.get("v0")?.mac).toBe("02:cc:00:00:00:09");
    expect(after.get("v0")?.up).toBe(true);
    expect(addrs(r.after)).toContain("v0 inet 10.2.0.1/24");

    const w0 = byItem(report, /^link w0 /);
    expect(w0.status).toBe("failed");
    expect(w0.reason).toContain("does not recreate veth");
    expect(after.has("w0")).toBe(false);
    expect(byItem(report, /^address 10\.4\.0\.1\/24 on w0$/).reason).toContain("link w0 is missing");
    expect(byItem(report, /^route 10\.44\.0\.0\/16 /).status).toBe("failed");

    expect(byItem(report, /^link br9 /).status).toBe("applied");
    expect(after.get("br9")).toMatchObject({ kind: "bridge", up: true, mac: "02:aa:00:00:00:01" });

    // A dummy link in the snapshot: created where the kernel has the driver, otherwise the
    // kernel's refusal is the reason (this host's kernel is built without CONFIG_DUMMY).
    const d0 = byItem(report, /^link d0 /);
    const d0addr = byItem(report, /^address 10\.6\.0\.1\/24 on d0$/);
    if (r.dummyKernel) {
      expect(d0.status).toBe("applied");
      expect(after.get("d0")?.kind).toBe("dummy");
      expect(d0addr.status).toBe("applied");
    } else {
      expect(d0.status).toBe("failed");
      expect(d0.reason).toMatch(/^EOPNOTSUPP/);
      expect(d0addr.status).toBe("failed");
      expect(d0addr.reason).toBe("link d0 does not exist");
    }
  });

  test("a corrupt saved file is refused with net.snapshot-corrupt before anything is applied", () => {
    const r = runScenario<{ results: Record<string, { code: string; message: string } | boolean>; flushed: View; after: View }>("corrupt");
    for (const name of ["truncated", "badPrefix", "danglingLink", "badAddress"]) {
      const res = r.results[name] as { code: string; message: string };
      expect({ name, code: res.code }).toEqual({ name, code: "net.snapshot-corrupt" });
      expect(res.message).toContain("net.json is corrupt");
      expect(r.results[`${name}FileKept`]).toBe(true);
    }
    expect((r.results.badPrefix as { message: string }).message).toContain("addresses.0");
    expect((r.results.danglingLink as { message: string }).message).toContain("nosuch0");
    expect(addrs(r.after)).toEqual(addrs(r.flushed));
    expect(routes(r.after)).toEqual(routes(r.flushed));
    expect(rules(r.after)).toEqual(rules(r.flushed));
    expect([...links(r.after).keys()].sort()).toEqual([...links(r.flushed).keys()].sort());
  });
});
