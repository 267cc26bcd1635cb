/** Save: the live network of this namespace → a NetSnapshot (kernel-made items left out). */
import { release } from "node:os";
import { ignoreNotes, note, type OnNote } from "../note.ts";
import { currentBootId } from "../state/lock.ts";
import { NET_SNAPSHOT_FORMAT, NET_SNAPSHOT_VERSION, type NetSnapshot } from "./model.ts";
import { readLiveNetwork } from "./read-state.ts";
import { withRtnl } from "./rtnl.ts";
import { selectForSave } from "./select.ts";

/** Reads this namespace's network and returns what should be restored after the jump. */
export function saveNetwork(onNote: OnNote = ignoreNotes): NetSnapshot {
  const live = withRtnl(readLiveNetwork);
  const sel = selectForSave(live.state, live.decodedRoutes);
  for (const s of sel.skipped) onNote(note("warn", `network: not saving ${s.item}: ${s.reason}`));
  const counts = `${sel.links.length} links, ${sel.addresses.length} addresses, ${sel.routes.length} routes, ${sel.rules.length} rules`;
  onNote(note("debug", `network: saved ${counts}`));
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
