/**
 * The command line the new kernel boots with: the running one (/proc/cmdline) without the
 * boot loader's BOOT_IMAGE=, minus what the user removes, plus what they append. Pure.
 *
 * Tokens follow the kernel's own parser (lib/cmdline.c next_arg): split on whitespace, double
 * quotes protect spaces, and in parameter names '-' and '_' are the same. Everything after a
 * lone "--" belongs to init, so appended kernel parameters go before it.
 */
import { ExitCode, NvwaError } from "../errors.ts";

/** COMMAND_LINE_SIZE on x86_64 and arm64, including the trailing NUL. */
export const COMMAND_LINE_SIZE = 2048;

function usage(message: string, hint: string, details: Record<string, unknown> = {}): NvwaError {
  return new NvwaError("kexec.bad-cmdline", message, { hint, exitCode: ExitCode.usage, details });
}

/** Splits a command line into tokens, keeping quotes as written. */
export function tokenize(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inQuote = false;
  let started = false;
  for (const c of s) {
    if (c === '"') {
      inQuote = !inQuote;
      cur += c;
      started = true;
    } else if (!inQuote && /\s/.test(c)) {
      if (started) out.push(cur);
      cur = "";
      started = false;
    } else {
      cur += c;
      started = true;
    }
  }
  if (inQuote) throw usage(`unbalanced double quote in ${JSON.stringify(s)}`, 'close the quote, e.g. foo="a b"', { text: s });
  if (started) out.push(cur);
  return out;
}

/** The parameter name of a token ("console" for console=ttyS0), with the kernel's '-'=='_'. */
export function paramKey(token: string): string {
  const unq = token.replaceAll('"', "");
  const eq = unq.indexOf("=");
  return (eq < 0 ? unq : unq.slice(0, eq)).replaceAll("-", "_");
}

/** The value of a token, or null when it has no '='. */
export function paramValue(token: string): string | null {
  const unq = token.replaceAll('"', "");
  const eq = unq.indexOf("=");
  return eq < 0 ? null : unq.slice(eq + 1);
}

function sameToken(a: string, b: string): boolean {
  return paramKey(a) === paramKey(b) && paramValue(a) === paramValue(b);
}

export interface CmdlineChanges {
  /** Parameters to add, as one string ("quiet foo=bar") or a list. */
  append?: string | string[];
  /** "name" removes every name / name=…; "name=value" removes exactly that one. */
  remove?: string | string[];
}

export interface ComposedCmdline {
  cmdline: string;
  removed: string[];
  /** Remove requests that matched nothing (worth a warning, not an error). */
  unmatched: string[];
  appended: string[];
}

function toTokens(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).flatMap(tokenize);
}

/** Pure: composes the new kernel's command line. Throws on quotes, NULs or excess length. */
export function composeCmdline(current: string, changes: CmdlineChanges = {}): ComposedCmdline {
  const all = tokenize(current.replace(/\0+$/, ""));
  const dd = all.indexOf("--");
  const kernel = (dd < 0 ? all : all.slice(0, dd)).filter((t) => paramKey(t) !== "BOOT_IMAGE");
  const init = dd < 0 ? [] : all.slice(dd);

  const removed: string[] = [];
  const unmatched: string[] = [];
  let kept = kernel;
  for (const r of toTokens(changes.remove)) {
    const exact = r.includes("=");
    const match = (t: string): boolean => (exact ? sameToken(t, r) : paramKey(t) === paramKey(r));
    const hits = kept.filter(match);
    if (hits.length === 0) unmatched.push(r);
    removed.push(...hits);
    kept = kept.filter((t) => !match(t));
  }

  const appended: string[] = [];
  for (const a of toTokens(changes.append)) {
    if (a === "--") throw usage('"--" cannot be appended', "parameters for init already follow the running command line's --");
    if (!kept.some((t) => sameToken(t, a))) {
      kept.push(a);
      appended.push(a);
    }
  }

  const cmdline = [...kept, ...init].join(" ");
  if (cmdline.includes("\0") || /[\r\n]/.test(cmdline)) {
    throw usage("the command line contains a NUL or newline", "pass parameters as plain text", { cmdline });
  }
  const bytes = Buffer.byteLength(cmdline) + 1;
  if (bytes > COMMAND_LINE_SIZE) {
    throw usage(
      `the new command line is ${bytes} bytes with its NUL; the kernel accepts at most ${COMMAND_LINE_SIZE}`,
      "remove parameters with --remove",
      { bytes },
    );
  }
  return { cmdline, removed, unmatched, appended };
}

/** Pure: the value of the last occurrence of a parameter (the kernel's "last one wins"), or null. */
export function findParam(cmdline: string, key: string): string | null {
  const k = key.replaceAll("-", "_");
  let found: string | null = null;
  const all = tokenize(cmdline);
  const dd = all.indexOf("--");
  for (const t of dd < 0 ? all : all.slice(0, dd)) {
    if (paramKey(t) === k) found = paramValue(t) ?? "";
  }
  return found;
}
