/**
 * One logger for the whole program. The CLI shows progress through it; the daemon's lines go
 * to stderr, which systemd puts in the journal. Update logs on disk are written by
 * src/daemon (they must survive the jump); this is only the console side. `-v` sets
 * NVWA_LOG_LEVEL=debug before any command module (and so this one) is loaded.
 */
import { createConsola, type ConsolaInstance } from "consola";

export const log: ConsolaInstance = createConsola({
  level: process.env.NVWA_LOG_LEVEL === "debug" ? 4 : 3,
  stderr: process.stderr,
  stdout: process.stderr,
});
