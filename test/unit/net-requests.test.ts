/**
 * Requests nvwa sends, read back with the same decoder that reads the kernel's dumps (which
 * net-codec.test.ts checks against real kernel bytes): what goes out must describe the same
 * item that came in.
 */
import { describe, expect, test } from "bun:test";
import { decodeAttrs, decodeIfInfoMsg, readStr, readU16, readU16be, readU32, type NlMessage } from "../../src/net/codec.ts";
import { IFA_F, IFF_UP, IFLA, IFLA_INFO, IFLA_VLAN, NLM_F, RTM } from "../../src/net/constants.ts";
import { decodeAddress, decodeRoute, decodeRule } from "../../src/net/decode.ts";
import type { SavedAddress, SavedLink, SavedRoute, SavedRule } from "../../src/net/model.ts";
import {
  addAddressRequest,
  addRouteRequest,
  addRuleRequest,
  createLinkRequest,
  MissingLinkError,
  updateLinkRequest,
  type RtnlRequest,
} from "../../src/net/requests.ts";

const INDEX = new Map([
  ["lo", 1],
  ["eth0", 2],
  ["br0", 3],
]);
const NAMES = new Map([...INDEX].map(([n, i]) => [i, n] as [number, string]));
const index = (n: string) => INDEX.get(n);

function asMessage(r: RtnlRequest): NlMessage {
  return { type: r.type, flags: r.flags, seq: 1, pid: 0, payload: r.body };
}

const baseLink: SavedLink = { name: "x", index: 9, kind: "dummy", mac: null, mtu: 1500, up: true, loopback: false, master: null, parent: null, vlan: null };

describe("link requests", () => {
  test("a VLAN: name, parent index, kind and id/protocol in IFLA_INFO_DATA, created up, add-only", () => {
    const req = createLinkRequest({ ...baseLink, name: "eth0.10", kind: "vlan", parent: "eth0", vlan: { id: 10, protocol: "802.1ad" } }, index);
    expect(req.type).toBe(RTM.NEWLINK);
    expect(req.flags).toBe(NLM_F.CREATE | NLM_F.EXCL);
    const { hdr, attrs } = decodeIfInfoMsg(req.body);
    expect(hdr).toMatchObject({ index: 0, flags: IFF_UP, change: IFF_UP });
    expect(readStr(attrs.get(IFLA.IFNAME))).toBe("eth0.10");
    expect(readU32(attrs.get(IFLA.LINK))).toBe(2);
    // The MTU is set after creation (a bridge would otherwise forget it), not here.
    expect(attrs.has(IFLA.MTU)).toBe(false);
    const info = decodeAttrs(attrs.get(IFLA.LINKINFO) ?? new Uint8Array());
    expect(readStr(info.get(IFLA_INFO.KIND))).toBe("vlan");
    const data = decodeAttrs(info.get(IFLA_INFO.DATA) ?? new Uint8Array());
    expect(readU16(data.get(IFLA_VLAN.ID))).toBe(10);
    expect(readU16be(data.get(IFLA_VLAN.PROTOCOL))).toBe(0x88a8);
  });

  test("a dummy keeps its saved MAC and master; a down link is created down", () => {
    const req = createLinkRequest({ ...baseLink, name: "d0", mac: "02:dd:00:00:00:01", master: "br0", up: false }, index);
    const { hdr, attrs } = decodeIfInfoMsg(req.body);
    expect(hdr.flags & IFF_UP).toBe(0);
    expect(Array.from(attrs.get(IFLA.ADDRESS) ?? [])).toEqual([2, 0xdd, 0, 0, 0, 1]);
    expect(readU32(attrs.get(IFLA.MASTER))).toBe(3);
    expect(decodeAttrs(attrs.get(IFLA.LINKINFO) ?? new Uint8Array()).has(IFLA_INFO.DATA)).toBe(false);
  });

  test("a physical link cannot be asked for", () => {
    expect(() => createLinkRequest({ ...baseLink, kind: null }, index)).toThrow(RangeError);
  });

  test("an update addresses the link by index and changes only what is asked", () => {
    const req = updateLinkRequest({ name: "eth0", mtu: 9000, up: true, master: "br0" }, index);
    expect(req.flags & NLM_F.CREATE).toBe(0);
    const { hdr, attrs } = decodeIfInfoMsg(req.body);
    expect(hdr).toMatchObject({ index: 2, flags: IFF_UP, change: IFF_UP });
    expect(readU32(attrs.get(IFLA.MTU))).toBe(9000);
    expect(readU32(attrs.get(IFLA.MASTER))).toBe(3);
    const plain = decodeIfInfoMsg(updateLinkRequest({ name: "eth0", mtu: null, up: false, master: null }, index).body);
    expect(plain.hdr.change).toBe(0);
    expect(plain.attrs.size).toBe(0);
  });

  test("a link that vanished is named", () => {
    let missing = "";
    try {
      updateLinkRequest({ name: "eth7", mtu: 1500, up: false, master: null }, index);
    } catch (e) {
      if (e instanceof MissingLinkError) missing = e.link;
    }
    expect(missing).toBe("eth7");
  });
});

const baseAddr: SavedAddress = {
  link: "eth0", family: "inet", local: "10.0.0.5", prefixlen: 24, peer: null, broadcast: "10.0.0.255", label: "eth0:web",
  scope: 0, flags: IFA_F.PERMANENT | IFA_F.NOPREFIXROUTE, proto: null, validLft: null, preferredLft: null, metric: 50,
};

describe("address requests", () => {
  test("IPv4 with broadcast, label and metric reads back as the same address", () => {
    const req = addAddressRequest(baseAddr, index);
    expect(req.type).toBe(RTM.NEWADDR);
    expect(req.flags).toBe(NLM_F.CREATE | NLM_F.EXCL);
    // PERMANENT is the kernel's to set (from the lifetime); the configured flag goes out.
    expect(decodeAddress(asMessage(req), NAMES)).toEqual({ ...baseAddr, flags: IFA_F.NOPREFIXROUTE });
  });

  test("a point-to-point peer and finite lifetimes", () => {
    const a: SavedAddress = { ...baseAddr, local: "10.3.0.1", prefixlen: 32, peer: "10.3.0.2", broadcast: null, label: null, validLft: 600, preferredLft: 900, metric: null, flags: 0 };
    const back = decodeAddress(asMessage(addAddressRequest(a, index)), NAMES);
    // preferred can never exceed valid; the kernel refuses it otherwise
    expect(back).toMatchObject({ local: "10.3.0.1", peer: "10.3.0.2", validLft: 600, preferredLft: 600 });
  });

  test("IPv6 goes out without duplicate address detection", () => {
    const a: SavedAddress = { ...baseAddr, family: "inet6", local: "2001:db8::5", prefixlen: 64, broadcast: null, label: null, flags: IFA_F.PERMANENT | IFA_F.TENTATIVE, metric: null };
    const back = decodeAddress(asMessage(addAddressRequest(a, index)), NAMES);
    expect(back?.flags).toBe(IFA_F.NODAD);
    expect(back?.local).toBe("2001:db8::5");
  });
});

const baseRoute: SavedRoute = {
  family: "inet", table: 254, type: 1, protocol: 4, scope: 0, tos: 0, dst: "10.8.0.0", dstLen: 16, src: null, srcLen: 0,
  priority: 100, prefsrc: "10.0.0.5", dev: "eth0", gateway: "10.0.0.1", onlink: true, multipath: null, metrics: { "2": 1400, "16": "bbr" }, pref: null,
};

describe("route requests read back as the same route", () => {
  test("gateway, prefsrc, onlink, metric, route metrics (mtu and congestion control)", () => {
    const d = decodeRoute(asMessage(addRouteRequest(baseRoute, index)), NAMES);
    expect(d?.route).toEqual(baseRoute);
  });

  test("a table above 255 travels in RTA_TABLE only", () => {
    const r: SavedRoute = { ...baseRoute, table: 1000, prefsrc: null, metrics: {} };
    const req = addRouteRequest(r, index);
    expect(req.body[4]).toBe(0); // rtm_table: unspec
    expect(decodeRoute(asMessage(req), NAMES)?.route).toEqual(r);
  });

  test("IPv6 multipath default route with a router preference", () => {
    const r: SavedRoute = {
      ...baseRoute, family: "inet6", dst: null, dstLen: 0, priority: 1024, prefsrc: null, dev: null, gateway: null, onlink: false, metrics: {}, pref: 1,
      multipath: [
        { dev: "eth0", gateway: "fe80::1", weight: 3, onlink: false },
        { dev: "br0", gateway: "fe80::2", weight: 1, onlink: true },
      ],
    };
    expect(decodeRoute(asMessage(addRouteRequest(r, index)), NAMES)?.route).toEqual(r);
  });

  test("a blackhole route has no device", () => {
    const r: SavedRoute = { ...baseRoute, type: 6, dev: null, gateway: null, prefsrc: null, onlink: false, metrics: {} };
    expect(decodeRoute(asMessage(addRouteRequest(r, index)), NAMES)?.route).toEqual(r);
  });
});

const baseRule: SavedRule = {
  family: "inet", priority: 1001, action: 1, table: 1000, src: "10.1.0.0", srcLen: 24, dst: "10.5.0.0", dstLen: 16, tos: 0,
  iif: "eth0", oif: "br0", fwmark: 0x10, fwmask: 0xff, goto: null, invert: true, suppressPrefixlen: 0, suppressIfgroup: null,
  uidRange: { start: 100, end: 200 }, ipProto: 6, sport: { start: 1000, end: 2000 }, dport: { start: 80, end: 90 },
  l3mdev: null, flow: null, tunId: "18446744073709551615", protocol: 4, extra: [{ type: 25, hex: "2e" }],
};

describe("rule requests read back as the same rule", () => {
  test("every selector, a u64 tunnel id, and an attribute newer than the codec replayed as bytes", () => {
    const req = addRuleRequest(baseRule);
    expect(req.type).toBe(RTM.NEWRULE);
    expect(req.flags).toBe(NLM_F.CREATE | NLM_F.EXCL);
    expect(decodeRule(asMessage(req))).toEqual(baseRule);
  });

  test("IPv6 goto rule", () => {
    const r: SavedRule = {
      ...baseRule, family: "inet6", action: 2, table: 0, goto: 2000, src: "2001:db8::", srcLen: 32, dst: null, dstLen: 0,
      iif: null, oif: null, fwmark: null, fwmask: null, invert: false, suppressPrefixlen: null, uidRange: null, ipProto: null,
      sport: null, dport: null, tunId: null, extra: [],
    };
    expect(decodeRule(asMessage(addRuleRequest(r)))).toEqual(r);
  });
});
