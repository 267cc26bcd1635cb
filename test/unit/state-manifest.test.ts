/**
 * The manifest: round trip, every way a damaged file is refused (with the code and hint the
 * restore side relies on), the phase rules, and the file written 0600 inside a 0700 dir.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError, type NvwaError } from "../../src/errors.ts";
import { manifestPath, readManifest, readManifestIfAny, updateManifest, writeManifest } from "../../src/state/manifest-file.ts";
import {
  UPDATE_PHASES,
  assertPhaseTransition,
  canTransition,
  highestSavedPid,
  newManifest,
  parseManifest,
  serializeManifest,
  stampTarget,
  withPhase,
  withTarget,
  type Manifest,
  type Target,
} from "../../src/state/manifest.ts";

const dir = mkdtempSync(join(tmpdir(), "nvwa-manifest-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function target(name: string, rootPid: number, criuDir: string, pids = [rootPid]): Target {
  return {
    kind: "pid",
    name,
    rootPid,
    pids,
    processes: [rootPid],
    stoppedBefore: [],
    cmdline: ["/usr/bin/python3", "counter.py"],
    imagesDir: join(criuDir, name),
    shellJob: false,
    tcpConnections: false,
    phase: "planned",
    timings: {},
  };
}

function sample(criuDir = "/var/nvwa/running"): Manifest {
  const m = newManifest({
    updateId: "20260101T000000Z-abcd",
    kernel: { from: "6.1.0-30-amd64", to: "6.12.9-amd64", loader: "kexec_file_load" },
    criuDir,
    options: { debug: false, pinMemory: false, restoreNet: true, tcpEstablished: true, extUnixSk: true, fileLocks: true, networkLock: "nftables", hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
    bootId: "1b6f7a42-0000-4000-8000-000000000001",
    now: 1_700_000_000_000,
  });
  return { ...m, targets: [target("948", 948, criuDir, [948, 949, 951]), { ...target("redis.service", 1200, criuDir), kind: "service", unit: "redis.service" }] };
}

function expectCode(f: () => unknown, code: string): NvwaError {
  try {
    f();
  } catch (e) {
    if (!isNvwaError(e)) throw e;
    expect(e.code).toBe(code);
    return e;
  }
  throw new Error(`expected ${code}, nothing thrown`);
}

describe("parse / serialize", () => {
  test("round trip", () => {
    const m = sample();
    expect(parseManifest(serializeManifest(m), "/x/manifest.json")).toEqual(m);
  });

  test("defaults fill fields older writers left out", () => {
    const raw = JSON.parse(serializeManifest(sample())) as { targets: Record<string, unknown>[] };
    delete raw.targets[0]?.stoppedBefore;
    delete raw.targets[0]?.tcpConnections;
    const m = parseManifest(JSON.stringify(raw), "/x");
    expect(m.targets[0]?.stoppedBefore).toEqual([]);
    expect(m.targets[0]?.tcpConnections).toBe(false);
  });

  test("empty, truncated, wrong type, unknown phase: state.manifest-corrupt with a hint", () => {
    const text = serializeManifest(sample());
    const empty = expectCode(() => parseManifest("", "/x/manifest.json"), "state.manifest-corrupt");
    expect(empty.message).toBe("/x/manifest.json is damaged: it is empty");
    expect(empty.hint).toContain("nvwa init");
    expect(expectCode(() => parseManifest(text.slice(0, text.length / 2), "/x"), "state.manifest-corrupt").message).toContain("not valid JSON");
    const badPid = text.replace('"rootPid": 948', '"rootPid": "948"');
    expect(expectCode(() => parseManifest(badPid, "/x"), "state.manifest-corrupt").message).toContain("targets.0.rootPid");
    const badPhase = text.replace('"phase": "planned",\n  "kernel"', '"phase": "exploded",\n  "kernel"');
    expect(expectCode(() => parseManifest(badPhase, "/x"), "state.manifest-corrupt").message).toContain("phase");
  });

  test("consistency: duplicate names, root outside its pids, images dir outside criu_dir", () => {
    const m = sample();
    const dup = { ...m, targets: [m.targets[0], m.targets[0]] };
    expect(expectCode(() => parseManifest(JSON.stringify(dup), "/x"), "state.manifest-corrupt").message).toContain("appears twice");
    const noRoot = withTarget(m, "948", (t) => ({ ...t, pids: [949] }));
    expect(expectCode(() => parseManifest(JSON.stringify(noRoot), "/x"), "state.manifest-corrupt").message).toContain("root pid 948");
    const escape = withTarget(m, "948", (t) => ({ ...t, imagesDir: "/etc" }));
    expect(expectCode(() => parseManifest(JSON.stringify(escape), "/x"), "state.manifest-corrupt").message).toContain("/etc");
  });

  test("another manifest version: its own code, saying which", () => {
    const e = expectCode(() => parseManifest(JSON.stringify({ ...sample(), version: 2 }), "/x"), "state.manifest-version");
    expect(e.message).toContain("version 2");
  });

  test("a bad target name cannot become a path", () => {
    const bad = withTarget(sample(), "948", (t) => ({ ...t, name: "../etc", imagesDir: "/var/nvwa/etc" }));
    expectCode(() => parseManifest(JSON.stringify(bad), "/x"), "state.manifest-corrupt");
  });
});

describe("phases", () => {
  test("the documented path forward", () => {
    const path = ["planned", "checkpointing", "dumped", "committed", "jumping", "restoring", "restored"] as const;
    for (let i = 1; i < path.length; i++) expect(canTransition(path[i - 1] as Manifest["phase"], path[i] as Manifest["phase"])).toBe(true);
  });

  test("rollback only before the commit; terminal phases stay", () => {
    expect(canTransition("checkpointing", "rolled-back")).toBe(true);
    expect(canTransition("dumped", "rolled-back")).toBe(true);
    expect(canTransition("committed", "rolled-back")).toBe(false);
    expect(canTransition("restore-failed", "restoring")).toBe(true);
    for (const p of UPDATE_PHASES) {
      expect(canTransition("rolled-back", p)).toBe(false);
      expect(canTransition("restored", p)).toBe(false);
    }
    expectCode(() => assertPhaseTransition("committed", "rolled-back"), "state.bad-transition");
    expect(() => assertPhaseTransition("dumped", "dumped")).not.toThrow();
  });

  test("withPhase closes the previous timing and opens the next", () => {
    const m = withPhase(sample(), "checkpointing", 1_700_000_000_500);
    expect(m.phase).toBe("checkpointing");
    expect(m.timings.planned).toEqual({ start: 1_700_000_000_000, end: 1_700_000_000_500 });
    expect(m.timings.checkpointing).toEqual({ start: 1_700_000_000_500 });
  });

  test("withTarget / stampTarget are immutable; unknown target named", () => {
    const m = sample();
    const n = withTarget(m, "948", (t) => stampTarget({ ...t, phase: "dumping" }, "dump", "start", 5));
    expect(m.targets[0]?.phase).toBe("planned");
    expect(n.targets[0]?.phase).toBe("dumping");
    expect(n.targets[0]?.timings.dump).toEqual({ start: 5 });
    expect(stampTarget(n.targets[0] as Target, "dump", "end", 9).timings.dump).toEqual({ start: 5, end: 9 });
    expectCode(() => withTarget(m, "nope", (t) => t), "state.no-such-target");
  });

  test("highestSavedPid covers threads and children", () => {
    expect(highestSavedPid(sample())).toBe(1200);
    expect(highestSavedPid({ ...sample(), targets: [] })).toBe(0);
  });
});

describe("manifest file", () => {
  test("written 0600 in a 0700 dir, read back equal, updated in one step", () => {
    const criuDir = join(dir, "running");
    const m = sample(criuDir);
    writeManifest(m);
    expect(statSync(criuDir).mode & 0o777).toBe(0o700);
    expect(statSync(manifestPath(criuDir)).mode & 0o777).toBe(0o600);
    expect(readManifest(criuDir)).toEqual(m);
    const next = updateManifest(criuDir, (x) => withPhase(x, "checkpointing", 2));
    expect(readManifest(criuDir).phase).toBe("checkpointing");
    expect(next.phase).toBe("checkpointing");
  });

  test("absent: null / state.no-manifest", () => {
    const empty = join(dir, "empty");
    expect(readManifestIfAny(empty)).toBeNull();
    expectCode(() => readManifest(empty), "state.no-manifest");
  });

  test("a truncated file on disk is refused as corrupt", () => {
    const criuDir = join(dir, "truncated");
    writeManifest(sample(criuDir));
    const text = readFileSync(manifestPath(criuDir), "utf8");
    writeFileSync(manifestPath(criuDir), text.slice(0, 100));
    expectCode(() => readManifest(criuDir), "state.manifest-corrupt");
  });

  test("a manifest made readable by others is tightened back to 0600 on read", () => {
    const criuDir = join(dir, "loose");
    writeManifest(sample(criuDir));
    chmodSync(manifestPath(criuDir), 0o644);
    readManifest(criuDir);
    expect(statSync(manifestPath(criuDir)).mode & 0o777).toBe(0o600);
  });
});
