/** Save: the live network of this namespace → a NetSnapshot (kernel-made items left out). */
import { release } from "node:os";
import { log } from "../log.ts";
import { currentBootId } from "../state/lock.ts";
import { NET_SNAPSHOT_FORMAT, NET_SNAPSHOT_VERSION, type NetSnapshot } from "./model.ts";
import { readLiveNetwork } from "./read-state.ts";
import { withRtnl } from "./rtnl.ts";
import { selectForSave } from "./select.ts";

/** Reads this namespace's network and returns what should be restored after the jump. */
export function saveNetwork(): NetSnapshot {
  const live = withRtnl(readLiveNetwork);
  const sel = selectForSave(live.state, live.decodedRoutes);
  for (const s of sel.skipped) log.warn(`network: not saving ${s.item}: ${s.reason}`);
  log.debug(
    `network: saved ${sel.links.length} links, ${sel.addresses.length} addresses, ${sel.routes.length} routes, ${sel.rules.length} rules`,
  );
  return {
    format: NET_SNAPSHOT_FORMAT,
    version: NET_SNAPSHOT_VERSION,
    savedAt: new Date().toISOString(),
    bootId: currentBootId() ?? null,
    kernel: release(),
    links: sel.links,
    addresses: sel.addresses,
    routes: sel.routes,
    rules: sel.rules,
    skipped: sel.skipped,
  };
}
