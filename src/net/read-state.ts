/**
 * Reads the live network of the current namespace over rtnetlink: every link, address (v4
 * and v6), route of every table and policy rule, kernel-made ones included.
 */
import {
  encodeFibRuleHdr,
  encodeIfAddrMsg,
  encodeIfInfoMsg,
  encodeRtMsg,
} from "./codec.ts";
import { AF, RTM } from "./constants.ts";
import {
  decodeAddress,
  decodeLink,
  decodeRoute,
  decodeRule,
  resolveLinks,
  type DecodedRoute,
} from "./decode.ts";
import type { NetState, SavedAddress, SavedRule } from "./model.ts";
import type { Rtnl } from "./rtnl.ts";

export interface LiveNetwork {
  state: NetState;
  /** Every route as decoded, including those nvwa cannot restore (with the reason). */
  decodedRoutes: DecodedRoute[];
  /** ifindex → name in this boot. */
  names: Map<number, string>;
}

export function dumpLinks(rtnl: Rtnl): { links: NetState["links"]; names: Map<number, string> } {
  const msgs = rtnl.dump(RTM.GETLINK, encodeIfInfoMsg({ family: AF.UNSPEC, type: 0, index: 0, flags: 0, change: 0 }), "dump links");
  return resolveLinks(msgs.map(decodeLink));
}

export function readLiveNetwork(rtnl: Rtnl): LiveNetwork {
  const { links, names } = dumpLinks(rtnl);
  const addresses: SavedAddress[] = [];
  for (const m of rtnl.dump(RTM.GETADDR, encodeIfAddrMsg({ family: AF.UNSPEC, prefixlen: 0, flags: 0, scope: 0, index: 0 }), "dump addresses")) {
    const a = decodeAddress(m, names);
    if (a !== null) addresses.push(a);
  }
  // One dump per family: an AF_UNSPEC route or rule dump also walks the multicast and MPLS
  // families, which are not nvwa's business.
  const decodedRoutes: DecodedRoute[] = [];
  const rules: SavedRule[] = [];
  for (const [af, label] of [[AF.INET, "IPv4"], [AF.INET6, "IPv6"]] as const) {
    const rt = encodeRtMsg({ family: af, dstLen: 0, srcLen: 0, tos: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 });
    for (const m of rtnl.dump(RTM.GETROUTE, rt, `dump ${label} routes`)) {
      const d = decodeRoute(m, names);
      if (d !== null) decodedRoutes.push(d);
    }
    const rh = encodeFibRuleHdr({ family: af, dstLen: 0, srcLen: 0, tos: 0, table: 0, action: 0, flags: 0 });
    for (const m of rtnl.dump(RTM.GETRULE, rh, `dump ${label} rules`)) {
      const r = decodeRule(m);
      if (r !== null) rules.push(r);
    }
  }
  return {
    state: { links, addresses, routes: decodedRoutes.map((d) => d.route), rules },
    decodedRoutes,
    names,
  };
}
