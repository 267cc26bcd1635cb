/**
 * Holds the packets of checkpointed TCP connections back while their sockets do not exist yet.
 *
 * criu locks a connection at dump time with a netfilter rule so that neither end's kernel answers
 * for a socket that is about to vanish; its restore removes the lock. The kexec wipes that rule:
 * after the jump, once restore_net has put the address back, a packet from the peer reaches a
 * kernel without the socket and is answered with a reset, and the connection is lost before criu
 * restores it. nvwa therefore re-installs the same drops (nft.ts) before the network comes back
 * and removes them once every target has been restored (or has failed).
 */
import { openNetlink } from "../../ffi/netlink.ts";
import { errnoName } from "../../ffi/errno.ts";
import { NvwaError } from "../errors.ts";
import { decodeError, decodeMessages } from "./codec.ts";
import { NLMSG } from "./constants.ts";
import { type Batch, getTableRequest, LOCK_TABLE, lockBatch, NETLINK_NETFILTER, unlockBatch } from "./nft.ts";
import type { TcpTuple } from "./tcp-conns.ts";

const ENOENT = 2;

/**
 * Sends one batch and waits for every acknowledgement; throws on the first refusal other than
 * `okErrnos`. Returns whether every message was acknowledged without error.
 */
function sendBatch(b: Batch, what: string, okErrnos: readonly number[] = []): boolean {
  let clean = true;
  const sock = openNetlink(NETLINK_NETFILTER);
  try {
    sock.send(b.bytes);
    const pending = new Set(b.seqs);
    while (pending.size > 0) {
      for (const m of decodeMessages(sock.receive())) {
        if (m.type !== NLMSG.ERROR || !pending.has(m.seq)) continue;
        const ack = decodeError(m);
        if (ack.errno !== 0 && !okErrnos.includes(ack.errno)) {
          const name = errnoName(ack.errno);
          throw new NvwaError("net.tcp-lock", `${what}: ${name}${ack.message === undefined ? "" : ` (${ack.message})`}`, {
            hint: "the kernel needs nf_tables (CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET) for nvwa to hold TCP packets back during the restore",
            details: { errno: ack.errno, errnoName: name },
          });
        }
        if (ack.errno !== 0) clean = false;
        pending.delete(m.seq);
      }
    }
    return clean;
  } finally {
    sock.close();
  }
}

/** Drops every packet of these connections, both ways, in table `inet nvwa-tcp-lock`. */
export function installTcpLock(tuples: readonly TcpTuple[]): void {
  sendBatch(lockBatch(tuples), `installing the TCP lock (table inet ${LOCK_TABLE}, ${tuples.length} connection(s))`);
}

/** Removes the lock; a lock that is not there is fine. Returns whether there was one. */
export function removeTcpLock(): boolean {
  return removeInetTable(LOCK_TABLE);
}

/** Deletes table `inet <name>` (criu's own dump-time lock, see criu/inventory.ts); true if it was there. */
export function removeInetTable(name: string): boolean {
  return sendBatch(unlockBatch(1, name), `removing table inet ${name}`, [ENOENT]);
}

/** Whether table `inet <name>` exists. */
export function inetTableExists(name: string): boolean {
  const sock = openNetlink(NETLINK_NETFILTER);
  try {
    sock.send(getTableRequest(name, 1));
    for (;;) {
      for (const m of decodeMessages(sock.receive())) {
        if (m.seq !== 1) continue;
        if (m.type !== NLMSG.ERROR) return true; // the table itself; its ACK follows
        const ack = decodeError(m);
        if (ack.errno === ENOENT) return false;
        if (ack.errno !== 0) throw new NvwaError("net.tcp-lock", `looking up table inet ${name}: ${errnoName(ack.errno)}`, { hint: "the kernel needs nf_tables" });
        return true;
      }
    }
  } finally {
    sock.close();
  }
}
