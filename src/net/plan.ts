/**
 * Restore planning: the saved network against the live one of the new boot → an ordered list
 * of actions, each naming one saved item and saying whether it is already present, must be
 * applied, or cannot be (and why). Pure.
 *
 * Rules the plan keeps:
 * - Only adds. Nothing the new boot configured is removed or replaced: a saved route whose
 *   destination/metric slot is taken by a different route is reported, not forced.
 * - Links are matched by name. A MAC that differs is reported, never rewritten.
 * - Existing links get the saved MTU, are brought up if they were up, and are enslaved to
 *   their saved master if they have none now. A link that is up now is never brought down.
 * - Missing links are created only for kinds that need nothing but a name and a few
 *   attributes nvwa saves: dummy, bridge (without its bridge options) and vlan (on its saved
 *   parent). Physical links cannot be created; veth pairs are not (their peer normally
 *   belonged to a container namespace that does not exist yet); other kinds (bond, vxlan,
 *   wireguard, tun, macvlan, ...) need settings nvwa does not save and are left to the tool
 *   that made them. Items on a link that is missing fail with that reason.
 * - Order: links (masters and parents first), then addresses, then routes (link-scope before
 *   gateway routes, which need them), then rules by priority.
 */
import { ipToString, parseIp, type Family } from "./ip-text.ts";
import { describeAddress, describeLink, describeRoute, describeRule } from "./describe.ts";
import type { NetSnapshot, NetState, SavedAddress, SavedLink, SavedRoute, SavedRule } from "./model.ts";

export type NetItemKind = "link" | "address" | "route" | "rule";

export type NetChange =
  | { type: "create-link"; link: SavedLink }
  | { type: "update-link"; name: string; mtu: number | null; up: boolean; master: string | null }
  | { type: "add-address"; address: SavedAddress }
  | { type: "add-route"; route: SavedRoute }
  | { type: "add-rule"; rule: SavedRule };

interface ActionBase {
  kind: NetItemKind;
  /** The saved item, in words ("address 10.0.0.1/24 on eth0"). */
  item: string;
  /** Differences worth telling (a MAC that changed, a master that differs, ...). */
  notes: string[];
}
export type NetAction =
  | (ActionBase & { op: "apply"; change: NetChange })
  | (ActionBase & { op: "present" })
  | (ActionBase & { op: "fail"; reason: string });

/** Kinds nvwa re-creates when they are missing after the jump. */
export const CREATABLE_KINDS = ["bridge", "dummy", "vlan"] as const;

function canon(s: string | null, f: Family): string | null {
  if (s === null) return null;
  const b = parseIp(s, f);
  return b === null ? s : ipToString(b);
}

// ------------------------------------------------------------------ identities

/** Identity of an address: link, family, local address, prefix length and peer. */
export function addressKey(a: SavedAddress): string {
  return `${a.link}|${a.family}|${canon(a.local, a.family)}/${a.prefixlen}|${canon(a.peer, a.family) ?? ""}`;
}

export function sameAddress(a: SavedAddress, b: SavedAddress): boolean {
  return addressKey(a) === addressKey(b);
}

/** What the kernel treats as one route slot: table, destination, source prefix, tos, metric.
 * IPv4 reports no RTA_PRIORITY for metric 0, hence the default. */
export function routeKey(r: SavedRoute): string {
  return [
    r.family,
    r.table,
    `${canon(r.dst, r.family) ?? ""}/${r.dstLen}`,
    `${canon(r.src, r.family) ?? ""}/${r.srcLen}`,
    r.tos,
    r.priority ?? 0,
  ].join("|");
}

export function sameRouteKey(a: SavedRoute, b: SavedRoute): boolean {
  return routeKey(a) === routeKey(b);
}

function hopsKey(r: SavedRoute): string {
  return (r.multipath ?? [])
    .map((h) => `${h.dev ?? ""}|${canon(h.gateway, r.family) ?? ""}|${h.weight}`)
    .sort()
    .join(",");
}

/** Same slot and same forwarding: type, gateway, device and nexthops. */
export function sameRoute(a: SavedRoute, b: SavedRoute): boolean {
  return (
    sameRouteKey(a, b) &&
    a.type === b.type &&
    a.dev === b.dev &&
    canon(a.gateway, a.family) === canon(b.gateway, b.family) &&
    hopsKey(a) === hopsKey(b)
  );
}

/** Every selector and the action; who made the rule (protocol) does not count. */
export function ruleKey(r: SavedRule): string {
  return JSON.stringify({
    ...r,
    protocol: null,
    src: canon(r.src, r.family),
    dst: canon(r.dst, r.family),
    extra: [...r.extra].sort((x, y) => x.type - y.type),
  });
}

export function sameRule(a: SavedRule, b: SavedRule): boolean {
  return ruleKey(a) === ruleKey(b);
}

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const list = out.get(k);
    if (list === undefined) out.set(k, [t]);
    else list.push(t);
  }
  return out;
}

// ------------------------------------------------------------------ links

function whyNotCreatable(l: SavedLink, available: ReadonlySet<string>): string | null {
  switch (l.kind) {
    case "dummy":
    case "bridge":
      return null;
    case "vlan":
      if (l.vlan === null) return "it is a VLAN whose id was not saved";
      if (l.parent === null) return "it is a VLAN whose parent link was not saved";
      if (!available.has(l.parent)) return `its parent link ${l.parent} is missing too`;
      return null;
    case null:
      return "it is a physical device (or its driver is not loaded); nvwa does not create hardware links";
    case "veth":
      return "nvwa does not recreate veth pairs: the peer usually belonged to a container or namespace that does not exist yet";
    default:
      return `nvwa recreates only ${CREATABLE_KINDS.join(", ")} links; a ${l.kind} link needs settings it does not save (let the tool that made it recreate it)`;
  }
}

/** Masters (bridges) first, then other standalone kinds, then VLANs, which need a parent. */
function creationRank(l: SavedLink): number {
  if (l.kind === "bridge") return 0;
  if (l.kind === "vlan") return 2;
  return 1;
}

function planLinks(
  saved: SavedLink[],
  current: SavedLink[],
): { actions: NetAction[]; available: Set<string>; missing: Map<string, string> } {
  const now = new Map(current.map((l) => [l.name, l]));
  const available = new Set(current.map((l) => l.name));
  const missing = new Map<string, string>();
  const creates: NetAction[] = [];
  const toCreate = saved.filter((l) => !now.has(l.name)).sort((a, b) => creationRank(a) - creationRank(b));
  for (const l of toCreate) {
    const why = whyNotCreatable(l, available);
    if (why !== null) {
      const reason = `${l.name} is missing after the jump and was not created: ${why}`;
      missing.set(l.name, reason);
      creates.push({ op: "fail", kind: "link", item: describeLink(l), notes: [], reason });
      continue;
    }
    available.add(l.name);
    const notes: string[] = [];
    if (l.master !== null && !available.has(l.master)) notes.push(`its master ${l.master} is missing; not enslaved`);
    creates.push({
      op: "apply",
      kind: "link",
      item: describeLink(l),
      notes,
      // The master is set at creation only when it exists by then (bridges are created first).
      change: { type: "create-link", link: { ...l, master: l.master !== null && available.has(l.master) ? l.master : null } },
    });
  }

  const updates: NetAction[] = [];
  for (const l of saved) {
    const cur = now.get(l.name);
    if (cur === undefined) continue;
    const notes: string[] = [];
    if (!l.loopback && l.mac !== null && cur.mac !== null && l.mac.toLowerCase() !== cur.mac.toLowerCase()) {
      notes.push(`matched by name, but its MAC differs: saved ${l.mac}, now ${cur.mac}`);
    }
    if (l.kind !== cur.kind) notes.push(`was ${l.kind ?? "a physical link"}, is ${cur.kind ?? "a physical link"} now`);
    const mtu = l.mtu > 0 && l.mtu !== cur.mtu ? l.mtu : null;
    if (mtu !== null) notes.push(`mtu ${cur.mtu} → ${l.mtu}`);
    const up = l.up && !cur.up;
    if (up) notes.push("brought up");
    if (!l.up && cur.up) notes.push("was down before the jump; left up as this boot configured it");
    let master: string | null = null;
    if (l.master !== null && cur.master === null) {
      if (available.has(l.master)) {
        master = l.master;
        notes.push(`enslaved to ${l.master}`);
      } else {
        notes.push(`its master ${l.master} is missing; not enslaved`);
      }
    } else if (l.master !== null && cur.master !== l.master) {
      notes.push(`enslaved to ${cur.master ?? "?"} in this boot (was ${l.master}); left as is`);
    } else if (l.master === null && cur.master !== null) {
      notes.push(`enslaved to ${cur.master} in this boot (was standalone); left as is`);
    }
    if (mtu === null && !up && master === null) {
      updates.push({ op: "present", kind: "link", item: describeLink(l), notes });
    } else {
      updates.push({ op: "apply", kind: "link", item: describeLink(l), notes, change: { type: "update-link", name: l.name, mtu, up, master } });
    }
  }
  return { actions: [...creates, ...updates], available, missing };
}

// ------------------------------------------------------------------ the plan

function missingLinkReason(name: string, missing: ReadonlyMap<string, string>): string {
  return missing.has(name)
    ? `link ${name} is missing after the jump and was not recreated (see link ${name})`
    : `link ${name} is missing after the jump`;
}

/** Routes without a gateway (they make gateways reachable) before routes through gateways. */
function routeRank(r: SavedRoute): number {
  if (r.multipath !== null) return 2;
  if (r.gateway !== null) return 1;
  return 0;
}

export function planNetRestore(saved: NetSnapshot, current: NetState): NetAction[] {
  const { actions, available, missing } = planLinks(saved.links, current.links);
  // Indexed once: a machine with a full routing table must not cost saved × current compares.
  const addressKeys = new Set(current.addresses.map(addressKey));
  const addressesByLocal = groupBy(current.addresses, (c) => `${c.family}|${canon(c.local, c.family)}`);
  const slots = groupBy(current.routes, routeKey);
  const ruleKeys = new Set(current.rules.map(ruleKey));

  for (const a of saved.addresses) {
    const item = describeAddress(a);
    if (!available.has(a.link)) {
      actions.push({ op: "fail", kind: "address", item, notes: [], reason: missingLinkReason(a.link, missing) });
    } else if (addressKeys.has(addressKey(a))) {
      actions.push({ op: "present", kind: "address", item, notes: [] });
    } else {
      const elsewhere = (addressesByLocal.get(`${a.family}|${canon(a.local, a.family)}`) ?? []).find((c) => c.link !== a.link);
      const notes = elsewhere === undefined ? [] : [`this boot also has ${a.local} on ${elsewhere.link}`];
      actions.push({ op: "apply", kind: "address", item, notes, change: { type: "add-address", address: a } });
    }
  }

  const routes = saved.routes
    .map((r, i) => ({ r, i }))
    .sort((x, y) => routeRank(x.r) - routeRank(y.r) || y.r.scope - x.r.scope || x.i - y.i)
    .map((x) => x.r);
  for (const r of routes) {
    const item = describeRoute(r);
    const devs = [r.dev, ...(r.multipath ?? []).map((h) => h.dev)].filter((d): d is string => d !== null);
    const gone = devs.find((d) => !available.has(d));
    if (gone !== undefined) {
      actions.push({ op: "fail", kind: "route", item, notes: [], reason: missingLinkReason(gone, missing) });
      continue;
    }
    const taken = slots.get(routeKey(r)) ?? [];
    const slot = taken[0];
    if (slot === undefined) {
      actions.push({ op: "apply", kind: "route", item, notes: [], change: { type: "add-route", route: r } });
    } else if (taken.some((c) => sameRoute(r, c))) {
      actions.push({ op: "present", kind: "route", item, notes: [] });
    } else {
      actions.push({
        op: "fail",
        kind: "route",
        item,
        notes: [],
        reason: `this boot already has ${describeRoute(slot)} in that slot (same destination and metric); left as this boot configured it`,
      });
    }
  }

  const rules = [...saved.rules].sort((a, b) => a.priority - b.priority);
  for (const r of rules) {
    const item = describeRule(r);
    if (ruleKeys.has(ruleKey(r))) actions.push({ op: "present", kind: "rule", item, notes: [] });
    else actions.push({ op: "apply", kind: "rule", item, notes: [], change: { type: "add-rule", rule: r } });
  }

  for (const s of saved.skipped) {
    actions.push({ op: "fail", kind: s.kind, item: s.item, notes: [], reason: `not saved before the jump: ${s.reason}` });
  }
  return actions;
}
