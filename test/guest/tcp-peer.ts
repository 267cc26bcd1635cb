/**
 * The far end of a guest workload's TCP connection, kept on the host so that it outlives the
 * guest's kernel jump, as a client machine would. QEMU's user-mode network (run-guest.sh
 * --hostfwd, restrict=on) carries it: the host connects to 127.0.0.1:<port>, QEMU connects to the
 * guest's port, and QEMU's side of that connection stays up while the guest's kernel changes.
 *
 * The guest drives it through its serial console: each "NVWA-GUEST boot=N <mark>" line asks for
 * one exchange (a request on the same socket, one reply line read back). The peer stays quiet in
 * between, as nvwa needs: see the README's "TCP connections" limits.
 */
import { existsSync, readFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";

export interface PeerExchange {
  boot: number;
  request: string;
  reply: string;
  /** The host-side port of the connection: the same in every exchange, or it was reopened. */
  localPort: number;
}

export interface PeerResult {
  exchanges: PeerExchange[];
  error?: string;
}

export interface PeerOptions {
  serialLog: string;
  hostPort: number;
  /** The serial marker that asks for an exchange, e.g. "tcp-peer-go". */
  mark: string;
  /** One exchange per boot, boots 1..rounds. */
  rounds: number;
  /** One request line (without CRLF); its reply is one line. */
  request: string;
  /** Settles when the guest has stopped: the peer then gives up waiting. */
  guestDone: Promise<unknown>;
  /** How long one reply may take (ms). */
  replyTimeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until the serial log has the marker of this boot; false when the guest stopped first. */
async function waitForMark(o: PeerOptions, boot: number, stopped: () => boolean): Promise<boolean> {
  const re = new RegExp(`NVWA-GUEST boot=${boot} ${o.mark}( |$)`, "m");
  for (;;) {
    if (existsSync(o.serialLog) && re.test(readFileSync(o.serialLog, "utf8"))) return true;
    if (stopped()) return false;
    await sleep(250);
  }
}

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Reads one CRLF-terminated line from the socket (data beyond it is not expected). */
function readLine(s: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const done = (f: () => void): void => {
      clearTimeout(timer);
      s.off("data", onData);
      s.off("close", onClose);
      s.off("error", onError);
      f();
    };
    const onData = (d: Buffer): void => {
      buf += d.toString("utf8");
      const i = buf.indexOf("\r\n");
      if (i >= 0) done(() => resolve(buf.slice(0, i)));
    };
    const onClose = (): void => done(() => reject(new Error(`the connection was closed before a reply (got ${JSON.stringify(buf)})`)));
    const onError = (e: Error): void => done(() => reject(e));
    const timer = setTimeout(() => done(() => reject(new Error(`no reply within ${timeoutMs} ms`))), timeoutMs);
    s.on("data", onData);
    s.once("close", onClose);
    s.once("error", onError);
  });
}

export async function runTcpPeer(o: PeerOptions): Promise<PeerResult> {
  let stopped = false;
  void o.guestDone.finally(() => {
    stopped = true;
  });
  const exchanges: PeerExchange[] = [];
  let sock: Socket | undefined;
  try {
    for (let boot = 1; boot <= o.rounds; boot++) {
      if (!(await waitForMark(o, boot, () => stopped))) return { exchanges, error: `the guest stopped before asking for exchange ${boot} (${o.mark})` };
      if (sock === undefined) sock = await connect(o.hostPort);
      sock.write(`${o.request}\r\n`);
      const reply = await readLine(sock, o.replyTimeoutMs ?? 120_000);
      exchanges.push({ boot, request: o.request, reply, localPort: sock.localPort ?? 0 });
    }
    return { exchanges };
  } catch (e) {
    return { exchanges, error: `exchange ${exchanges.length + 1}: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    sock?.destroy();
  }
}

/** A free TCP port on the host's loopback for QEMU's hostfwd (a race with others is unlikely here). */
export async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}
