/**
 * Mutated configs must end in a clean NvwaError (one line, with a hint) or a valid config:
 * never another exception, a hang or a stack trace. Deterministic seed so a failure replays.
 */
import { expect, test } from "bun:test";
import { NvwaError } from "../../src/errors.ts";
import { parseConfigText, restoreFromParsed, serverFromParsed } from "../../src/config/load.ts";
import { RESTORE_KEYS, SERVER_KEYS } from "../../src/config/schema.ts";

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID_RESTORE = "pids:\n  - 14109\n  - 2200\nservices:\n  - redis\n  - nginx.service\nrestore_net: false\nenable_quick_kexec: false\nenable_pin_memory: false\nenbale_debug_mode: false\n";
const VALID_SERVER = "criu_dir: /var/nvwa/running/\ncriu_exe: /usr/sbin/criu\nkexec_exe: /usr/sbin/kexec\nsystemd_etc: /etc/systemd/system/\nlog_dir: /etc/nvwa/log/\n";

const ODD_VALUES = ["~", "null", "[]", "{}", "[1, [2, [3]]]", "{a: 1}", "!!binary aGVsbG8=", "0x1F", "0o17", "1e400", "-0", ".inf", ".nan",
  "'str'", '"\\u0000"', "yes", "&a 1", "*a", "!!str 5", "|\n  block", ">-\n  folded", "2026-12-01", "<<: {x: 1}", "!custom 1", "9".repeat(400)];

function mutate(r: () => number, base: string): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const kind = Math.floor(r() * 9);
  const lines = base.split("\n");
  switch (kind) {
    case 0: // random bytes
      return Array.from({ length: Math.floor(r() * 200) }, () => String.fromCharCode(Math.floor(r() * 256))).join("");
    case 1: // truncation
      return base.slice(0, Math.floor(r() * base.length));
    case 2: { // swap a value's type
      const i = Math.floor(r() * lines.length);
      const line = lines[i] ?? "";
      lines[i] = line.includes(":") ? `${line.split(":")[0]}: ${pick(ODD_VALUES)}` : `  - ${pick(ODD_VALUES)}`;
      return lines.join("\n");
    }
    case 3: { // deep nesting
      const depth = 10 + Math.floor(r() * 2000);
      return r() < 0.5 ? `pids: ${"[".repeat(depth)}1${"]".repeat(depth)}\n` : `pids:\n${Array.from({ length: Math.min(depth, 400) }, (_, d) => `${"  ".repeat(d + 1)}- `).join("\n")}1\n`;
    }
    case 4: // huge values
      return r() < 0.5 ? `pids: [${Array.from({ length: 5000 }, (_, i) => i + 2).join(",")}]\n` : `criu_dir: /${"x".repeat(100000)}\n`;
    case 5: { // alias bomb
      // Nine to the twelfth nodes once expanded; all inside a valid key so the loader reaches them.
      let s = "&a0 [2, 3, 4, 5, 6, 7, 8, 9, 10]";
      for (let i = 1; i < 12; i++) s = `[&a${i} [${Array(9).fill(`*a${i - 1}`).join(", ")}], ${s}]`;
      return `pids: [${s}]\n`;
    }
    case 6: { // byte flips
      const b = Buffer.from(base);
      for (let n = 0; n < 1 + Math.floor(r() * 5); n++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      return b.toString("latin1");
    }
    case 7: // shuffled lines and indentation
      return lines.sort(() => r() - 0.5).map((l) => " ".repeat(Math.floor(r() * 3)) + l).join("\n");
    default: // insert YAML punctuation
      return base.slice(0, Math.floor(r() * base.length)) + pick(["[", "]", "{", "}", ":", "- ", "&", "*", "!", "|", ">", "'", '"', "%YAML 1.2\n", "---\n", "\t", "#"]) + base.slice(Math.floor(r() * base.length));
  }
}

test("1200 mutated configs end in a clean error or a valid config", () => {
  const r = rng(20261201);
  let valid = 0;
  let rejected = 0;
  let multi = 0;
  for (let i = 0; i < 1200; i++) {
    const restore = i % 2 === 0;
    const text = mutate(r, restore ? VALID_RESTORE : VALID_SERVER);
    try {
      const parsed = parseConfigText("c.yaml", text, restore ? RESTORE_KEYS : SERVER_KEYS);
      if (restore) restoreFromParsed("c.yaml", parsed);
      else serverFromParsed(parsed);
      valid++;
    } catch (e) {
      if (!(e instanceof NvwaError)) throw new Error(`case ${i} threw ${String(e)} for ${JSON.stringify(text.slice(0, 200))}`);
      // One problem: one line naming its position. Several: a count, then one line each.
      const lines = e.message.split("\n");
      if (lines.length === 1) {
        expect(e.message.length).toBeLessThan(1000);
        expect(e.message).toStartWith("c.yaml");
      } else {
        expect(e.code).toBe("config.invalid");
        expect(lines[0]).toBe(`${lines.length - 1} problems in the config files:`);
        for (const l of lines.slice(1)) {
          expect(l).toStartWith("  c.yaml:");
          expect(l.length).toBeLessThan(400);
        }
        multi++;
      }
      expect(e.hint).toBeString();
      rejected++;
    }
  }
  expect(valid + rejected).toBe(1200);
  expect(multi).toBeGreaterThan(0);
  // Both outcomes must occur, or the mutator is not exercising the loader.
  expect(valid).toBeGreaterThan(10);
  expect(rejected).toBeGreaterThan(500);
}, 60_000);
