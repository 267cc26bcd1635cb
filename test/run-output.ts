/** Reading bun test's output for test/run.ts's summary (pure; unit-tested). */

/** bun test prints " 12 pass" and " 0 fail" lines at the end of its summary. */
export function counts(output: string): { passed: number; failed: number } {
  const pass = [...output.matchAll(/^\s*(\d+) pass$/gm)].map((m) => Number(m[1]));
  const fail = [...output.matchAll(/^\s*(\d+) fail$/gm)].map((m) => Number(m[1]));
  return { passed: pass.at(-1) ?? 0, failed: fail.at(-1) ?? 0 };
}

/**
 * bun prints a failed test's error above its "(fail) name" line, and the names once more in its
 * own summary. CI keeps only the end of a long log, so the summary repeats each failure once, led
 * by its "error:" line and a few lines after it (the message, then the details), clipped.
 */
export function failureBlocks(output: string): string[] {
  const lines = output.split("\n");
  const blocks: string[] = [];
  const seen = new Set<string>();
  let from = 0;
  lines.forEach((line, i) => {
    if (/^\((pass|skip|todo)\) /.test(line)) from = i + 1;
    if (!line.startsWith("(fail) ")) return;
    const name = line.replace(/ \[[\d.]+m?s\]$/, "");
    const window = lines.slice(Math.max(from, i - 60), i);
    from = i + 1;
    if (seen.has(name)) return;
    seen.add(name);
    const at = window.findIndex((l) => /^error: /.test(l) || /^\w*Error: /.test(l));
    const error = at < 0 ? window.slice(-8) : window.slice(at, at + 8);
    blocks.push([name, ...error.map((l) => `  ${l.length > 240 ? `${l.slice(0, 240)}…` : l}`)].join("\n"));
  });
  return blocks;
}
