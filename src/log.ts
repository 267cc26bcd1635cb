/**
 * One logger for the whole program. The CLI shows progress through it; the daemon's lines go
 * to stderr, which systemd puts in the journal. Update logs on disk are written by
 * src/daemon (they must survive the jump); this is only the console side.
 *
 * consola is loaded on the first call, not at import: evaluating it (node:tty, node:util,
 * process.stderr, Intl.Segmenter, its default instance) costs more CPU than Bun's own start-up
 * (BENCHMARKS.md, CLI cold start), and `nvwa status` or a usage error never log anything. The level is
 * read then too, so `-v` (which sets NVWA_LOG_LEVEL=debug) works wherever it is parsed.
 */
import type { ConsolaInstance } from "consola";

let instance: ConsolaInstance | undefined;

function real(): ConsolaInstance {
  if (instance === undefined) {
    // require, not import(): logging is synchronous. The bundler keeps consola's evaluation lazy.
    const { createConsola } = require("consola") as typeof import("consola");
    instance = createConsola({
      level: process.env.NVWA_LOG_LEVEL === "debug" ? 4 : 3,
      stderr: process.stderr,
      stdout: process.stderr,
    });
  }
  return instance;
}

export const log: ConsolaInstance = new Proxy({} as ConsolaInstance, {
  get(_target, key) {
    const r = real();
    const v: unknown = Reflect.get(r, key, r);
    return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(r) : v;
  },
  set(_target, key, value) {
    return Reflect.set(real(), key, value);
  },
  has(_target, key) {
    return Reflect.has(real(), key);
  },
});
