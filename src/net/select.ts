/**
 * Which parts of the live network are configuration worth carrying across the jump. Pure.
 *
 * Left out, because the new kernel makes them again by itself and re-adding them by hand
 * would either fail or leave a stale, non-kernel copy behind:
 * - loopback's 127.0.0.1/8 and ::1/128, and kernel-made IPv6 link-local (fe80::/64) addresses;
 * - addresses the kernel made from router advertisements (IFA_PROTO kernel_ra) and IPv6
 *   privacy (temporary) addresses;
 * - routes with proto kernel (prefix routes the kernel derives from addresses), proto ra,
 *   cloned/cache entries, and everything in table local (local and broadcast entries);
 * - the default policy rules (0: lookup local, 32766: lookup main, 32767: lookup default).
 * Left out and reported as skipped, because restoring them needs state nvwa does not save:
 * routes using nexthop objects, lwtunnel encapsulation or cross-family "via".
 */
import {
  FR_ACT,
  IFA_F,
  IFAPROT,
  RT_TABLE,
  RTPROT,
} from "./constants.ts";
import type { DecodedRoute } from "./decode.ts";
import { describeRoute } from "./describe.ts";
import type { NetState, SavedAddress, SavedLink, SavedRoute, SavedRule, SkippedItem } from "./model.ts";

export function isKernelAddress(a: SavedAddress, link: SavedLink | undefined): boolean {
  if (a.proto === IFAPROT.KERNEL_LO || a.proto === IFAPROT.KERNEL_LL || a.proto === IFAPROT.KERNEL_RA) return true;
  const loopback = link?.loopback ?? a.link === "lo";
  if (loopback && a.family === "inet" && a.local === "127.0.0.1" && a.prefixlen === 8) return true;
  if (loopback && a.family === "inet6" && a.local === "::1" && a.prefixlen === 128) return true;
  if (a.family === "inet6" && (a.flags & IFA_F.TEMPORARY) !== 0) return true;
  // Kernels before 6.1 do not report IFA_PROTO, so a kernel-made link-local looks like any
  // other; one that says it is user-made (proto given, not kernel) is kept.
  if (a.family === "inet6" && a.proto === null && a.prefixlen === 64 && /^fe[89ab][0-9a-f]:/i.test(a.local)) return true;
  return false;
}

export function isKernelRoute(r: SavedRoute): boolean {
  return r.table === RT_TABLE.LOCAL || r.protocol === RTPROT.KERNEL || r.protocol === RTPROT.RA;
}

export function isDefaultRule(r: SavedRule): boolean {
  const plain =
    r.action === FR_ACT.TO_TBL &&
    r.src === null &&
    r.dst === null &&
    r.tos === 0 &&
    r.iif === null &&
    r.oif === null &&
    r.fwmark === null &&
    !r.invert &&
    r.uidRange === null &&
    r.ipProto === null &&
    r.sport === null &&
    r.dport === null &&
    r.l3mdev === null &&
    r.suppressPrefixlen === null &&
    r.suppressIfgroup === null &&
    r.extra.length === 0;
  if (!plain) return false;
  return (
    (r.priority === 0 && r.table === RT_TABLE.LOCAL) ||
    (r.priority === 32766 && r.table === RT_TABLE.MAIN) ||
    (r.priority === 32767 && r.table === RT_TABLE.DEFAULT)
  );
}

/** Address flags that describe how it was configured (the rest is DAD/lifetime state). */
export const CONFIG_ADDRESS_FLAGS =
  IFA_F.NODAD | IFA_F.HOMEADDRESS | IFA_F.MANAGETEMPADDR | IFA_F.NOPREFIXROUTE | IFA_F.MCAUTOJOIN | IFA_F.PERMANENT;

export interface Selection {
  links: SavedLink[];
  addresses: SavedAddress[];
  routes: SavedRoute[];
  rules: SavedRule[];
  skipped: SkippedItem[];
}

/**
 * Picks the configuration out of the live state. `routes` are the decoded dump entries so
 * that unsupported ones can be reported as skipped.
 */
export function selectForSave(state: Omit<NetState, "routes">, routes: DecodedRoute[]): Selection {
  const byName = new Map(state.links.map((l) => [l.name, l]));
  const skipped: SkippedItem[] = [];
  const addresses = state.addresses.filter((a) => !isKernelAddress(a, byName.get(a.link)));
  const kept: SavedRoute[] = [];
  for (const d of routes) {
    if (isKernelRoute(d.route)) continue;
    if ("unsupported" in d) {
      skipped.push({ kind: "route", item: describeRoute(d.route), reason: d.unsupported });
      continue;
    }
    kept.push(d.route);
  }
  const rules = state.rules.filter((r) => !isDefaultRule(r));
  return { links: state.links, addresses, routes: kept, rules, skipped };
}
