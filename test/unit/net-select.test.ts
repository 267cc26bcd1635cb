import { describe, expect, test } from "bun:test";
import type { DecodedRoute } from "../../src/net/decode.ts";
import type { SavedAddress, SavedLink, SavedRoute, SavedRule } from "../../src/net/model.ts";
import { isDefaultRule, isKernelAddress, selectForSave } from "../../src/net/select.ts";

const lo: SavedLink = { name: "lo", index: 1, kind: null, mac: "00:00:00:00:00:00", mtu: 65536, up: true, loopback: true, master: null, parent: null, vlan: null };
const eth0: SavedLink = { ...lo, name: "eth0", index: 2, mac: "02:00:00:00:00:01", mtu: 1500, loopback: false };

function addr(link: string, local: string, prefixlen: number, over: Partial<SavedAddress> = {}): SavedAddress {
  return {
    link, family: local.includes(":") ? "inet6" : "inet", local, prefixlen, peer: null, broadcast: null, label: null,
    scope: 0, flags: 0x80, proto: null, validLft: null, preferredLft: null, metric: null, ...over,
  };
}
function route(over: Partial<SavedRoute>): SavedRoute {
  return {
    family: "inet", table: 254, type: 1, protocol: 3, scope: 0, tos: 0, dst: "10.8.0.0", dstLen: 16, src: null, srcLen: 0,
    priority: null, prefsrc: null, dev: "eth0", gateway: null, onlink: false, multipath: null, metrics: {}, pref: null, ...over,
  };
}
function rule(priority: number, table: number, over: Partial<SavedRule> = {}): SavedRule {
  return {
    family: "inet", priority, action: 1, table, src: null, srcLen: 0, dst: null, dstLen: 0, tos: 0, iif: null, oif: null,
    fwmark: null, fwmask: null, goto: null, invert: false, suppressPrefixlen: null, suppressIfgroup: null, uidRange: null,
    ipProto: null, sport: null, dport: null, l3mdev: null, flow: null, tunId: null, protocol: 2, extra: [], ...over,
  };
}

describe("what is saved", () => {
  test("kernel-made addresses are left out, configured ones kept", () => {
    expect(isKernelAddress(addr("lo", "127.0.0.1", 8), lo)).toBe(true);
    expect(isKernelAddress(addr("lo", "::1", 128, { proto: 1 }), lo)).toBe(true);
    expect(isKernelAddress(addr("eth0", "fe80::1", 64), eth0)).toBe(true); // no IFA_PROTO: older kernel
    expect(isKernelAddress(addr("eth0", "fe80::1", 64, { proto: 3 }), eth0)).toBe(true);
    expect(isKernelAddress(addr("eth0", "2001:db8::5", 64, { proto: 2, flags: 0 }), eth0)).toBe(true); // from an RA
    expect(isKernelAddress(addr("eth0", "2001:db8::77", 64, { flags: 0x01 }), eth0)).toBe(true); // privacy
    expect(isKernelAddress(addr("lo", "10.255.0.1", 32), lo)).toBe(false); // a VIP on lo is configuration
    expect(isKernelAddress(addr("eth0", "fe80::1", 64, { proto: 0x10 }), eth0)).toBe(false); // made by a tool that says so
    expect(isKernelAddress(addr("eth0", "10.0.0.5", 24, { flags: 0, validLft: 3600, preferredLft: 3600 }), eth0)).toBe(false); // DHCP lease
  });

  test("only the three default rules are left out", () => {
    expect(isDefaultRule(rule(0, 255))).toBe(true);
    expect(isDefaultRule(rule(32766, 254))).toBe(true);
    expect(isDefaultRule(rule(32767, 253))).toBe(true);
    expect(isDefaultRule(rule(32766, 254, { src: "10.0.0.0", srcLen: 8 }))).toBe(false);
    expect(isDefaultRule(rule(32766, 100))).toBe(false);
    expect(isDefaultRule(rule(1000, 254))).toBe(false);
  });

  test("routes: table local, proto kernel and proto ra are left out; unsupported ones are listed as skipped", () => {
    const decoded: DecodedRoute[] = [
      { route: route({ table: 255, type: 2, protocol: 2 }) },
      { route: route({ protocol: 2, scope: 253 }) },
      { route: route({ family: "inet6", dst: "::", dstLen: 0, protocol: 9, gateway: "fe80::1" }) },
      { route: route({ dst: "10.9.0.0", gateway: "10.0.0.1" }) },
      { route: route({ table: 100, protocol: 16, dst: null, dstLen: 0, gateway: "10.0.0.1" }) },
      { route: route({ dst: "10.5.0.0" }), unsupported: "uses a nexthop object (ip nexthop), which nvwa does not save" },
    ];
    const sel = selectForSave({ links: [lo, eth0], addresses: [], rules: [] }, decoded);
    expect(sel.routes.map((r) => `${r.table} ${r.dst} ${r.protocol}`)).toEqual(["254 10.9.0.0 3", "100 null 16"]);
    expect(sel.skipped).toEqual([
      { kind: "route", item: "route 10.5.0.0/16 dev eth0 table main", reason: "uses a nexthop object (ip nexthop), which nvwa does not save" },
    ]);
  });
});
