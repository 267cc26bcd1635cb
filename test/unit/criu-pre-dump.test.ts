/**
 * Pre-dumps (enable_pre_dump): when to stop, the command lines, which targets get none, and that
 * the chain of round directories is made durable with the final images. criu pre-dump itself runs
 * only in the x86_64 guest: this host's kernel lacks soft-dirty (test/guest/scenarios/predump).
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chainOptions, dumpArgv, preDumpArgv } from "../../src/criu/argv.ts";
import { removeImages, syncImages } from "../../src/criu/images.ts";
import { nextPreDumpRound, PRE_DUMP_LIMITS } from "../../src/criu/pre-dump.ts";
import { finalDumpOptions, hasPrivateHugetlb, preDumpRefusal } from "../../src/update/pre-dump.ts";
import { readdirSync } from "node:fs";
import type { PlannedTarget } from "../../src/criu/plan.ts";

const planned = (): PlannedTarget => ({
  kind: "pid",
  name: "4242",
  rootPid: 4242,
  rootStartTime: 1,
  comm: "memhog",
  cmdline: ["memhog"],
  processes: [4242],
  pids: [4242],
  stoppedBefore: [],
  imagesDir: "/var/nvwa/running/4242",
  shellJob: false,
  argv: [],
});

describe("how many rounds", () => {
  const r = (pagesWritten: number, ms = 1000) => ({ pagesWritten, ms });
  test("the first round always; another while the last still halved the one before", () => {
    expect(nextPreDumpRound([])).toEqual({ again: true });
    expect(nextPreDumpRound([r(262144)])).toEqual({ again: true });
    expect(nextPreDumpRound([r(262144), r(5000)])).toEqual({ again: true });
    expect(nextPreDumpRound([r(262144), r(5000), r(4000)])).toEqual({ again: false, why: "the dirty set no longer halves (5000 → 4000 pages)" });
  });
  test("a small round, the round count and the time budget end it", () => {
    expect(nextPreDumpRound([r(262144), r(1000)])).toEqual({ again: false, why: "the last round wrote only 1000 pages" });
    const many = [r(1 << 20), r(1 << 18), r(1 << 16), r(1 << 14)];
    expect(nextPreDumpRound(many)).toEqual({ again: false, why: `${PRE_DUMP_LIMITS.maxRounds} rounds` });
    expect(nextPreDumpRound([r(1 << 20, 130_000)])).toEqual({ again: false, why: "130 s spent (budget 120 s)" });
  });
  test("a tree that dirties memory as fast as it is written stops after the second round", () => {
    expect(nextPreDumpRound([r(100_000), r(90_000)]).again).toBe(false);
  });
});

describe("command lines", () => {
  test("pre-dump: memory tracking, the parent relative to its own directory, read mode, stats; nothing about sockets or locks", () => {
    expect(preDumpArgv({ pid: 4242, imagesDir: "/var/nvwa/running/4242/pre-2", prevImagesDir: "../pre-1" })).toEqual([
      "pre-dump", "--tree", "4242", "--images-dir", "/var/nvwa/running/4242/pre-2", "--log-file", "pre-dump.log",
      "--track-mem", "--prev-images-dir", "../pre-1", "--pre-dump-mode=read", "--display-stats",
    ]);
    const first = preDumpArgv({ pid: 4242, imagesDir: "/d/pre-1", verbosity: 4 });
    expect(first).not.toContain("--prev-images-dir");
    expect(first).toContain("-v4");
    for (const flag of ["--leave-stopped", "--tcp-established", "--shell-job", "--network-lock", "--auto-dedup"]) expect(first).not.toContain(flag);
    expect(() => preDumpArgv({ pid: 0, imagesDir: "/d" })).toThrow(RangeError);
  });
  test("the final dump gets --track-mem with the parent (without --track-mem criu writes everything again)", () => {
    expect(chainOptions("pre-2")).toEqual(["--track-mem", "--prev-images-dir", "pre-2"]);
    expect(finalDumpOptions({ rounds: [{ dir: "pre-1", ms: 1, bytes: 1 }], parent: "pre-1" })).toEqual(["--track-mem", "--prev-images-dir", "pre-1"]);
    expect(finalDumpOptions({ rounds: [], skipped: "no soft-dirty" })).toEqual([]);
    expect(finalDumpOptions(undefined)).toEqual([]);
    const argv = [...dumpArgv({ pid: 7, imagesDir: "/d", shellJob: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, pinMemory: false, displayStats: true }), ...chainOptions("pre-1")];
    expect(argv.filter((a) => a === "--track-mem")).toHaveLength(1);
  });
});

describe("who gets none", () => {
  test("no soft-dirty (arm64, or a kernel without CONFIG_MEM_SOFT_DIRTY), or a tree stopped before the update", () => {
    const t = planned();
    expect(preDumpRefusal(t, true)).toBeNull();
    expect(preDumpRefusal(t, false)).toContain("no soft-dirty tracking");
    expect(preDumpRefusal(t, false)).toContain("arm64 has none");
    expect(preDumpRefusal({ ...t, stoppedBefore: [4242] }, true)).toContain("criu pre-dumps only running tasks");
  });
  test("private hugetlb memory with a criu older than 3.18 (whose restore of it from a chain hangs)", () => {
    const t = planned();
    expect(preDumpRefusal(t, true, { criuVersion: "3.17.1", privateHugetlb: true })).toContain("private hugetlb memory");
    expect(preDumpRefusal(t, true, { criuVersion: "4.1.1", privateHugetlb: true })).toBeNull();
    expect(preDumpRefusal(t, true, { criuVersion: "3.17.1", privateHugetlb: false })).toBeNull();
    const smaps = (flags: string) => `7f0000000000-7f0000200000 rw-p 00000000 00:0f 1 /anon_hugepage (deleted)\nSize: 2048 kB\nVmFlags: ${flags}\n`;
    expect(hasPrivateHugetlb(smaps("rd wr mr mw me de ht"))).toBe(true);
    expect(hasPrivateHugetlb(smaps("rd wr sh mr mw me ms de ht"))).toBe(false); // shared: not the hanging case
    expect(hasPrivateHugetlb(smaps("rd wr mr mw me ac"))).toBe(false);
  });
});

describe("the chain on disk", () => {
  test("syncImages flushes the rounds the parent link chains to, and counts their bytes; removeImages takes them away", () => {
    const dir = mkdtempSync(join(tmpdir(), "nvwa-chain-"));
    try {
      mkdirSync(join(dir, "pre-1"));
      mkdirSync(join(dir, "pre-2"));
      writeFileSync(join(dir, "pre-1", "pages-1.img"), new Uint8Array(8192));
      writeFileSync(join(dir, "pre-2", "pages-1.img"), new Uint8Array(4096));
      symlinkSync("../pre-1", join(dir, "pre-2", "parent"));
      writeFileSync(join(dir, "pages-1.img"), new Uint8Array(100));
      symlinkSync("pre-2", join(dir, "parent"));
      writeFileSync(join(dir, "dump.log"), "log");
      mkdirSync(join(dir, "unrelated"));
      writeFileSync(join(dir, "unrelated", "x"), new Uint8Array(50));
      expect(syncImages(dir)).toBe(8192 + 4096 + 100 + 3);
      removeImages(dir);
      expect(readdirSync(dir)).toEqual(["dump.log"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
