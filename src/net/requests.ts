/**
 * Saved items → rtnetlink "new" requests (message type, flags, body). Pure: link names are
 * resolved through the `index` callback, which answers undefined for a link that is missing.
 */
import {
  encodeAttrs,
  encodeFibRuleHdr,
  encodeIfAddrMsg,
  encodeIfInfoMsg,
  encodeNextHops,
  encodeRtMsg,
  fromHex,
  i32,
  str,
  u16,
  u16be,
  u32,
  u64,
  u8,
  type AttrIn,
} from "./codec.ts";
import { concat } from "../../ffi/bytes.ts";
import {
  AF,
  ETH_P_8021AD,
  ETH_P_8021Q,
  FIB_RULE_INVERT,
  FRA,
  IFA,
  IFA_F,
  IFF_UP,
  IFLA,
  IFLA_INFO,
  IFLA_VLAN,
  INFINITY_LIFE_TIME,
  NLM_F,
  RTA,
  RTAX_CC_ALGO,
  RTM,
  RTNH_F_ONLINK,
} from "./constants.ts";
import { ipBytes, parseMac, type Family } from "./ip-text.ts";
import type { SavedAddress, SavedLink, SavedRoute, SavedRule } from "./model.ts";

export interface RtnlRequest {
  type: number;
  flags: number;
  body: Uint8Array;
}

export type IndexOf = (name: string) => number | undefined;

/** A link a request needs does not exist (any more). */
export class MissingLinkError extends Error {
  readonly link: string;
  constructor(link: string) {
    super(`link ${link} does not exist`);
    this.link = link;
  }
}

function need(index: IndexOf, name: string): number {
  const i = index(name);
  if (i === undefined) throw new MissingLinkError(name);
  return i;
}

function af(f: Family): number {
  return f === "inet" ? AF.INET : AF.INET6;
}

/** Add, and say so (EEXIST) if it is already there rather than touching it. */
const ADD = NLM_F.CREATE | NLM_F.EXCL;

/**
 * Creates a virtual link. The MTU is deliberately not part of it: a bridge treats an MTU given
 * at creation as automatic and drops it to its ports' MTU when one is enslaved, while an MTU
 * changed afterwards sticks. Apply follows up with updateLinkRequest for the MTU.
 */
export function createLinkRequest(l: SavedLink, index: IndexOf): RtnlRequest {
  if (l.kind === null) throw new RangeError(`link ${l.name} has no kind; only virtual links can be created`);
  const attrs: AttrIn[] = [{ type: IFLA.IFNAME, value: str(l.name) }];
  const mac = l.mac === null ? null : parseMac(l.mac);
  if (mac !== null && mac.some((b) => b !== 0)) attrs.push({ type: IFLA.ADDRESS, value: mac });
  if (l.master !== null) attrs.push({ type: IFLA.MASTER, value: u32(need(index, l.master)) });
  const info: AttrIn[] = [{ type: IFLA_INFO.KIND, value: str(l.kind) }];
  if (l.kind === "vlan") {
    if (l.vlan === null || l.parent === null) throw new RangeError(`VLAN ${l.name} needs an id and a parent`);
    attrs.push({ type: IFLA.LINK, value: u32(need(index, l.parent)) });
    info.push({
      type: IFLA_INFO.DATA,
      value: [
        { type: IFLA_VLAN.ID, value: u16(l.vlan.id) },
        { type: IFLA_VLAN.PROTOCOL, value: u16be(l.vlan.protocol === "802.1ad" ? ETH_P_8021AD : ETH_P_8021Q) },
      ],
    });
  }
  attrs.push({ type: IFLA.LINKINFO, value: info });
  const hdr = encodeIfInfoMsg({ family: AF.UNSPEC, type: 0, index: 0, flags: l.up ? IFF_UP : 0, change: l.up ? IFF_UP : 0 });
  return { type: RTM.NEWLINK, flags: ADD, body: concat([hdr, encodeAttrs(attrs)]) };
}

export function updateLinkRequest(
  change: { name: string; mtu: number | null; up: boolean; master: string | null },
  index: IndexOf,
): RtnlRequest {
  const attrs: AttrIn[] = [];
  if (change.mtu !== null) attrs.push({ type: IFLA.MTU, value: u32(change.mtu) });
  if (change.master !== null) attrs.push({ type: IFLA.MASTER, value: u32(need(index, change.master)) });
  const hdr = encodeIfInfoMsg({
    family: AF.UNSPEC,
    type: 0,
    index: need(index, change.name),
    flags: change.up ? IFF_UP : 0,
    change: change.up ? IFF_UP : 0,
  });
  return { type: RTM.NEWLINK, flags: 0, body: concat([hdr, encodeAttrs(attrs)]) };
}

/** Flags that say how an address was configured; the rest is DAD or lifetime state the kernel owns. */
const SETTABLE_ADDRESS_FLAGS = IFA_F.NODAD | IFA_F.HOMEADDRESS | IFA_F.MANAGETEMPADDR | IFA_F.NOPREFIXROUTE | IFA_F.MCAUTOJOIN;

/**
 * IPv6 addresses are re-added without duplicate address detection: the address was in use on
 * this very machine seconds ago, and while DAD runs (about a second, longer with no carrier)
 * it stays tentative, so restored TCP sockets cannot bind to it and criu restore fails.
 */
export function addAddressRequest(a: SavedAddress, index: IndexOf): RtnlRequest {
  const local = ipBytes(a.local, a.family);
  const flags = (a.flags & SETTABLE_ADDRESS_FLAGS) | (a.family === "inet6" ? IFA_F.NODAD : 0);
  const attrs: AttrIn[] = [
    { type: IFA.LOCAL, value: local },
    { type: IFA.ADDRESS, value: a.peer === null ? local : ipBytes(a.peer, a.family) },
    { type: IFA.FLAGS, value: u32(flags) },
  ];
  if (a.broadcast !== null) attrs.push({ type: IFA.BROADCAST, value: ipBytes(a.broadcast, "inet") });
  if (a.label !== null) attrs.push({ type: IFA.LABEL, value: str(a.label) });
  if (a.validLft !== null || a.preferredLft !== null) {
    const valid = a.validLft ?? INFINITY_LIFE_TIME;
    const preferred = Math.min(a.preferredLft ?? INFINITY_LIFE_TIME, valid);
    attrs.push({ type: IFA.CACHEINFO, value: concat([u32(preferred), u32(valid), u32(0), u32(0)]) });
  }
  if (a.metric !== null) attrs.push({ type: IFA.RT_PRIORITY, value: u32(a.metric) });
  if (a.proto !== null && a.proto !== 0) attrs.push({ type: IFA.PROTO, value: u8(a.proto) });
  const hdr = encodeIfAddrMsg({ family: af(a.family), prefixlen: a.prefixlen, flags: flags & 0xff, scope: a.scope, index: need(index, a.link) });
  return { type: RTM.NEWADDR, flags: ADD, body: concat([hdr, encodeAttrs(attrs)]) };
}

export function addRouteRequest(r: SavedRoute, index: IndexOf): RtnlRequest {
  const attrs: AttrIn[] = [{ type: RTA.TABLE, value: u32(r.table) }];
  if (r.dst !== null && r.dstLen > 0) attrs.push({ type: RTA.DST, value: ipBytes(r.dst, r.family) });
  if (r.src !== null && r.srcLen > 0) attrs.push({ type: RTA.SRC, value: ipBytes(r.src, r.family) });
  if (r.priority !== null) attrs.push({ type: RTA.PRIORITY, value: u32(r.priority) });
  if (r.prefsrc !== null) attrs.push({ type: RTA.PREFSRC, value: ipBytes(r.prefsrc, r.family) });
  if (r.dev !== null) attrs.push({ type: RTA.OIF, value: u32(need(index, r.dev)) });
  if (r.gateway !== null) attrs.push({ type: RTA.GATEWAY, value: ipBytes(r.gateway, r.family) });
  const metrics = Object.entries(r.metrics).map(([k, val]): AttrIn => {
    const type = Number(k);
    return { type, value: type === RTAX_CC_ALGO || typeof val === "string" ? str(String(val)) : u32(val) };
  });
  if (metrics.length > 0) attrs.push({ type: RTA.METRICS, value: metrics });
  if (r.multipath !== null) {
    attrs.push({
      type: RTA.MULTIPATH,
      value: encodeNextHops(
        r.multipath.map((h) => ({
          flags: h.onlink ? RTNH_F_ONLINK : 0,
          hops: h.weight - 1,
          ifindex: h.dev === null ? 0 : need(index, h.dev),
          attrs: h.gateway === null ? [] : [{ type: RTA.GATEWAY, value: ipBytes(h.gateway, r.family) }],
        })),
      ),
    });
  }
  if (r.pref !== null && r.family === "inet6") attrs.push({ type: RTA.PREF, value: u8(r.pref) });
  const hdr = encodeRtMsg({
    family: af(r.family),
    dstLen: r.dstLen,
    srcLen: r.srcLen,
    tos: r.tos,
    // Tables above 255 only fit in RTA_TABLE; the header then says "unspec".
    table: r.table < 256 ? r.table : 0,
    protocol: r.protocol,
    scope: r.scope,
    type: r.type,
    flags: r.onlink ? RTNH_F_ONLINK : 0,
  });
  return { type: RTM.NEWROUTE, flags: ADD, body: concat([hdr, encodeAttrs(attrs)]) };
}

function range16(r: { start: number; end: number }): Uint8Array {
  return concat([u16(r.start), u16(r.end)]);
}

export function addRuleRequest(r: SavedRule): RtnlRequest {
  const attrs: AttrIn[] = [{ type: FRA.PRIORITY, value: u32(r.priority) }];
  if (r.table !== 0) attrs.push({ type: FRA.TABLE, value: u32(r.table) });
  if (r.src !== null && r.srcLen > 0) attrs.push({ type: FRA.SRC, value: ipBytes(r.src, r.family) });
  if (r.dst !== null && r.dstLen > 0) attrs.push({ type: FRA.DST, value: ipBytes(r.dst, r.family) });
  if (r.iif !== null) attrs.push({ type: FRA.IIFNAME, value: str(r.iif) });
  if (r.oif !== null) attrs.push({ type: FRA.OIFNAME, value: str(r.oif) });
  if (r.fwmark !== null) attrs.push({ type: FRA.FWMARK, value: u32(r.fwmark) });
  if (r.fwmask !== null) attrs.push({ type: FRA.FWMASK, value: u32(r.fwmask) });
  if (r.goto !== null) attrs.push({ type: FRA.GOTO, value: u32(r.goto) });
  if (r.suppressPrefixlen !== null) attrs.push({ type: FRA.SUPPRESS_PREFIXLEN, value: i32(r.suppressPrefixlen) });
  if (r.suppressIfgroup !== null) attrs.push({ type: FRA.SUPPRESS_IFGROUP, value: i32(r.suppressIfgroup) });
  if (r.uidRange !== null) attrs.push({ type: FRA.UID_RANGE, value: concat([u32(r.uidRange.start), u32(r.uidRange.end)]) });
  if (r.ipProto !== null) attrs.push({ type: FRA.IP_PROTO, value: u8(r.ipProto) });
  if (r.sport !== null) attrs.push({ type: FRA.SPORT_RANGE, value: range16(r.sport) });
  if (r.dport !== null) attrs.push({ type: FRA.DPORT_RANGE, value: range16(r.dport) });
  if (r.l3mdev !== null) attrs.push({ type: FRA.L3MDEV, value: u8(r.l3mdev) });
  if (r.flow !== null) attrs.push({ type: FRA.FLOW, value: u32(r.flow) });
  if (r.tunId !== null) {
    // FRA_TUN_ID is big-endian on the wire (nla_put_be64).
    const b = u64(BigInt(r.tunId));
    attrs.push({ type: FRA.TUN_ID, value: b.reverse() });
  }
  if (r.protocol !== null) attrs.push({ type: FRA.PROTOCOL, value: u8(r.protocol) });
  for (const x of r.extra) attrs.push({ type: x.type, value: fromHex(x.hex) });
  const hdr = encodeFibRuleHdr({
    family: af(r.family),
    dstLen: r.dstLen,
    srcLen: r.srcLen,
    tos: r.tos,
    table: r.table < 256 ? r.table : 0,
    action: r.action,
    flags: r.invert ? FIB_RULE_INVERT : 0,
  });
  return { type: RTM.NEWRULE, flags: ADD, body: concat([hdr, encodeAttrs(attrs)]) };
}
