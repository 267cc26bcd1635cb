/**
 * rtnetlink dump messages → the saved-item model. Pure: messages and an ifindex → name map in,
 * items out. Links come first (they build the name map), then the rest refer to links by name.
 */
import {
  decodeFibRuleHdr,
  decodeIfAddrMsg,
  decodeIfInfoMsg,
  decodeNextHops,
  decodeRtMsg,
  decodeAttrs,
  readI32,
  readStr,
  readU16,
  readU16be,
  readU32,
  readU8,
  toHex,
  type NlMessage,
} from "./codec.ts";
import {
  AF,
  ETH_P_8021AD,
  FIB_RULE_INVERT,
  FRA,
  IFA,
  IFF_LOOPBACK,
  IFF_UP,
  IFLA,
  IFLA_INFO,
  IFLA_VLAN,
  INFINITY_LIFE_TIME,
  RTA,
  RTAX_CC_ALGO,
  RTM_F_CLONED,
  RTNH_F_ONLINK,
} from "./constants.ts";
import { ipToString, macToString, type Family } from "./ip-text.ts";
import type { SavedAddress, SavedLink, SavedNextHop, SavedRoute, SavedRule } from "./model.ts";

export type IndexNames = ReadonlyMap<number, string>;

export function familyOf(af: number): Family | null {
  if (af === AF.INET) return "inet";
  if (af === AF.INET6) return "inet6";
  return null;
}

function ipOrNull(b: Uint8Array | undefined): string | null {
  return b === undefined || b.length === 0 ? null : ipToString(b);
}

/** A link as dumped, before master/parent indexes are turned into names. */
export interface RawLink {
  index: number;
  link: SavedLink;
  masterIndex: number | null;
  parentIndex: number | null;
}

export function decodeLink(m: NlMessage): RawLink {
  const { hdr, attrs } = decodeIfInfoMsg(m.payload);
  const info = attrs.get(IFLA.LINKINFO);
  const infoAttrs = info === undefined ? undefined : decodeAttrs(info);
  const kind = readStr(infoAttrs?.get(IFLA_INFO.KIND)) ?? null;
  let vlan: SavedLink["vlan"] = null;
  if (kind === "vlan") {
    const data = infoAttrs?.get(IFLA_INFO.DATA);
    const d = data === undefined ? undefined : decodeAttrs(data);
    const id = readU16(d?.get(IFLA_VLAN.ID));
    if (id !== undefined) {
      vlan = { id, protocol: readU16be(d?.get(IFLA_VLAN.PROTOCOL)) === ETH_P_8021AD ? "802.1ad" : "802.1Q" };
    }
  }
  const address = attrs.get(IFLA.ADDRESS);
  // IFLA_LINK of a link whose peer lives in another namespace (IFLA_LINK_NETNSID) is an index
  // over there, meaningless here.
  const parentIndex = attrs.has(IFLA.LINK_NETNSID) ? null : (readI32(attrs.get(IFLA.LINK)) ?? null);
  return {
    index: hdr.index,
    masterIndex: readU32(attrs.get(IFLA.MASTER)) ?? null,
    parentIndex: parentIndex === hdr.index ? null : parentIndex,
    link: {
      name: readStr(attrs.get(IFLA.IFNAME)) ?? `if${hdr.index}`,
      index: hdr.index,
      kind,
      mac: address === undefined || address.length === 0 ? null : macToString(address),
      mtu: readU32(attrs.get(IFLA.MTU)) ?? 0,
      up: (hdr.flags & IFF_UP) !== 0,
      loopback: (hdr.flags & IFF_LOOPBACK) !== 0,
      master: null,
      parent: null,
      vlan,
    },
  };
}

/** Resolves master/parent indexes to names; an index with no link here becomes null. */
export function resolveLinks(raw: RawLink[]): { links: SavedLink[]; names: Map<number, string> } {
  const names = new Map(raw.map((r) => [r.index, r.link.name] as [number, string]));
  const links = raw.map((r) => ({
    ...r.link,
    master: r.masterIndex === null ? null : (names.get(r.masterIndex) ?? null),
    parent: r.parentIndex === null || r.parentIndex === 0 ? null : (names.get(r.parentIndex) ?? null),
  }));
  return { links, names };
}

export function decodeAddress(m: NlMessage, names: IndexNames): SavedAddress | null {
  const { hdr, attrs } = decodeIfAddrMsg(m.payload);
  const family = familyOf(hdr.family);
  const link = names.get(hdr.index);
  if (family === null || link === undefined) return null;
  const address = ipOrNull(attrs.get(IFA.ADDRESS));
  const local = ipOrNull(attrs.get(IFA.LOCAL)) ?? address;
  if (local === null) return null;
  const cache = attrs.get(IFA.CACHEINFO);
  let validLft: number | null = null;
  let preferredLft: number | null = null;
  if (cache !== undefined && cache.length >= 8) {
    const preferred = readU32(cache.subarray(0, 4)) ?? INFINITY_LIFE_TIME;
    const valid = readU32(cache.subarray(4, 8)) ?? INFINITY_LIFE_TIME;
    validLft = valid === INFINITY_LIFE_TIME ? null : valid;
    preferredLft = preferred === INFINITY_LIFE_TIME ? null : preferred;
  }
  const label = readStr(attrs.get(IFA.LABEL)) ?? null;
  return {
    link,
    family,
    local,
    prefixlen: hdr.prefixlen,
    peer: address !== null && address !== local ? address : null,
    broadcast: family === "inet" ? ipOrNull(attrs.get(IFA.BROADCAST)) : null,
    label: label === link ? null : label,
    scope: hdr.scope,
    flags: readU32(attrs.get(IFA.FLAGS)) ?? hdr.flags,
    proto: readU8(attrs.get(IFA.PROTO)) ?? null,
    validLft,
    preferredLft,
    metric: readU32(attrs.get(IFA.RT_PRIORITY)) ?? null,
  };
}

export type DecodedRoute = { route: SavedRoute } | { unsupported: string; route: SavedRoute };

/**
 * A route, or the reason nvwa cannot restore it faithfully (nexthop objects, encapsulation,
 * MPLS-style via/newdst): those are reported as skipped rather than restored half right.
 */
export function decodeRoute(m: NlMessage, names: IndexNames): DecodedRoute | null {
  const { hdr, attrs } = decodeRtMsg(m.payload);
  const family = familyOf(hdr.family);
  // Cloned entries are the route cache (PMTU and redirect exceptions), not configuration.
  if (family === null || (hdr.flags & RTM_F_CLONED) !== 0) return null;
  const metrics: Record<string, number | string> = {};
  const mx = attrs.get(RTA.METRICS);
  if (mx !== undefined) {
    for (const [type, value] of decodeAttrs(mx)) {
      metrics[String(type)] = type === RTAX_CC_ALGO ? (readStr(value) ?? "") : (readU32(value) ?? 0);
    }
  }
  const oif = readU32(attrs.get(RTA.OIF));
  let multipath: SavedNextHop[] | null = null;
  const mp = attrs.get(RTA.MULTIPATH);
  let unknownDev = oif !== undefined && !names.has(oif);
  if (mp !== undefined) {
    multipath = decodeNextHops(mp).map((h) => {
      if (h.ifindex !== 0 && !names.has(h.ifindex)) unknownDev = true;
      return {
        dev: h.ifindex === 0 ? null : (names.get(h.ifindex) ?? null),
        gateway: ipOrNull(h.attrs.get(RTA.GATEWAY)),
        weight: h.hops + 1,
        onlink: (h.flags & RTNH_F_ONLINK) !== 0,
      };
    });
  }
  const route: SavedRoute = {
    family,
    table: readU32(attrs.get(RTA.TABLE)) ?? hdr.table,
    type: hdr.type,
    protocol: hdr.protocol,
    scope: hdr.scope,
    tos: hdr.tos,
    dst: hdr.dstLen === 0 ? null : ipOrNull(attrs.get(RTA.DST)),
    dstLen: hdr.dstLen,
    src: hdr.srcLen === 0 ? null : ipOrNull(attrs.get(RTA.SRC)),
    srcLen: hdr.srcLen,
    priority: readU32(attrs.get(RTA.PRIORITY)) ?? null,
    prefsrc: ipOrNull(attrs.get(RTA.PREFSRC)),
    dev: oif === undefined ? null : (names.get(oif) ?? null),
    gateway: ipOrNull(attrs.get(RTA.GATEWAY)),
    onlink: (hdr.flags & RTNH_F_ONLINK) !== 0,
    multipath,
    metrics,
    pref: readU8(attrs.get(RTA.PREF)) ?? null,
  };
  if (attrs.has(RTA.NH_ID)) return { route, unsupported: "uses a nexthop object (ip nexthop), which nvwa does not save" };
  if (attrs.has(RTA.ENCAP) || attrs.has(RTA.ENCAP_TYPE)) return { route, unsupported: "uses lightweight tunnel encapsulation, which nvwa does not save" };
  if (attrs.has(RTA.VIA) || attrs.has(RTA.NEWDST)) return { route, unsupported: "uses a cross-family gateway (via), which nvwa does not save" };
  if (unknownDev) return { route, unsupported: "goes through a link that is not in this namespace's link list" };
  return { route };
}

const RULE_KNOWN = new Set<number>([
  FRA.DST, FRA.SRC, FRA.IIFNAME, FRA.GOTO, FRA.PRIORITY, FRA.FWMARK, FRA.FLOW, FRA.TUN_ID,
  FRA.SUPPRESS_IFGROUP, FRA.SUPPRESS_PREFIXLEN, FRA.TABLE, FRA.FWMASK, FRA.OIFNAME, FRA.PAD,
  FRA.L3MDEV, FRA.UID_RANGE, FRA.PROTOCOL, FRA.IP_PROTO, FRA.SPORT_RANGE, FRA.DPORT_RANGE,
]);

function range(b: Uint8Array | undefined, width: 2 | 4): { start: number; end: number } | null {
  if (b === undefined) return null;
  const read = width === 2 ? readU16 : readU32;
  return { start: read(b.subarray(0, width)) ?? 0, end: read(b.subarray(width, width * 2)) ?? 0 };
}

export function decodeRule(m: NlMessage): SavedRule | null {
  const { hdr, attrs: list } = decodeFibRuleHdr(m.payload);
  const family = familyOf(hdr.family);
  if (family === null) return null;
  const attrs = new Map(list);
  const tun = attrs.get(FRA.TUN_ID);
  const suppressPrefixlen = readI32(attrs.get(FRA.SUPPRESS_PREFIXLEN));
  const suppressIfgroup = readI32(attrs.get(FRA.SUPPRESS_IFGROUP));
  return {
    family,
    priority: readU32(attrs.get(FRA.PRIORITY)) ?? 0,
    action: hdr.action,
    table: readU32(attrs.get(FRA.TABLE)) ?? hdr.table,
    src: hdr.srcLen === 0 ? null : ipOrNull(attrs.get(FRA.SRC)),
    srcLen: hdr.srcLen,
    dst: hdr.dstLen === 0 ? null : ipOrNull(attrs.get(FRA.DST)),
    dstLen: hdr.dstLen,
    tos: hdr.tos,
    iif: readStr(attrs.get(FRA.IIFNAME)) ?? null,
    oif: readStr(attrs.get(FRA.OIFNAME)) ?? null,
    fwmark: readU32(attrs.get(FRA.FWMARK)) ?? null,
    fwmask: readU32(attrs.get(FRA.FWMASK)) ?? null,
    goto: readU32(attrs.get(FRA.GOTO)) ?? null,
    invert: (hdr.flags & FIB_RULE_INVERT) !== 0,
    // -1 is the kernel's "not set" for both suppressors; it reports them on every rule.
    suppressPrefixlen: suppressPrefixlen === undefined || suppressPrefixlen === -1 ? null : suppressPrefixlen,
    suppressIfgroup: suppressIfgroup === undefined || suppressIfgroup === -1 ? null : suppressIfgroup,
    uidRange: range(attrs.get(FRA.UID_RANGE), 4),
    ipProto: readU8(attrs.get(FRA.IP_PROTO)) ?? null,
    sport: range(attrs.get(FRA.SPORT_RANGE), 2),
    dport: range(attrs.get(FRA.DPORT_RANGE), 2),
    l3mdev: readU8(attrs.get(FRA.L3MDEV)) ?? null,
    flow: readU32(attrs.get(FRA.FLOW)) ?? null,
    tunId: tun === undefined || tun.length < 8 ? null : new DataView(tun.buffer, tun.byteOffset, 8).getBigUint64(0, false).toString(),
    protocol: readU8(attrs.get(FRA.PROTOCOL)) ?? null,
    extra: list.filter(([t]) => !RULE_KNOWN.has(t)).map(([type, value]) => ({ type, hex: toHex(value) })),
  };
}
