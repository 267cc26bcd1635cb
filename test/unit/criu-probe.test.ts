/** Parsing what criu says about itself (texts as printed by criu 3.17, 4.1.1 and 4.2.1). */
import { expect, test } from "bun:test";
import { featureSupported, helpHasOption, parseCheckOutput, parseCriuVersion, versionAtLeast } from "../../src/criu/probe.ts";

test("parseCriuVersion: release and git builds", () => {
  expect(parseCriuVersion("Version: 4.1.1\n")).toEqual({ text: "4.1.1", major: 4, minor: 1, patch: 1 });
  expect(parseCriuVersion("Version: 3.17\nGitID: v3.17-12-gdeadbee\n")).toEqual({ text: "3.17", major: 3, minor: 17, patch: 0, gitId: "v3.17-12-gdeadbee" });
  expect(parseCriuVersion("criu: command not found")).toBeNull();
});

test("versionAtLeast", () => {
  const v = { text: "4.1.1", major: 4, minor: 1, patch: 1 };
  expect(versionAtLeast(v, 4, 1, 1)).toBe(true);
  expect(versionAtLeast(v, 4, 2)).toBe(false);
  expect(versionAtLeast(v, 3, 17)).toBe(true);
});

const HELP_41 = `  --network-lock METHOD network locking/unlocking method; argument
                        can be 'nftables' or 'iptables' (default).
  -j|--shell-job        allow one to dump and restore shell jobs
  -l|--file-locks       handle file locks, for safety, only used for container
  --display-stats       print out dump/restore stats
`;

test("helpHasOption: whole option names only", () => {
  expect(helpHasOption(HELP_41, "network-lock")).toBe(true);
  expect(helpHasOption(HELP_41, "shell-job")).toBe(true);
  expect(helpHasOption(HELP_41, "pin-memory")).toBe(false);
  expect(helpHasOption(HELP_41, "network")).toBe(false);
  expect(helpHasOption(`${HELP_41}  --pin-memory          use pin memory method for checkpoint and restore\n`, "pin-memory")).toBe(true);
});

test("parseCheckOutput", () => {
  expect(parseCheckOutput(0, "Warn  (criu/kerndat.c:1285): Can't keep kdat cache on non-tempfs\nLooks good.\n")).toEqual({
    ok: true,
    message: "Warn  (criu/kerndat.c:1285): Can't keep kdat cache on non-tempfs / Looks good.",
  });
  const bad = parseCheckOutput(1, "Error (criu/vdso.c:214): vdso: Failed to fill self vdso symtable\nError (criu/kerndat.c:1906): kerndat_vdso_fill_symtable failed when initializing kerndat.\n");
  expect(bad.ok).toBe(false);
  expect(bad.message).toContain("Failed to fill self vdso symtable");
});

test("featureSupported", () => {
  expect(featureSupported(0, "network_lock_nftables is supported\n", "network_lock_nftables")).toBe(true);
  expect(featureSupported(1, "Error (criu/util.c:1722): iptables-legacy-save -V failed\n", "has_ipt_legacy")).toBe(false);
});
