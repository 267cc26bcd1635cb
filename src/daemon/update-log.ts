/**
 * Each update's own log, <log_dir>/update-<id>.log: progress, decisions, errors and timings.
 * It lives on disk because on minimal images the journal is often volatile and the interesting
 * half of an update (the restore) happens in the next kernel, which appends to the same file.
 * Every line also goes to the console logger, i.e. stderr, i.e. the journal under systemd.
 *
 * Lines are appended (O_APPEND) and fsynced at phase boundaries and on close: a crash or the
 * jump loses at most the lines of the phase in progress.
 */
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ConsolaInstance } from "consola";
import { NvwaError } from "../errors.ts";
import { log as defaultLog } from "../log.ts";
import { ensureDir, fsyncDir } from "../state/atomic.ts";
import type { ProgressEvent } from "./protocol.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function updateLogPath(logDir: string, updateId: string): string {
  if (!ID.test(updateId)) {
    throw new NvwaError("internal", `invalid update id "${updateId}" for a log file name`, {
      hint: "update ids are letters, digits, '.', '_' and '-'",
    });
  }
  return join(logDir, `update-${updateId}.log`);
}

/** key=value pairs for the end of a line; values with spaces are JSON-quoted. */
export function formatFields(fields: Record<string, unknown> | undefined): string {
  if (!fields) return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const s = typeof v === "string" ? v : JSON.stringify(v);
    parts.push(`${k}=${/^[^\s"=]+$/.test(s ?? "") ? s : JSON.stringify(s)}`);
  }
  return parts.length === 0 ? "" : ` ${parts.join(" ")}`;
}

/** One line: "<ISO time> <LEVEL> <message> k=v…" (pure, for tests and readers). */
export function formatLine(at: Date, level: LogLevel, message: string, fields?: Record<string, unknown>): string {
  return `${at.toISOString()} ${level.toUpperCase().padEnd(5)} ${message.replace(/\n/g, " | ")}${formatFields(fields)}\n`;
}

/** Where progress lines go: an update's log (UpdateLog), or the journal alone (journalOnly). */
export interface LineSink {
  write(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  sync(): void;
}

function mirrorLine(mirror: ConsolaInstance, level: LogLevel, message: string, fields?: Record<string, unknown>): void {
  const text = `${message}${formatFields(fields)}`;
  if (level === "error") mirror.error(text);
  else if (level === "warn") mirror.warn(text);
  else if (level === "debug") mirror.debug(text);
  else mirror.info(text);
}

/** The console (the journal under systemd) alone: what an update says before its log file exists. */
export const journalOnly: LineSink = {
  write: (level, message, fields) => mirrorLine(defaultLog, level, message, fields),
  sync: () => {},
};

export class UpdateLog implements LineSink {
  private fd: number | undefined;
  private readonly started = performance.now();
  private phaseName: string | undefined;
  private phaseStart = 0;

  private constructor(
    readonly path: string,
    private readonly mirror: ConsolaInstance | null,
  ) {}

  /**
   * Opens (creating, 0600) or reopens for appending: the boot-time restore appends to the log
   * the update started. `mirror: null` keeps lines out of the console (tests).
   */
  static open(logDir: string, updateId: string, opts: { mirror?: ConsolaInstance | null } = {}): UpdateLog {
    const path = updateLogPath(logDir, updateId);
    try {
      ensureDir(logDir, 0o700);
      const l = new UpdateLog(path, opts.mirror === undefined ? defaultLog : opts.mirror);
      l.fd = openSync(path, "a", 0o600);
      fsyncDir(logDir); // the file's name must survive the jump too
      return l;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new NvwaError("state.write", `cannot open the update log ${path}: ${err.code ?? err.message}`, {
        hint: `check that log_dir (${logDir}) is on a writable, persistent filesystem`,
        cause: e,
        details: { path },
      });
    }
  }

  /** Milliseconds since this log was opened (in this process). */
  elapsedMs(): number {
    return Math.round(performance.now() - this.started);
  }

  write(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    const line = formatLine(new Date(), level, message, fields);
    if (this.fd !== undefined) {
      try {
        writeSync(this.fd, line);
      } catch (e) {
        // A full disk must not abort an update half way; the journal still gets the line.
        this.mirror?.warn(`cannot append to ${this.path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
    }
    if (this.mirror) mirrorLine(this.mirror, level, message, fields);
  }

  debug(message: string, fields?: Record<string, unknown>): void {
    this.write("debug", message, fields);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.write("info", message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.write("warn", message, fields);
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.write("error", message, fields);
  }

  /**
   * Starts a phase: ends the previous one with its duration, then fsyncs, so what happened
   * before the boundary is on disk whatever happens next. Returns the previous phase's ms.
   */
  phase(name: string, fields?: Record<string, unknown>): number | undefined {
    const ended = this.endPhase();
    this.phaseName = name;
    this.phaseStart = performance.now();
    this.write("info", `phase ${name} begins`, fields);
    this.sync();
    return ended;
  }

  /** Ends the current phase (if any) with its duration and fsyncs. Returns its ms. */
  endPhase(fields?: Record<string, unknown>): number | undefined {
    if (this.phaseName === undefined) return undefined;
    const ms = Math.round(performance.now() - this.phaseStart);
    this.write("info", `phase ${this.phaseName} ends`, { ms, ...fields });
    this.phaseName = undefined;
    this.sync();
    return ms;
  }

  /** Records a protocol progress event as it is sent to the client. */
  event(e: ProgressEvent): void {
    this.write(e.level ?? "info", e.message, { kind: e.kind, phase: e.phase, target: e.target, ms: e.ms });
  }

  sync(): void {
    if (this.fd === undefined) return;
    try {
      fsyncSync(this.fd);
    } catch (e) {
      this.mirror?.warn(`cannot fsync ${this.path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    this.endPhase();
    this.sync();
    closeSync(this.fd);
    this.fd = undefined;
  }
}
