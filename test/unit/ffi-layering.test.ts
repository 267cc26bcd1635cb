/**
 * The layering ffi/README.md states, read from the source: ffi/ imports nothing from src/ (only
 * its siblings, node: builtins and bun:ffi), ffi/error.ts and ffi/bytes.ts stay free of bun:ffi
 * (src/errors.ts and the pure net codec load them), and only ffi/ imports bun:ffi. Also src/'s
 * one console rule (issue 18): only the daemon and the CLI import src/log.ts; domain modules
 * report through events, notes (src/note.ts) and return values, so each thing is said once.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const root = join(import.meta.dir, "../..");
const FFI = join(root, "ffi");

/** Every module a file imports or re-exports from, static or dynamic. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']/gm)) out.push(m[1] as string);
  for (const m of text.matchAll(/^\s*import\s*["']([^"']+)["']/gm)) out.push(m[1] as string);
  for (const m of text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1] as string);
  return out;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => join(dir, f));
}

/** Whether `name` (in ffi/) loads bun:ffi, itself or through its siblings. */
function loadsBunFfi(name: string, seen = new Set<string>()): boolean {
  if (seen.has(name)) return false;
  seen.add(name);
  const s = specifiers(join(FFI, name));
  return s.includes("bun:ffi") || s.some((x) => x.startsWith("./") && loadsBunFfi(x.slice(2), seen));
}

describe("ffi/", () => {
  test("imports nothing from src/: only its siblings, node: builtins and bun:ffi", () => {
    const files = tsFiles(FFI);
    expect(files.length).toBeGreaterThan(5);
    const outside = files.flatMap((f) =>
      specifiers(f)
        .filter((s) => !/^\.\/[a-z-]+\.ts$/.test(s) && !s.startsWith("node:") && s !== "bun:ffi")
        .map((s) => `${f.slice(root.length + 1)}: ${s}`),
    );
    expect(outside).toEqual([]);
  });

  test("error.ts imports nothing; error.ts and bytes.ts never load bun:ffi", () => {
    expect(specifiers(join(FFI, "error.ts"))).toEqual([]);
    expect(loadsBunFfi("error.ts")).toBe(false);
    expect(loadsBunFfi("bytes.ts")).toBe(false);
    expect(loadsBunFfi("netlink.ts")).toBe(true); // the check sees through siblings
  });

  test("is the only place that imports bun:ffi", () => {
    const users = [...tsFiles(join(root, "src")), ...tsFiles(join(root, "build"))]
      .filter((f) => specifiers(f).includes("bun:ffi"))
      .map((f) => f.slice(root.length + 1));
    expect(users).toEqual([]);
  });
});

describe("src/log.ts", () => {
  test("is imported only by src/cli/ and src/daemon/: domain modules emit events, never log", () => {
    const SRC = join(root, "src");
    const LOG = join(SRC, "log.ts");
    const renderers = [join(SRC, "cli/"), join(SRC, "daemon/")];
    const files = tsFiles(SRC);
    const importers = files.filter((f) => specifiers(f).some((s) => s.startsWith(".") && resolve(dirname(f), s) === LOG)).map((f) => f.slice(root.length + 1));
    expect(importers).toContain("src/cli/notes.ts"); // the check sees real imports
    expect(importers.filter((f) => !renderers.some((r) => join(root, f).startsWith(r)))).toEqual([]);
  });
});
