/**
 * The boot-time network restore, in the order that keeps it safe: read and validate the saved
 * file (a bad one stops here, nothing applied), plan against the live network, retire the
 * file, then apply. See consumeNetSnapshot for why the file is retired before applying.
 */
import { ignoreNotes, note, type OnNote } from "../note.ts";
import { applyNetRestore, type NetRestoreReport } from "./apply.ts";
import { planNetRestore } from "./plan.ts";
import { readLiveNetwork } from "./read-state.ts";
import { withRtnl } from "./rtnl.ts";
import { consumeNetSnapshot, readNetSnapshot } from "./snapshot-file.ts";

export interface NetRestoreOutcome {
  report: NetRestoreReport;
  /** Where the snapshot was moved to (`<path>.consumed`). */
  consumedPath: string | null;
}

/**
 * Restores the network saved at `path`. Throws the errors of readNetSnapshot (corrupt,
 * missing, version) and consumeNetSnapshot before anything is applied; per-item failures
 * are in the report, and each item is also told through `onNote` (failures as warnings).
 */
export function restoreNetwork(path: string, onNote: OnNote = ignoreNotes): NetRestoreOutcome {
  const saved = readNetSnapshot(path);
  return withRtnl((rtnl) => {
    const actions = planNetRestore(saved, readLiveNetwork(rtnl).state);
    const consumedPath = consumeNetSnapshot(path);
    const report = applyNetRestore(actions, rtnl);
    for (const i of report.items) {
      const notes = i.notes.length === 0 ? "" : ` (${i.notes.join("; ")})`;
      if (i.status === "failed") onNote(note("warn", `network: ${i.item}: failed: ${i.reason ?? "unknown"}${notes}`));
      else onNote(note("debug", `network: ${i.item}: ${i.status}${notes}`));
    }
    const summary = `network: ${report.applied} applied, ${report.present} already present, ${report.failed} failed (${report.durationMs.toFixed(0)} ms)`;
    onNote(note("info", summary));
    return { report, consumedPath };
  });
}
