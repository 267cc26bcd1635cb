/**
 * When to stop pre-dumping. Pure.
 *
 * Round 1 writes the whole memory while the tree runs; each further round writes what the tree
 * dirtied during the round before (soft-dirty), so rounds shrink as long as the tree writes more
 * slowly than criu reads. The final dump, frozen, then writes what changed since the last round.
 * Another round is worth it while the last one still halved the one before and was not already
 * small; a round count and a time budget bound the whole (a tree that dirties memory faster than
 * it can be written never converges). See notes/pre-dump-and-lazy-restore.md.
 */

export interface PreDumpRound {
  /** Pages criu wrote in this round ("Memory pages written"), or its image bytes / page size when criu printed no stats. */
  pagesWritten: number;
  ms: number;
}

export interface PreDumpLimits {
  maxRounds: number;
  /** Total time of all rounds. */
  budgetMs: number;
  /** A round that wrote fewer pages than this leaves too little for another to win anything. */
  smallPages: number;
  /** Another round only while the last wrote at most this share of the one before. */
  shrink: number;
}

export const PRE_DUMP_LIMITS: PreDumpLimits = { maxRounds: 4, budgetMs: 120_000, smallPages: 2048, shrink: 0.5 };

export type NextRound = { again: true } | { again: false; why: string };

export function nextPreDumpRound(rounds: readonly PreDumpRound[], limits: PreDumpLimits = PRE_DUMP_LIMITS): NextRound {
  const last = rounds[rounds.length - 1];
  if (last === undefined) return { again: true };
  const spent = rounds.reduce((s, r) => s + r.ms, 0);
  if (rounds.length >= limits.maxRounds) return { again: false, why: `${limits.maxRounds} rounds` };
  if (spent >= limits.budgetMs) return { again: false, why: `${Math.round(spent / 1000)} s spent (budget ${limits.budgetMs / 1000} s)` };
  if (last.pagesWritten < limits.smallPages) return { again: false, why: `the last round wrote only ${last.pagesWritten} pages` };
  const before = rounds[rounds.length - 2];
  if (before !== undefined && last.pagesWritten > before.pagesWritten * limits.shrink) {
    return { again: false, why: `the dirty set no longer halves (${before.pagesWritten} → ${last.pagesWritten} pages)` };
  }
  return { again: true };
}
