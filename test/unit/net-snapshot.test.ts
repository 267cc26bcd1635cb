import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNvwaError, type NvwaError } from "../../src/errors.ts";
import type { NetSnapshot } from "../../src/net/model.ts";
import { consumeNetSnapshot, netSnapshotPath, readNetSnapshot, writeNetSnapshot } from "../../src/net/snapshot-file.ts";

const SNAP: NetSnapshot = {
  format: "nvwa-net",
  version: 1,
  savedAt: "2026-12-01T17:06:03.829Z",
  bootId: "a6593325-dafb-4478-9ecb-a47d2e26eeca",
  kernel: "6.1.0-28-arm64",
  links: [
    { name: "lo", index: 1, kind: null, mac: "00:00:00:00:00:00", mtu: 65536, up: true, loopback: true, master: null, parent: null, vlan: null },
    { name: "eth0", index: 2, kind: null, mac: "52:54:00:12:34:56", mtu: 1500, up: true, loopback: false, master: null, parent: null, vlan: null },
    { name: "eth0.7", index: 3, kind: "vlan", mac: "52:54:00:12:34:56", mtu: 1500, up: true, loopback: false, master: null, parent: "eth0", vlan: { id: 7, protocol: "802.1Q" } },
  ],
  addresses: [
    { link: "eth0", family: "inet", local: "10.0.0.5", prefixlen: 24, peer: null, broadcast: "10.0.0.255", label: null, scope: 0, flags: 128, proto: null, validLft: null, preferredLft: null, metric: null },
    { link: "eth0", family: "inet6", local: "2001:db8::5", prefixlen: 64, peer: null, broadcast: null, label: null, scope: 0, flags: 128, proto: null, validLft: 3000, preferredLft: 1000, metric: null },
  ],
  routes: [
    { family: "inet", table: 254, type: 1, protocol: 3, scope: 0, tos: 0, dst: null, dstLen: 0, src: null, srcLen: 0, priority: null, prefsrc: null, dev: "eth0", gateway: "10.0.0.1", onlink: false, multipath: null, metrics: { "2": 1400 }, pref: null },
  ],
  rules: [
    { family: "inet", priority: 1000, action: 1, table: 100, src: "10.0.0.0", srcLen: 24, dst: null, dstLen: 0, tos: 0, iif: null, oif: null, fwmark: null, fwmask: null, goto: null, invert: false, suppressPrefixlen: null, suppressIfgroup: null, uidRange: null, ipProto: null, sport: null, dport: null, l3mdev: null, flow: null, tunId: null, protocol: 0, extra: [] },
  ],
  skipped: [],
};

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "nvwa-net-snap-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function errorOf(fn: () => unknown): NvwaError {
  try {
    fn();
  } catch (e) {
    if (isNvwaError(e)) return e;
    throw e;
  }
  throw new Error("expected an NvwaError, nothing was thrown");
}

function writeRaw(path: string, data: unknown): void {
  writeFileSync(path, typeof data === "string" ? data : JSON.stringify(data));
}

describe("snapshot file", () => {
  test("written atomically next to the manifest, private, and read back identical", () => {
    const path = netSnapshotPath(dir);
    expect(path).toBe(join(dir, "net.json"));
    writeNetSnapshot(path, SNAP);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readNetSnapshot(path)).toEqual(SNAP);
    expect(JSON.parse(readFileSync(path, "utf8")).version).toBe(1);
  });

  test("writing a snapshot that would not read back is refused (a bug, caught before the jump)", () => {
    const path = netSnapshotPath(dir);
    const bad = { ...SNAP, addresses: [{ ...SNAP.addresses[0], link: "eth9" }] } as NetSnapshot;
    expect(errorOf(() => writeNetSnapshot(path, bad)).code).toBe("net.snapshot-invalid");
    expect(existsSync(path)).toBe(false);
  });

  const corruptions: [string, unknown, string][] = [
    ["empty file", "", "not valid JSON"],
    ["truncated JSON", JSON.stringify(SNAP).slice(0, 300), "not valid JSON"],
    ["an array", "[]", "not a JSON object"],
    ["another format", { ...SNAP, format: "ip-save" }, 'format is "ip-save"'],
    ["missing field", { ...SNAP, routes: undefined }, "routes"],
    ["unknown field (a typo is not silently ignored)", { ...SNAP, linkz: [] }, "linkz"],
    ["IPv4 prefix 33", { ...SNAP, addresses: [{ ...SNAP.addresses[0], prefixlen: 33 }] }, "addresses.0: prefixlen is too long"],
    ["IPv6 text in an IPv4 address", { ...SNAP, addresses: [{ ...SNAP.addresses[0], local: "2001:db8::1" }] }, "does not match its family"],
    ["bad gateway", { ...SNAP, routes: [{ ...SNAP.routes[0], gateway: "10.0.0.300" }] }, "routes.0.gateway"],
    ["MTU as text", { ...SNAP, links: [{ ...SNAP.links[0], mtu: "1500" }, ...SNAP.links.slice(1)] }, "links.0.mtu"],
    ["interface name too long", { ...SNAP, links: [...SNAP.links, { ...SNAP.links[1], name: "averyveryverylongname" }] }, "links.3.name"],
    ["duplicate link", { ...SNAP, links: [...SNAP.links, SNAP.links[1]] }, "two links have the same name"],
    ["route through an unsaved link", { ...SNAP, routes: [{ ...SNAP.routes[0], dev: "wlan0" }] }, "not saved: wlan0"],
    ["VLAN id out of range", { ...SNAP, links: [SNAP.links[0], SNAP.links[1], { ...SNAP.links[2], vlan: { id: 5000, protocol: "802.1Q" } }] }, "links.2.vlan.id"],
  ];
  for (const [what, content, says] of corruptions) {
    test(`corrupt (${what}) → net.snapshot-corrupt naming the file and the problem`, () => {
      const path = netSnapshotPath(dir);
      writeRaw(path, content);
      const e = errorOf(() => readNetSnapshot(path));
      expect(e.code).toBe("net.snapshot-corrupt");
      expect(e.message).toContain(path);
      expect(e.message).toContain(says);
      expect(e.hint).toContain("nothing was applied");
    });
  }

  test("another format version is refused with its own code", () => {
    const path = netSnapshotPath(dir);
    writeRaw(path, { ...SNAP, version: 2 });
    const e = errorOf(() => readNetSnapshot(path));
    expect(e.code).toBe("net.snapshot-version");
    expect(e.message).toContain("version 2");
  });

  test("no file → net.snapshot-missing", () => {
    expect(errorOf(() => readNetSnapshot(netSnapshotPath(dir))).code).toBe("net.snapshot-missing");
  });

  test("consuming renames the file so it cannot be read (applied) again, and keeps it for inspection", () => {
    const path = netSnapshotPath(dir);
    writeNetSnapshot(path, SNAP);
    const moved = consumeNetSnapshot(path);
    expect(moved).toBe(`${path}.consumed`);
    expect(existsSync(path)).toBe(false);
    expect(errorOf(() => readNetSnapshot(path)).code).toBe("net.snapshot-missing");
    expect(readNetSnapshot(`${path}.consumed`)).toEqual(SNAP);
    // Twice is harmless: nothing left to consume.
    expect(consumeNetSnapshot(path)).toBeNull();
  });

  test("a later save then consume replaces the older consumed copy", () => {
    const path = netSnapshotPath(dir);
    writeNetSnapshot(path, SNAP);
    consumeNetSnapshot(path);
    const newer = { ...SNAP, kernel: "6.12.0" };
    writeNetSnapshot(path, newer);
    consumeNetSnapshot(path);
    expect(readNetSnapshot(`${path}.consumed`).kernel).toBe("6.12.0");
  });

  test("when the file cannot be retired, consuming fails with net.snapshot-consume and the file stays", () => {
    const path = netSnapshotPath(dir);
    writeNetSnapshot(path, SNAP);
    // A non-empty directory where the consumed copy would go: rename(2) refuses to replace it.
    mkdirSync(`${path}.consumed`);
    writeFileSync(join(`${path}.consumed`, "x"), "");
    const e = errorOf(() => consumeNetSnapshot(path));
    expect(e.code).toBe("net.snapshot-consume");
    expect(e.message).toContain(path);
    expect(existsSync(path)).toBe(true);
  });
});
