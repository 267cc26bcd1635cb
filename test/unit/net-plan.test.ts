import { describe, expect, test } from "bun:test";
import type { NetSnapshot, NetState, SavedAddress, SavedLink, SavedRoute, SavedRule } from "../../src/net/model.ts";
import { planNetRestore, sameRule, type NetAction } from "../../src/net/plan.ts";

function link(name: string, over: Partial<SavedLink> = {}): SavedLink {
  return { name, index: 0, kind: null, mac: "02:00:00:00:00:01", mtu: 1500, up: true, loopback: false, master: null, parent: null, vlan: null, ...over };
}
function addr(linkName: string, local: string, prefixlen: number, over: Partial<SavedAddress> = {}): SavedAddress {
  return {
    link: linkName, family: local.includes(":") ? "inet6" : "inet", local, prefixlen, peer: null, broadcast: null, label: null,
    scope: 0, flags: 0x80, proto: null, validLft: null, preferredLft: null, metric: null, ...over,
  };
}
function route(dst: string | null, dstLen: number, over: Partial<SavedRoute> = {}): SavedRoute {
  return {
    family: "inet", table: 254, type: 1, protocol: 3, scope: 0, tos: 0, dst, dstLen, src: null, srcLen: 0, priority: null,
    prefsrc: null, dev: "eth0", gateway: null, onlink: false, multipath: null, metrics: {}, pref: null, ...over,
  };
}
function rule(priority: number, over: Partial<SavedRule> = {}): SavedRule {
  return {
    family: "inet", priority, action: 1, table: 100, src: null, srcLen: 0, dst: null, dstLen: 0, tos: 0, iif: null, oif: null,
    fwmark: null, fwmask: null, goto: null, invert: false, suppressPrefixlen: null, suppressIfgroup: null, uidRange: null,
    ipProto: null, sport: null, dport: null, l3mdev: null, flow: null, tunId: null, protocol: 0, extra: [], ...over,
  };
}
function snap(p: Partial<NetSnapshot>): NetSnapshot {
  return {
    format: "nvwa-net", version: 1, savedAt: "2026-01-01T00:00:00.000Z", bootId: null, kernel: "6.1.0",
    links: [], addresses: [], routes: [], rules: [], skipped: [], ...p,
  };
}
function state(p: Partial<NetState>): NetState {
  return { links: [], addresses: [], routes: [], rules: [], ...p };
}
function find(actions: NetAction[], item: RegExp): NetAction {
  const hits = actions.filter((a) => item.test(a.item));
  if (hits.length !== 1) throw new Error(`${hits.length} actions match ${item}: ${actions.map((a) => a.item).join(" | ")}`);
  return hits[0] as NetAction;
}

describe("planNetRestore", () => {
  test("everything already there → every action is 'present', nothing to apply", () => {
    const s = snap({
      links: [link("eth0")],
      addresses: [addr("eth0", "10.0.0.5", 24), addr("eth0", "2001:db8::5", 64)],
      routes: [route(null, 0, { gateway: "10.0.0.1" })],
      rules: [rule(1000, { src: "10.0.0.0", srcLen: 24 })],
    });
    // The live state writes the IPv6 address differently and has extra kernel-made items.
    const now = state({
      links: [link("eth0"), link("lo", { loopback: true, kind: null })],
      addresses: [addr("eth0", "10.0.0.5", 24), addr("eth0", "2001:DB8:0::5", 64), addr("lo", "127.0.0.1", 8)],
      routes: [route(null, 0, { gateway: "10.0.0.1" }), route("10.0.0.0", 24, { protocol: 2, scope: 253 })],
      rules: [rule(1000, { src: "10.0.0.0", srcLen: 24, protocol: 4 }), rule(0, { table: 255 })],
    });
    const plan = planNetRestore(s, now);
    expect(plan.map((a) => a.op)).toEqual(["present", "present", "present", "present", "present"]);
  });

  test("missing items are applied; the plan only ever creates, updates or adds", () => {
    const s = snap({
      links: [link("eth0"), link("br0", { kind: "bridge", mtu: 9000 })],
      addresses: [addr("eth0", "10.0.0.5", 24), addr("br0", "10.9.0.1", 24)],
      routes: [route("10.8.0.0", 16, { gateway: "10.0.0.1" })],
      rules: [rule(1000)],
    });
    const plan = planNetRestore(s, state({ links: [link("eth0")] }));
    const changes = plan.flatMap((a) => (a.op === "apply" ? [a.change.type] : []));
    expect(changes).toEqual(["create-link", "add-address", "add-address", "add-route", "add-rule"]);
    expect(changes.every((c) => /^(create|update|add)-/.test(c))).toBe(true);
  });

  test("order: links (bridges, then others, then VLANs), addresses, direct routes, gateway routes, multipath, rules by priority", () => {
    const s = snap({
      links: [
        link("eth0"),
        link("vl10", { kind: "vlan", parent: "d0", vlan: { id: 10, protocol: "802.1Q" } }),
        link("d0", { kind: "dummy", master: "br0" }),
        link("br0", { kind: "bridge" }),
      ],
      addresses: [addr("d0", "10.1.0.1", 24)],
      routes: [
        route("10.7.0.0", 16, { dev: null, multipath: [{ dev: "eth0", gateway: "10.0.0.1", weight: 1, onlink: false }] }),
        route("10.8.0.0", 16, { gateway: "10.0.0.1" }),
        route("10.0.0.0", 24, { scope: 253 }),
      ],
      rules: [rule(2000), rule(1000)],
    });
    const plan = planNetRestore(s, state({ links: [link("eth0")] }));
    expect(plan.map((a) => a.item)).toEqual([
      "link br0 (bridge)",
      "link d0 (dummy)",
      "link vl10 (vlan)",
      "link eth0",
      "address 10.1.0.1/24 on d0",
      "route 10.0.0.0/24 dev eth0 table main",
      "route 10.8.0.0/16 via 10.0.0.1 dev eth0 table main",
      "route 10.7.0.0/16 nexthop via 10.0.0.1 dev eth0 weight 1 table main",
      "rule 1000: from all lookup 100",
      "rule 2000: from all lookup 100",
    ]);
    // d0 is created already enslaved to br0, which is created before it.
    const d0 = find(plan, /^link d0/);
    expect(d0.op === "apply" && d0.change.type === "create-link" ? d0.change.link.master : "").toBe("br0");
  });

  test("links are matched by name: a different MAC is reported and not changed", () => {
    const plan = planNetRestore(
      snap({ links: [link("eth0", { mac: "02:00:00:00:00:01" })] }),
      state({ links: [link("eth0", { mac: "02:00:00:00:00:99" })] }),
    );
    const a = find(plan, /^link eth0$/);
    expect(a.op).toBe("present");
    expect(a.notes).toEqual(["matched by name, but its MAC differs: saved 02:00:00:00:00:01, now 02:00:00:00:00:99"]);
  });

  test("existing links get the saved MTU and are brought up, never brought down", () => {
    const plan = planNetRestore(
      snap({ links: [link("eth0", { mtu: 9000, up: true }), link("eth1", { up: false })] }),
      state({ links: [link("eth0", { mtu: 1500, up: false }), link("eth1", { up: true })] }),
    );
    const eth0 = find(plan, /^link eth0$/);
    expect(eth0.op === "apply" ? eth0.change : null).toEqual({ type: "update-link", name: "eth0", mtu: 9000, up: true, master: null });
    const eth1 = find(plan, /^link eth1$/);
    expect(eth1.op).toBe("present");
    expect(eth1.notes.join()).toContain("left up");
  });

  test("masters: enslaved when free, left alone when this boot enslaved it elsewhere", () => {
    const plan = planNetRestore(
      snap({ links: [link("br0", { kind: "bridge" }), link("eth0", { master: "br0" }), link("eth1", { master: "br0" })] }),
      state({ links: [link("br0", { kind: "bridge" }), link("br1", { kind: "bridge" }), link("eth0"), link("eth1", { master: "br1" })] }),
    );
    const eth0 = find(plan, /^link eth0$/);
    expect(eth0.op === "apply" ? eth0.change : null).toMatchObject({ master: "br0" });
    const eth1 = find(plan, /^link eth1$/);
    expect(eth1.op).toBe("present");
    expect(eth1.notes.join()).toContain("enslaved to br1 in this boot (was br0)");
  });

  test("missing links: physical and veth are not created, and their items fail with the reason", () => {
    const s = snap({
      links: [link("eth9"), link("ve0", { kind: "veth" }), link("wg0", { kind: "wireguard" })],
      addresses: [addr("eth9", "10.0.0.5", 24)],
      routes: [route("10.8.0.0", 16, { dev: "ve0" })],
    });
    const plan = planNetRestore(s, state({}));
    expect(find(plan, /^link eth9$/)).toMatchObject({ op: "fail" });
    expect((find(plan, /^link eth9$/) as { reason: string }).reason).toContain("physical device");
    expect((find(plan, /^link ve0/) as { reason: string }).reason).toContain("veth");
    expect((find(plan, /^link wg0/) as { reason: string }).reason).toContain("wireguard");
    expect(find(plan, /^address 10\.0\.0\.5/)).toMatchObject({ op: "fail", reason: "link eth9 is missing after the jump and was not recreated (see link eth9)" });
    expect(find(plan, /^route 10\.8\.0\.0/)).toMatchObject({ op: "fail" });
  });

  test("a VLAN is created only when its parent exists or is created first", () => {
    const s = snap({
      links: [
        link("eth0.5", { kind: "vlan", parent: "eth0", vlan: { id: 5, protocol: "802.1Q" } }),
        link("eth9.5", { kind: "vlan", parent: "eth9", vlan: { id: 5, protocol: "802.1Q" } }),
        link("eth0"),
        link("eth9"),
      ],
    });
    const plan = planNetRestore(s, state({ links: [link("eth0")] }));
    expect(find(plan, /^link eth0\.5/).op).toBe("apply");
    expect((find(plan, /^link eth9\.5/) as { reason: string }).reason).toContain("parent link eth9 is missing too");
  });

  test("a route slot taken by a different route in this boot is reported, not replaced", () => {
    const plan = planNetRestore(
      snap({ links: [link("eth0")], routes: [route(null, 0, { gateway: "10.0.0.1" }), route(null, 0, { gateway: "10.0.0.1", priority: 100 })] }),
      state({ links: [link("eth0")], routes: [route(null, 0, { gateway: "10.0.0.254" })] }),
    );
    const taken = find(plan, /^route default via 10\.0\.0\.1 dev eth0 table main$/);
    expect(taken.op).toBe("fail");
    expect((taken as { reason: string }).reason).toContain("route default via 10.0.0.254 dev eth0 table main");
    // Another metric is another slot: added next to the new boot's route.
    expect(find(plan, /metric 100/).op).toBe("apply");
  });

  test("IPv4 metric 0 reported with and without RTA_PRIORITY is the same route", () => {
    const plan = planNetRestore(
      snap({ links: [link("eth0")], routes: [route("10.8.0.0", 16, { priority: 0 })] }),
      state({ links: [link("eth0")], routes: [route("10.8.0.0", 16, { priority: null })] }),
    );
    expect(find(plan, /^route 10\.8/).op).toBe("present");
  });

  test("rules compare on every selector but not on who made them", () => {
    expect(sameRule(rule(1000, { protocol: 0 }), rule(1000, { protocol: 4 }))).toBe(true);
    expect(sameRule(rule(1000), rule(1000, { fwmark: 1 }))).toBe(false);
    expect(sameRule(rule(1000), rule(1000, { invert: true }))).toBe(false);
    expect(sameRule(rule(1000, { src: "2001:db8::", srcLen: 64, family: "inet6" }), rule(1000, { src: "2001:DB8:0::", srcLen: 64, family: "inet6" }))).toBe(true);
  });

  test("items the old boot could not save are reported as failed after the jump", () => {
    const plan = planNetRestore(snap({ skipped: [{ kind: "route", item: "route 10.5.0.0/16 table main", reason: "uses a nexthop object" }] }), state({}));
    expect(plan).toEqual([
      { op: "fail", kind: "route", item: "route 10.5.0.0/16 table main", notes: [], reason: "not saved before the jump: uses a nexthop object" },
    ]);
  });
});
