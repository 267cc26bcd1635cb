/**
 * The jump's guards. fastJump() is called on this host only to prove it refuses; the pure
 * jumpRefusal() covers every other combination without ever reaching the syscall.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fastJump, jumpRefusal, type JumpContext } from "../../src/update/jump.ts";
import { newManifest, serializeManifest, type Manifest } from "../../src/state/manifest.ts";
import { isNvwaError } from "../../src/errors.ts";
import { assertKexecLoaded, isKexecLoaded, parseLockdown, readKexecLoaded } from "../../src/kexec/state.ts";

const PATH = "/var/nvwa/running/manifest.json";
function manifestText(updateId: string, phase: Manifest["phase"]): string {
  const m = newManifest({
    updateId,
    kernel: { from: "6.1", to: "6.12" },
    criuDir: "/var/nvwa/running",
    options: { debug: false, pinMemory: false, restoreNet: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
  });
  return serializeManifest({ ...m, phase });
}
const armed: JumpContext = { env: { NVWA_ALLOW_REBOOT: "1" }, manifestText: manifestText("u-42", "committed"), kexecLoaded: true };

describe("jumpRefusal", () => {
  test("every condition met: no refusal (committed, or jumping: written just before the jump)", () => {
    expect(jumpRefusal("u-42", PATH, armed)).toBeNull();
    expect(jumpRefusal("u-42", PATH, { ...armed, manifestText: manifestText("u-42", "jumping") })).toBeNull();
  });
  const refusals: [string, Partial<JumpContext>, string][] = [
    ["not armed by the environment", { env: {} }, "NVWA_ALLOW_REBOOT=1 is not set"],
    ["armed with another value", { env: { NVWA_ALLOW_REBOOT: "yes" } }, "NVWA_ALLOW_REBOOT=1 is not set"],
    ["manifest unreadable", { manifestText: null }, "cannot be read"],
    ["manifest not JSON", { manifestText: "{" }, "the manifest is damaged"],
    ["manifest that is JSON but not a manifest", { manifestText: JSON.stringify({ updateId: "u-42", phase: "committed" }) }, "the manifest is damaged"],
    ["manifest of another update", { manifestText: manifestText("u-41", "committed") }, "belongs to update u-41"],
    ["update not committed", { manifestText: manifestText("u-42", "checkpointing") }, 'phase "checkpointing"'],
    ["nothing loaded", { kexecLoaded: false }, "kexec_loaded is 0"],
    ["no kexec in the kernel", { kexecLoaded: null }, "no kexec support"],
  ];
  for (const [name, ctx, words] of refusals) {
    test(`refuses: ${name}`, () => {
      const r = jumpRefusal("u-42", PATH, { ...armed, ...ctx });
      expect(r?.code).toBe("reboot.refused");
      expect(r?.message).toContain(words);
    });
  }
});

describe("fastJump on this host", () => {
  // The test environment must never be armed; if it were, the call below is not made at all.
  const unarmed = process.env.NVWA_ALLOW_REBOOT !== "1";
  test("the environment of the test run is not armed", () => {
    expect(unarmed).toBe(true);
  });
  test.skipIf(!unarmed)("refuses before touching anything", () => {
    let code: string | undefined;
    try {
      fastJump("u-42", PATH);
    } catch (e) {
      code = isNvwaError(e) ? e.code : "other";
    }
    expect(code).toBe("reboot.refused");
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
