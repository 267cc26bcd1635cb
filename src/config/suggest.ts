/**
 * "Did you mean" for config keys. Real typos seen in the seed guide's own samples are
 * `restore net:`, `enable pin_memory:` and `kexec_ex`: spaces and dashes where the key has
 * underscores, and dropped letters. Normalising separators first makes the first two exact,
 * edit distance catches the rest.
 */
function normalise(key: string): string {
  return key.trim().toLowerCase().replace(/[\s\-.]+/g, "_");
}

export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + cost);
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The closest known key, or undefined when nothing is plausibly meant. */
export function suggestKey(unknown: string, known: readonly string[]): string | undefined {
  const n = normalise(unknown);
  let best: { key: string; d: number } | undefined;
  for (const key of known) {
    const d = editDistance(n, key);
    if (best === undefined || d < best.d) best = { key, d };
  }
  if (best === undefined) return undefined;
  // A third of the key's length, at least 2: close enough to be a typo, far enough to not
  // suggest "pids" for "foo".
  const limit = Math.max(2, Math.floor(best.key.length / 3));
  return best.d <= limit ? best.key : undefined;
}
