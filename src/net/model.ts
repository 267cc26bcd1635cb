/**
 * The saved network: what a snapshot file holds, as valibot schemas (used to validate the
 * file after the jump) and the TypeScript types derived from them. The same item types
 * describe the live state of the new boot (NetState), so planning compares like with like.
 *
 * Everything refers to links by name, never by ifindex: indexes are handed out anew on every
 * boot, names are what a person (and udev's predictable naming) keeps stable.
 */
import * as v from "valibot";
import { isIp, parseMac, type Family } from "./ip-text.ts";

export const NET_SNAPSHOT_FORMAT = "nvwa-net";
export const NET_SNAPSHOT_VERSION = 1;

const u8 = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xff));
const u16 = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffff));
const u32 = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff));
const i32 = v.pipe(v.number(), v.integer(), v.minValue(-0x80000000), v.maxValue(0x7fffffff));
/** IFNAMSIZ is 16 with the NUL; the kernel refuses '/', ':' and whitespace in names. */
const ifname = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(15),
  v.regex(/^[^/:\s]+$/, "is not a valid interface name"),
);
const family = v.picklist(["inet", "inet6"]);
const mac = v.pipe(
  v.string(),
  v.check((s) => parseMac(s) !== null, "is not a link-layer address (hex bytes separated by ':')"),
);
const ipText = v.pipe(v.string(), v.check((s) => isIp(s, "inet") || isIp(s, "inet6"), "is not an IP address"));

function maxPrefix(f: Family): number {
  return f === "inet" ? 32 : 128;
}
function ipOf(f: Family, s: string | null): boolean {
  return s === null || isIp(s, f);
}

export const SavedLinkSchema = v.strictObject({
  name: ifname,
  /** The ifindex in the old boot: informational only, never used to address the link. */
  index: u32,
  /** IFLA_INFO_KIND ("dummy", "bridge", "vlan", "veth", ...); null for physical devices. */
  kind: v.nullable(v.string()),
  mac: v.nullable(mac),
  mtu: u32,
  /** Administratively up (IFF_UP). */
  up: v.boolean(),
  loopback: v.boolean(),
  /** Bridge or bond this link was enslaved to. */
  master: v.nullable(ifname),
  /** IFLA_LINK when it lives in the same namespace: a VLAN's parent, a veth's peer. */
  parent: v.nullable(ifname),
  vlan: v.nullable(v.strictObject({ id: v.pipe(u16, v.maxValue(4094)), protocol: v.picklist(["802.1Q", "802.1ad"]) })),
});
export type SavedLink = v.InferOutput<typeof SavedLinkSchema>;

export const SavedAddressSchema = v.pipe(
  v.strictObject({
    link: ifname,
    family,
    local: ipText,
    prefixlen: u8,
    /** Point-to-point peer (IFA_ADDRESS when it differs from IFA_LOCAL). */
    peer: v.nullable(ipText),
    broadcast: v.nullable(ipText),
    label: v.nullable(v.pipe(v.string(), v.maxLength(15))),
    scope: u8,
    /** IFA_F_* bits as the kernel reported them. */
    flags: u32,
    /** IFA_PROTO (who made it), when the kernel says. */
    proto: v.nullable(u8),
    /** Remaining lifetimes in seconds; null is forever. */
    validLft: v.nullable(u32),
    preferredLft: v.nullable(u32),
    /** IFA_RT_PRIORITY: metric of the prefix route. */
    metric: v.nullable(u32),
  }),
  v.check((a) => a.prefixlen <= maxPrefix(a.family), "prefixlen is too long for the family"),
  v.check((a) => ipOf(a.family, a.local) && ipOf(a.family, a.peer), "address does not match its family"),
  v.check((a) => a.broadcast === null || a.family === "inet", "only IPv4 addresses have a broadcast"),
);
export type SavedAddress = v.InferOutput<typeof SavedAddressSchema>;

export const SavedNextHopSchema = v.strictObject({
  dev: v.nullable(ifname),
  gateway: v.nullable(ipText),
  /** rtnh_hops + 1. */
  weight: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(256)),
  onlink: v.boolean(),
});
export type SavedNextHop = v.InferOutput<typeof SavedNextHopSchema>;

export const SavedRouteSchema = v.pipe(
  v.strictObject({
    family,
    table: u32,
    type: u8,
    protocol: u8,
    scope: u8,
    tos: u8,
    /** null is the default route (dstLen 0). */
    dst: v.nullable(ipText),
    dstLen: u8,
    /** Source prefix (IPv6 subtrees). */
    src: v.nullable(ipText),
    srcLen: u8,
    /** Metric; null when the kernel did not report one (IPv4 metric 0). */
    priority: v.nullable(u32),
    prefsrc: v.nullable(ipText),
    dev: v.nullable(ifname),
    gateway: v.nullable(ipText),
    onlink: v.boolean(),
    multipath: v.nullable(v.array(SavedNextHopSchema)),
    /** RTA_METRICS by RTAX number: u32 values, except congestion control (a name). */
    metrics: v.record(v.pipe(v.string(), v.regex(/^[0-9]+$/)), v.union([u32, v.string()])),
    /** IPv6 router preference (RTA_PREF). */
    pref: v.nullable(u8),
  }),
  v.check((r) => r.dstLen <= maxPrefix(r.family) && r.srcLen <= maxPrefix(r.family), "prefix length too long for the family"),
  v.check(
    (r) =>
      ipOf(r.family, r.dst) &&
      ipOf(r.family, r.src) &&
      ipOf(r.family, r.prefsrc) &&
      ipOf(r.family, r.gateway) &&
      (r.multipath ?? []).every((h) => ipOf(r.family, h.gateway)),
    "an address does not match the route's family",
  ),
);
export type SavedRoute = v.InferOutput<typeof SavedRouteSchema>;

const portRange = v.strictObject({ start: u16, end: u16 });

export const SavedRuleSchema = v.pipe(
  v.strictObject({
    family,
    priority: u32,
    /** FR_ACT_*: 1 lookup, 2 goto, 3 nop, 6 blackhole, 7 unreachable, 8 prohibit. */
    action: u8,
    table: u32,
    src: v.nullable(ipText),
    srcLen: u8,
    dst: v.nullable(ipText),
    dstLen: u8,
    tos: u8,
    iif: v.nullable(ifname),
    oif: v.nullable(ifname),
    fwmark: v.nullable(u32),
    fwmask: v.nullable(u32),
    goto: v.nullable(u32),
    invert: v.boolean(),
    suppressPrefixlen: v.nullable(i32),
    suppressIfgroup: v.nullable(i32),
    uidRange: v.nullable(v.strictObject({ start: u32, end: u32 })),
    ipProto: v.nullable(u8),
    sport: v.nullable(portRange),
    dport: v.nullable(portRange),
    l3mdev: v.nullable(u8),
    flow: v.nullable(u32),
    /** FRA_TUN_ID, a u64 kept as decimal text. */
    tunId: v.nullable(v.pipe(v.string(), v.regex(/^[0-9]+$/))),
    protocol: v.nullable(u8),
    /** Attributes newer than this codec (e.g. FRA_DSCP), kept as bytes and replayed verbatim. */
    extra: v.array(v.strictObject({ type: u16, hex: v.pipe(v.string(), v.regex(/^([0-9a-f]{2})*$/)) })),
  }),
  v.check((r) => r.dstLen <= maxPrefix(r.family) && r.srcLen <= maxPrefix(r.family), "prefix length too long for the family"),
  v.check((r) => ipOf(r.family, r.src) && ipOf(r.family, r.dst), "an address does not match the rule's family"),
);
export type SavedRule = v.InferOutput<typeof SavedRuleSchema>;

export const SkippedItemSchema = v.strictObject({
  kind: v.picklist(["link", "address", "route", "rule"]),
  item: v.string(),
  reason: v.string(),
});
export type SkippedItem = v.InferOutput<typeof SkippedItemSchema>;

export const NetSnapshotSchema = v.pipe(
  v.strictObject({
    format: v.literal(NET_SNAPSHOT_FORMAT),
    version: v.literal(NET_SNAPSHOT_VERSION),
    savedAt: v.pipe(v.string(), v.isoTimestamp()),
    /** /proc/sys/kernel/random/boot_id of the boot that saved it. */
    bootId: v.nullable(v.string()),
    /** uname -r of the kernel that saved it. */
    kernel: v.string(),
    links: v.array(SavedLinkSchema),
    addresses: v.array(SavedAddressSchema),
    routes: v.array(SavedRouteSchema),
    rules: v.array(SavedRuleSchema),
    /** Configured items nvwa saw but cannot restore, so the report can say so after the jump. */
    skipped: v.array(SkippedItemSchema),
  }),
  v.check((s) => new Set(s.links.map((l) => l.name)).size === s.links.length, "two links have the same name"),
  v.check((s) => danglingLinkRefs(s).length === 0, (issue) => `refers to links that are not saved: ${danglingLinkRefs(issue.input).join(", ")}`),
);
export type NetSnapshot = v.InferOutput<typeof NetSnapshotSchema>;

/** Link names the items refer to that are not among the saved links. */
export function danglingLinkRefs(s: { links: SavedLink[]; addresses: SavedAddress[]; routes: SavedRoute[] }): string[] {
  const names = new Set(s.links.map((l) => l.name));
  const refs = new Set<string>();
  for (const l of s.links) {
    if (l.master !== null) refs.add(l.master);
    if (l.parent !== null) refs.add(l.parent);
  }
  for (const a of s.addresses) refs.add(a.link);
  for (const r of s.routes) {
    if (r.dev !== null) refs.add(r.dev);
    for (const h of r.multipath ?? []) if (h.dev !== null) refs.add(h.dev);
  }
  return [...refs].filter((n) => !names.has(n)).sort();
}

/** The live network of this boot, everything the kernel reports (kernel-made items included). */
export interface NetState {
  links: SavedLink[];
  addresses: SavedAddress[];
  routes: SavedRoute[];
  rules: SavedRule[];
}
