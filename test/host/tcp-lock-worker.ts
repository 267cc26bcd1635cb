/**
 * Runs inside a fresh network namespace (`unshare -n`, started by tcp-lock.test.ts): a real TCP
 * connection over lo (IPv4 and IPv6), nvwa's lock installed for it, data sent while it is locked
 * and after it is removed. Prints one JSON object with what arrived when.
 */
import { createConnection, createServer, type Socket } from "node:net";
import { tcpConnectionsOf } from "../../src/net/tcp-conns.ts";
import { installTcpLock, removeTcpLock } from "../../src/net/tcp-lock.ts";

const ip = Bun.spawnSync(["ip", "link", "set", "lo", "up"]);
if (ip.exitCode !== 0) throw new Error("ip link set lo up failed");

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function pair(host: string): Promise<{ client: Socket; server: Socket; received: string[] }> {
  const received: string[] = [];
  let accepted: ((s: Socket) => void) | undefined;
  const got = new Promise<Socket>((r) => (accepted = r));
  const srv = createServer((s) => {
    s.on("data", (d) => received.push(d.toString()));
    accepted?.(s);
  });
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  const port = (srv.address() as { port: number }).port;
  const client = createConnection({ host, port });
  await new Promise<void>((r) => client.once("connect", () => r()));
  const server = await got;
  srv.close();
  return { client, server, received };
}

const v4 = await pair("127.0.0.1");
const v6 = await pair("::1");
const tuples = tcpConnectionsOf([process.pid]);

installTcpLock(tuples);
v4.client.write("locked-v4");
v6.client.write("locked-v6");
await sleep(1500);
const whileLocked = [...v4.received, ...v6.received];

const removedFirst = removeTcpLock();
const t0 = performance.now();
while (v4.received.length === 0 || v6.received.length === 0) {
  if (performance.now() - t0 > 20_000) break;
  await sleep(50);
}
const afterUnlock = [...v4.received, ...v6.received];
const removedAgain = removeTcpLock(); // a lock that is not there is fine
v4.client.write("+after");
await sleep(300);

console.log(JSON.stringify({ tuples, whileLocked, afterUnlock, final: v4.received.join(""), removedFirst, removedAgain }));
for (const p of [v4, v6]) {
  p.client.destroy();
  p.server.destroy();
}
process.exit(0);
