/** The CLI as a person meets it: real processes, real output, real exit codes. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { splitGlobal } from "../../src/cli/main.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");

function nvwa(...args: string[]): { code: number; out: string; err: string } {
  const p = Bun.spawnSync([process.execPath, MAIN, ...args], {
    env: { ...process.env, NVWA_CONFIG_DIR: "/nonexistent-nvwa-test" },
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("help", () => {
  for (const spelling of [["help"], ["h"], ["-h"], ["--help"]]) {
    test(spelling.join(" "), () => {
      const r = nvwa(...spelling);
      expect(r.code).toBe(0);
      for (const section of ["NAME:", "USAGE:", "COMMANDS:", "GLOBAL OPTIONS:"]) expect(r.out).toContain(section);
      for (const c of ["update", "check", "status", "init", "server", "help, h"]) expect(r.out).toMatch(new RegExp(`^   ${c} `, "m"));
      expect(r.out).not.toMatch(/^ {3}restore /m);
    });
  }
  test("help for a command", () => {
    const r = nvwa("help", "update");
    expect(r.code).toBe(0);
    expect(r.out).toContain("nvwa update <kernel-version | --latest>");
    expect(r.out).toContain("--append PARAMS");
    expect(nvwa("update", "--help").out).toBe(r.out);
    expect(nvwa("h", "update").out).toBe(r.out);
  });
  test("h is help's alias, not a prefix: `nvwa hh` is unknown", () => {
    expect(nvwa("hh").code).toBe(2);
  });
  test("no command prints help and fails", () => {
    const r = nvwa();
    expect(r.code).toBe(2);
    expect(r.out).toContain("USAGE:");
  });
  test("--version", () => {
    expect(nvwa("--version").out).toMatch(/^nvwa \d+\.\d+\.\d+/);
  });
});

describe("bad arguments: one line, a hint, exit 2, no stack trace", () => {
  const cases: [string[], string][] = [
    [["updte", "6.1"], "did you mean `nvwa update`?"],
    [["update"], "`nvwa update` needs <kernel-version> or --latest"],
    [["update", "6.1", "--apend", "x"], "did you mean --append?"],
    [["update", "6.1", "6.2"], 'unexpected argument "6.2"'],
    [["update", "6.1", "--append"], 'option "--append" needs a value'],
    [["update", "6.1", "--latest"], "takes a kernel version or --latest, not both"],
    [["status", "--timeout", "5"], "--timeout only means something with --wait"],
    [["status", "--jsn"], "did you mean --json?"],
    [["--bogus"], 'unknown global option "--bogus"'],
    [["help", "nope"], 'no command "nope"'],
  ];
  for (const [args, want] of cases) {
    test(args.join(" "), () => {
      const r = nvwa(...args);
      expect(r.code).toBe(2);
      expect(r.err).toContain(want);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).not.toContain("    at ");
    });
  }
});

describe("global options", () => {
  test("the original's `nvwa -server 1` means `nvwa server`", () => {
    expect(splitGlobal(["-server", "1"])).toEqual({ command: "server", rest: [], help: false, version: false });
  });
  test("--config-dir before the command sets the config dir", () => {
    const before = process.env.NVWA_CONFIG_DIR;
    splitGlobal(["--config-dir", "/tmp/x", "status"]);
    expect(process.env.NVWA_CONFIG_DIR).toBe("/tmp/x");
    process.env.NVWA_CONFIG_DIR = before;
  });
});
