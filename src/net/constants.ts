/**
 * rtnetlink protocol numbers, from the kernel's uapi headers (include/uapi/linux/netlink.h,
 * rtnetlink.h, if_link.h, if_addr.h, fib_rules.h). They are wire protocol, identical on every
 * architecture, so they live here rather than in ffi/.
 */

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  DUMP_INTR: 0x10,
  DUMP: 0x300,
  // modifiers of NEW requests
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  // flags of an NLMSG_ERROR message
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

export const NLMSGERR_ATTR_MSG = 1;

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWRULE: 32,
  DELRULE: 33,
  GETRULE: 34,
} as const;

export const AF = { UNSPEC: 0, INET: 2, INET6: 10 } as const;

export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;

export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  LINKINFO: 18,
  LINK_NETNSID: 37,
} as const;
export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
export const IFLA_VLAN = { ID: 1, PROTOCOL: 5 } as const;
/** VLAN ethertypes, carried big-endian in IFLA_VLAN_PROTOCOL. */
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

export const IFA = {
  ADDRESS: 1,
  LOCAL: 2,
  LABEL: 3,
  BROADCAST: 4,
  CACHEINFO: 6,
  FLAGS: 8,
  RT_PRIORITY: 9,
  PROTO: 11,
} as const;
export const IFA_F = {
  SECONDARY: 0x01,
  TEMPORARY: 0x01,
  NODAD: 0x02,
  OPTIMISTIC: 0x04,
  DADFAILED: 0x08,
  HOMEADDRESS: 0x10,
  DEPRECATED: 0x20,
  TENTATIVE: 0x40,
  PERMANENT: 0x80,
  MANAGETEMPADDR: 0x100,
  NOPREFIXROUTE: 0x200,
  MCAUTOJOIN: 0x400,
  STABLE_PRIVACY: 0x800,
} as const;
export const IFAPROT = { UNSPEC: 0, KERNEL_LO: 1, KERNEL_RA: 2, KERNEL_LL: 3 } as const;
/** ifa_cacheinfo lifetimes use this for "forever". */
export const INFINITY_LIFE_TIME = 0xffffffff;

export const RTA = {
  DST: 1,
  SRC: 2,
  IIF: 3,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  PREFSRC: 7,
  METRICS: 8,
  MULTIPATH: 9,
  TABLE: 15,
  MARK: 16,
  VIA: 18,
  NEWDST: 19,
  PREF: 20,
  ENCAP_TYPE: 21,
  ENCAP: 22,
  EXPIRES: 23,
  NH_ID: 30,
} as const;
/** RTA_METRICS member that is a string (TCP congestion control name), all others are u32. */
export const RTAX_CC_ALGO = 16;

export const RTN = {
  UNSPEC: 0,
  UNICAST: 1,
  LOCAL: 2,
  BROADCAST: 3,
  ANYCAST: 4,
  MULTICAST: 5,
  BLACKHOLE: 6,
  UNREACHABLE: 7,
  PROHIBIT: 8,
  THROW: 9,
  NAT: 10,
  XRESOLVE: 11,
} as const;

export const RTPROT = { UNSPEC: 0, REDIRECT: 1, KERNEL: 2, BOOT: 3, STATIC: 4, RA: 9, DHCP: 16 } as const;
export const RT_SCOPE = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;
export const RT_TABLE = { UNSPEC: 0, COMPAT: 252, DEFAULT: 253, MAIN: 254, LOCAL: 255 } as const;
export const RTM_F_CLONED = 0x200;
export const RTNH_F_ONLINK = 4;

export const FRA = {
  DST: 1,
  SRC: 2,
  IIFNAME: 3,
  GOTO: 4,
  PRIORITY: 6,
  FWMARK: 10,
  FLOW: 11,
  TUN_ID: 12,
  SUPPRESS_IFGROUP: 13,
  SUPPRESS_PREFIXLEN: 14,
  TABLE: 15,
  FWMASK: 16,
  OIFNAME: 17,
  PAD: 18,
  L3MDEV: 19,
  UID_RANGE: 20,
  PROTOCOL: 21,
  IP_PROTO: 22,
  SPORT_RANGE: 23,
  DPORT_RANGE: 24,
} as const;
export const FR_ACT = { UNSPEC: 0, TO_TBL: 1, GOTO: 2, NOP: 3, BLACKHOLE: 6, UNREACHABLE: 7, PROHIBIT: 8 } as const;
export const FIB_RULE_INVERT = 0x2;

const TABLE_NAMES: Record<number, string> = { 253: "default", 254: "main", 255: "local" };
export function tableName(t: number): string {
  return TABLE_NAMES[t] ?? String(t);
}

const PROTO_NAMES: Record<number, string> = {
  0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 9: "ra", 16: "dhcp",
};
export function protoName(p: number): string {
  return PROTO_NAMES[p] ?? String(p);
}

const RTN_NAMES: Record<number, string> = {
  1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole",
  7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat", 11: "xresolve",
};
export function routeTypeName(t: number): string {
  return RTN_NAMES[t] ?? String(t);
}
