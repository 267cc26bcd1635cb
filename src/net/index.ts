/** Network save/restore across the jump (`restore_net: true`): the public face of src/net. */
export { saveNetwork } from "./save.ts";
export {
  NET_SNAPSHOT_FILE,
  netSnapshotPath,
  writeNetSnapshot,
  readNetSnapshot,
  consumeNetSnapshot,
} from "./snapshot-file.ts";
export { planNetRestore, type NetAction, type NetChange, type NetItemKind } from "./plan.ts";
export { applyNetRestore, type NetItemReport, type NetItemStatus, type NetRestoreReport } from "./apply.ts";
export { restoreNetwork, type NetRestoreOutcome } from "./restore.ts";
export { readLiveNetwork } from "./read-state.ts";
export type { NetSnapshot, NetState, SavedAddress, SavedLink, SavedRoute, SavedRule } from "./model.ts";
