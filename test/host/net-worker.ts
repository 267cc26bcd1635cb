/**
 * Runs one network save/restore scenario inside a fresh network namespace and prints what
 * happened as one JSON object on stdout. Started by test/host/net.test.ts as
 * `unshare -n bun test/host/net-worker.ts <scenario> <dir>`: the test process cannot unshare
 * itself, and the namespace keeps every change away from this host's real network.
 *
 * The `ip` tool is used here to build and inspect the network (and to play "the new boot");
 * nvwa itself only ever speaks rtnetlink.
 */
import { writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { isNvwaError } from "../../src/errors.ts";
import { saveNetwork } from "../../src/net/save.ts";
import { readNetSnapshot, writeNetSnapshot, netSnapshotPath } from "../../src/net/snapshot-file.ts";
import { restoreNetwork } from "../../src/net/restore.ts";

function ip(...args: string[]): string {
  const r = Bun.spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}
function ipJson(...args: string[]): unknown {
  const out = ip("-j", ...args).trim();
  return out === "" ? [] : JSON.parse(out);
}
function sh(lines: string): void {
  for (const line of lines.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))) {
    ip(...line.split(/\s+/));
  }
}

/** Everything `ip` shows about the namespace, for the test to compare. */
function view(): Record<string, unknown> {
  return {
    links: ipJson("-d", "link", "show"),
    addrs: ipJson("addr", "show"),
    routes4: ipJson("-4", "route", "show", "table", "all"),
    routes6: ipJson("-6", "route", "show", "table", "all"),
    rules4: ipJson("-4", "rule", "show"),
    rules6: ipJson("-6", "rule", "show"),
  };
}

const BR0_MAC = "02:aa:00:00:00:01";
const V0_MAC = "02:bb:00:00:00:01";

/** The old boot: a bridge (standing in for dummy, which this host's kernel lacks), a veth
 * pair with one end in the bridge, v4+v6 addresses, routes in main and custom tables, rules. */
function oldBoot(): void {
  sh(`
    link set lo up
    link add br0 address ${BR0_MAC} type bridge
    link set br0 mtu 1400 up
    link add v0 address ${V0_MAC} type veth peer name v1
    link set v0 mtu 1480 up
    link set v1 master br0 up
    addr add 10.1.0.1/24 dev br0
    addr add 10.1.0.2/24 dev br0
    addr add 2001:db8:1::1/64 dev br0 nodad
    addr add 10.2.0.1/24 dev v0
    addr add 10.3.0.1 peer 10.3.0.2 dev v0
    addr add 2001:db8:2::1/64 dev v0 nodad
    route add 10.9.0.0/16 via 10.1.0.254
    route add 10.10.0.0/16 via 10.2.0.254 metric 50
    route add default via 10.2.0.254 metric 100
    route add blackhole 10.66.0.0/16
    route add 10.8.0.0/16 via 10.1.0.254 table 100 mtu 1300
    route add 10.11.0.0/16 dev br0 scope link table 100
    route add 10.7.0.0/16 table 1000 nexthop via 10.1.0.254 weight 2 nexthop via 10.2.0.254
    -6 route add 2001:db8:9::/48 via 2001:db8:1::fe dev br0
    -6 route add 2001:db8:8::/48 via 2001:db8:2::fe dev v0 table 100 metric 7
    -6 route add default via 2001:db8:2::fe dev v0 metric 2048
    rule add from 10.1.0.0/24 table 100 prio 1000
    rule add fwmark 0x10/0xff iif v0 table 1000 prio 1001
    rule add not to 10.5.0.0/16 uidrange 100-200 ipproto tcp dport 80-90 prohibit prio 1002
    -6 rule add from 2001:db8:1::/64 table 100 prio 1000
    -6 rule add to 2001:db8:7::/48 oif v0 table 100 prio 1003
  `);
}

const SAVED_RULE_PRIOS = ["1000", "1001", "1002"];
const SAVED_RULE6_PRIOS = ["1000", "1003"];

/** What a new boot looks like before nvwa restores: only hardware-ish links, no configuration. */
function newBoot(options: { keepBridge?: boolean } = {}): void {
  for (const p of SAVED_RULE_PRIOS) ip("-4", "rule", "del", "prio", p);
  for (const p of SAVED_RULE6_PRIOS) ip("-6", "rule", "del", "prio", p);
  ip("-4", "route", "flush", "table", "100");
  ip("-4", "route", "flush", "table", "1000");
  ip("-6", "route", "flush", "table", "100");
  ip("-4", "route", "flush", "table", "main", "proto", "boot");
  ip("-6", "route", "flush", "table", "main", "proto", "boot");
  ip("addr", "flush", "dev", "v0");
  ip("-6", "addr", "flush", "dev", "v0");
  ip("link", "set", "v0", "down", "mtu", "1500");
  if (options.keepBridge === true) {
    ip("addr", "flush", "dev", "br0");
  } else {
    ip("link", "del", "br0");
  }
}

function errorJson(e: unknown): unknown {
  if (isNvwaError(e)) return { code: e.code, message: e.message, hint: e.hint };
  return { code: "not-nvwa-error", message: String(e) };
}

function main(): Record<string, unknown> {
  const [scenario, dir] = process.argv.slice(2);
  if (scenario === undefined || dir === undefined) throw new Error("usage: net-worker.ts <scenario> <dir>");
  const path = netSnapshotPath(dir);

  switch (scenario) {
    case "roundtrip": {
      oldBoot();
      const before = view();
      const snap = saveNetwork();
      writeNetSnapshot(path, snap);
      const reread = readNetSnapshot(path);
      newBoot();
      const flushed = view();
      const first = restoreNetwork(path);
      const after = view();
      const fileGoneAfterFirst = !existsSync(path);
      // Idempotency: the same snapshot applied on top of the restored network.
      writeNetSnapshot(path, snap);
      const second = restoreNetwork(path);
      const afterSecond = view();
      return {
        snapshot: snap,
        rereadEqual: JSON.stringify(reread) === JSON.stringify(snap),
        before,
        flushed,
        after,
        afterSecond,
        first,
        second,
        fileGoneAfterFirst,
        consumedExists: existsSync(`${path}.consumed`),
      };
    }
    case "new-boot-config": {
      oldBoot();
      const snap = saveNetwork();
      writeNetSnapshot(path, snap);
      newBoot({ keepBridge: true });
      // What the new boot configured on its own, some of it clashing with the saved state.
      sh(`
        link set v0 up
        addr add 10.1.0.1/24 dev br0
        addr add 10.2.0.99/24 dev v0
        route add 10.9.0.0/16 via 10.2.0.253
        route add 10.50.0.0/16 via 10.2.0.253
        rule add from 10.99.0.0/16 table 100 prio 500
      `);
      ip("link", "set", "br0", "mtu", "1300");
      const newBootView = view();
      const outcome = restoreNetwork(path);
      return { newBootView, after: view(), outcome };
    }
    case "links": {
      sh(`
        link set lo up
        link add v0 address ${V0_MAC} type veth peer name v1
        link set v0 up
        link set v1 up
        addr add 10.2.0.1/24 dev v0
        link add w0 type veth peer name w1
        link set w0 up
        addr add 10.4.0.1/24 dev w0
        route add 10.44.0.0/16 via 10.4.0.254
        link add br9 address ${BR0_MAC} type bridge
        link set br9 up
        link set w1 master br9
      `);
      const saved = saveNetwork();
      // A dummy link cannot be made on a kernel without the driver, so it is written into the
      // snapshot as the old boot would have saved it.
      const snap = {
        ...saved,
        links: [
          ...saved.links,
          { name: "d0", index: 99, kind: "dummy", mac: "02:dd:00:00:00:01", mtu: 1450, up: true, loopback: false, master: null, parent: null, vlan: null },
        ],
        addresses: [
          ...saved.addresses,
          {
            link: "d0", family: "inet" as const, local: "10.6.0.1", prefixlen: 24, peer: null, broadcast: null, label: null,
            scope: 0, flags: 0x80, proto: null, validLft: null, preferredLft: null, metric: null,
          },
        ],
      };
      writeNetSnapshot(path, snap);
      let dummyKernel = true;
      try {
        ip("link", "add", "probe0", "type", "dummy");
        ip("link", "del", "probe0");
      } catch {
        dummyKernel = false;
      }
      // The new boot: v0/v1 come back with another MAC; w0/w1 never come back, br9 is missing.
      sh(`
        link del v0
        link del w0
        link del br9
        link add v0 address 02:cc:00:00:00:09 type veth peer name v1
      `);
      const outcome = restoreNetwork(path);
      return { outcome, after: view(), dummyKernel };
    }
    case "corrupt": {
      oldBoot();
      const snap = saveNetwork();
      newBoot();
      const flushed = view();
      const results: Record<string, unknown> = {};
      const variants: Record<string, string> = {
        truncated: JSON.stringify(snap).slice(0, 200),
        badPrefix: JSON.stringify({ ...snap, addresses: snap.addresses.map((a, i) => (i === 0 ? { ...a, prefixlen: 99 } : a)) }),
        danglingLink: JSON.stringify({ ...snap, addresses: snap.addresses.map((a, i) => (i === 0 ? { ...a, link: "nosuch0" } : a)) }),
        badAddress: JSON.stringify({ ...snap, routes: snap.routes.map((r, i) => (i === 0 ? { ...r, gateway: "10.1.0.999" } : r)) }),
      };
      for (const [name, text] of Object.entries(variants)) {
        writeFileSync(path, text);
        try {
          restoreNetwork(path);
          results[name] = { code: "no-error" };
        } catch (e) {
          results[name] = errorJson(e);
        }
        results[`${name}FileKept`] = existsSync(path);
      }
      return { results, flushed, after: view() };
    }
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
}

try {
  const out = main();
  writeFileSync(join(process.argv[3] ?? "/tmp", "result.json"), JSON.stringify(out));
  process.stdout.write("ok\n");
} catch (e) {
  process.stderr.write(`net-worker: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}
