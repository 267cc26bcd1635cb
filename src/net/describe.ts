/** One-line human descriptions of saved items, in `ip`'s vocabulary, for reports and errors. */
import { FR_ACT, protoName, routeTypeName, RTN, tableName } from "./constants.ts";
import type { SavedAddress, SavedLink, SavedRoute, SavedRule } from "./model.ts";

export function describeLink(l: Pick<SavedLink, "name" | "kind">): string {
  return `link ${l.name}${l.kind === null ? "" : ` (${l.kind})`}`;
}

export function describeAddress(a: SavedAddress): string {
  const peer = a.peer === null ? "" : ` peer ${a.peer}`;
  return `address ${a.local}/${a.prefixlen}${peer} on ${a.link}`;
}

function prefix(addr: string | null, len: number): string {
  return addr === null || len === 0 ? "default" : `${addr}/${len}`;
}

export function describeRoute(r: SavedRoute): string {
  const parts: string[] = [];
  if (r.type !== RTN.UNICAST) parts.push(routeTypeName(r.type));
  parts.push(r.family === "inet6" ? `${prefix(r.dst, r.dstLen)} (IPv6)` : prefix(r.dst, r.dstLen));
  if (r.srcLen > 0 && r.src !== null) parts.push(`from ${r.src}/${r.srcLen}`);
  if (r.gateway !== null) parts.push(`via ${r.gateway}`);
  if (r.dev !== null) parts.push(`dev ${r.dev}`);
  for (const h of r.multipath ?? []) {
    parts.push(`nexthop${h.gateway === null ? "" : ` via ${h.gateway}`}${h.dev === null ? "" : ` dev ${h.dev}`} weight ${h.weight}`);
  }
  parts.push(`table ${tableName(r.table)}`);
  if (r.priority !== null && r.priority !== 0) parts.push(`metric ${r.priority}`);
  if (r.tos !== 0) parts.push(`tos 0x${r.tos.toString(16)}`);
  if (r.protocol !== 3) parts.push(`proto ${protoName(r.protocol)}`);
  return `route ${parts.join(" ")}`;
}

export function describeRule(r: SavedRule): string {
  const parts: string[] = [`${r.priority}:`];
  if (r.invert) parts.push("not");
  parts.push(`from ${r.src === null ? "all" : `${r.src}/${r.srcLen}`}`);
  if (r.dst !== null) parts.push(`to ${r.dst}/${r.dstLen}`);
  if (r.tos !== 0) parts.push(`tos 0x${r.tos.toString(16)}`);
  if (r.fwmark !== null) parts.push(`fwmark 0x${r.fwmark.toString(16)}${r.fwmask === null ? "" : `/0x${r.fwmask.toString(16)}`}`);
  if (r.iif !== null) parts.push(`iif ${r.iif}`);
  if (r.oif !== null) parts.push(`oif ${r.oif}`);
  if (r.uidRange !== null) parts.push(`uidrange ${r.uidRange.start}-${r.uidRange.end}`);
  if (r.ipProto !== null) parts.push(`ipproto ${r.ipProto}`);
  if (r.sport !== null) parts.push(`sport ${r.sport.start}-${r.sport.end}`);
  if (r.dport !== null) parts.push(`dport ${r.dport.start}-${r.dport.end}`);
  if (r.l3mdev !== null) parts.push("l3mdev");
  switch (r.action) {
    case FR_ACT.TO_TBL:
      parts.push(`lookup ${tableName(r.table)}`);
      break;
    case FR_ACT.GOTO:
      parts.push(`goto ${r.goto ?? "?"}`);
      break;
    case FR_ACT.NOP:
      parts.push("nop");
      break;
    case FR_ACT.BLACKHOLE:
      parts.push("blackhole");
      break;
    case FR_ACT.UNREACHABLE:
      parts.push("unreachable");
      break;
    case FR_ACT.PROHIBIT:
      parts.push("prohibit");
      break;
    default:
      parts.push(`action ${r.action}`);
  }
  if (r.suppressPrefixlen !== null) parts.push(`suppress_prefixlength ${r.suppressPrefixlen}`);
  if (r.suppressIfgroup !== null) parts.push(`suppress_ifgroup ${r.suppressIfgroup}`);
  return `rule ${r.family === "inet6" ? "(IPv6) " : ""}${parts.join(" ")}`;
}
