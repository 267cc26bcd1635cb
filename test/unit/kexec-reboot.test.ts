/**
 * The jump's guards. rebootKexec() is called on this host only to prove it refuses; the pure
 * rebootRefusal() covers every other combination without ever reaching the syscall.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rebootKexec, rebootRefusal, type RebootArming, type RebootContext } from "../../ffi/reboot.ts";
import { isNvwaError } from "../../src/errors.ts";
import { assertKexecLoaded, isKexecLoaded, parseLockdown, readKexecLoaded } from "../../src/kexec/state.ts";

const committed: RebootArming = { kind: "committed-update", manifestPath: "/var/nvwa/running/manifest.json", updateId: "u-42" };
const armed: RebootContext = {
  env: { NVWA_ALLOW_REBOOT: "1" },
  manifestText: JSON.stringify({ id: "u-42", phase: "committed" }),
  kexecLoaded: true,
};

describe("rebootRefusal", () => {
  test("every condition met: no refusal", () => {
    expect(rebootRefusal(committed, armed)).toBeNull();
    expect(rebootRefusal({ kind: "disposable-machine" }, { ...armed, env: { NVWA_ALLOW_REBOOT: "1", NVWA_DISPOSABLE_MACHINE: "1" } })).toBeNull();
  });
  const refusals: [string, RebootArming, Partial<RebootContext>, string][] = [
    ["not armed by the environment", committed, { env: {} }, "NVWA_ALLOW_REBOOT=1 is not set"],
    ["armed with another value", committed, { env: { NVWA_ALLOW_REBOOT: "yes" } }, "NVWA_ALLOW_REBOOT=1 is not set"],
    ["disposable without the second switch", { kind: "disposable-machine" }, {}, "NVWA_DISPOSABLE_MACHINE=1 is not set"],
    ["manifest unreadable", committed, { manifestText: null }, "cannot be read"],
    ["manifest not JSON", committed, { manifestText: "{" }, "not valid JSON"],
    ["manifest of another update", committed, { manifestText: JSON.stringify({ id: "u-41", phase: "committed" }) }, "belongs to update u-41"],
    ["update not committed", committed, { manifestText: JSON.stringify({ id: "u-42", phase: "checkpointing" }) }, 'phase "checkpointing"'],
    ["nothing loaded", committed, { kexecLoaded: false }, "kexec_loaded is 0"],
    ["no kexec in the kernel", committed, { kexecLoaded: null }, "no kexec support"],
  ];
  for (const [name, arming, ctx, words] of refusals) {
    test(`refuses: ${name}`, () => {
      const r = rebootRefusal(arming, { ...armed, ...ctx });
      expect(r?.code).toBe("reboot.refused");
      expect(r?.message).toContain(words);
    });
  }
});

describe("rebootKexec on this host", () => {
  // The test environment must never be armed; if it were, the call below is not made at all.
  const unarmed = process.env.NVWA_ALLOW_REBOOT !== "1";
  test("the environment of the test run is not armed", () => {
    expect(unarmed).toBe(true);
  });
  test.skipIf(!unarmed)("refuses before touching anything, for both kinds of arming", () => {
    for (const arming of [committed, { kind: "disposable-machine" } as const]) {
      let code: string | undefined;
      try {
        rebootKexec(arming);
      } catch (e) {
        code = isNvwaError(e) ? e.code : "other";
      }
      expect(code).toBe("reboot.refused");
    }
  });
});

describe("kexec_loaded", () => {
  test("assertKexecLoaded: missing file, 0 and 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "nvwa-kl-"));
    try {
      const p = join(dir, "kexec_loaded");
      expect(() => assertKexecLoaded(p)).toThrow(/CONFIG_KEXEC_CORE/);
      writeFileSync(p, "0\n");
      expect(() => assertKexecLoaded(p)).toThrow(/no kernel is loaded/);
      expect(isKexecLoaded(p)).toBe(false);
      writeFileSync(p, "1\n");
      expect(() => assertKexecLoaded(p)).not.toThrow();
      expect(isKexecLoaded(p)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("on this host the real file agrees with assertKexecLoaded", () => {
    const v = readKexecLoaded();
    if (v === true) expect(() => assertKexecLoaded()).not.toThrow();
    else expect(() => assertKexecLoaded()).toThrow();
  });
  test("lockdown's active mode is the bracketed one", () => {
    expect(parseLockdown("[none] integrity confidentiality\n")).toBe("none");
    expect(parseLockdown("none [integrity] confidentiality")).toBe("integrity");
    expect(parseLockdown("")).toBeNull();
  });
});
