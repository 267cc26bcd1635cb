/**
 * The pure halves of nvwa's TCP lock: reading a tree's connections from /proc/net/tcp{,6} text,
 * and the nf_tables batch that locks them. The kernel's acceptance of that batch and the packets
 * it really drops are tested on the host (test/host/tcp-lock.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { decodeMessages } from "../../src/net/codec.ts";
import { lockBatch, unlockBatch } from "../../src/net/nft.ts";
import { parseProcAddress, parseProcNetTcp, treeConnections } from "../../src/net/tcp-conns.ts";
import { criuLockTable, dumpRunId } from "../../src/criu/inventory.ts";

const HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
// 10.0.2.15:6379 <- 10.0.2.2:46536 established (inode 111), a listener (112), a TIME_WAIT (0).
const TCP4 = [
  HEADER,
  "   0: 0F02000A:18EB 0202000A:B5C8 01 00000000:00000000 00:00000000 00000000   101        0 111 1 0000000000000000 20 4 30 10 -1",
  "   1: 00000000:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 112 1 0000000000000000 100 0 0 10 0",
  "   2: 0100007F:A000 0100007F:18EB 06 00000000:00000000 03:00000F9B 00000000     0        0 0 3 0000000000000000",
].join("\n");
// [fd00::1]:443 <- [fd00::2]:50000 in CLOSE_WAIT (113); ::ffff:10.0.2.15:80 <- ::ffff:10.0.2.2:4000 (114)
const TCP6 = [
  HEADER,
  "   0: 000000FD000000000000000001000000:01BB 000000FD000000000000000002000000:C350 08 00000000:00000000 00:00000000 00000000     0        0 113 1 0000000000000000 20 4 30 10 -1",
  "   1: 0000000000000000FFFF00000F02000A:0050 0000000000000000FFFF00000202000A:0FA0 01 00000000:00000000 00:00000000 00000000     0        0 114 1 0000000000000000 20 4 30 10 -1",
].join("\n");

describe("reading connections", () => {
  test("addresses are host-order words; ports are big-endian hex", () => {
    expect(parseProcAddress("0100007F:1F90")).toEqual({ ip: "127.0.0.1", port: 8080 });
    expect(parseProcAddress("7F000001:1F90", false)).toEqual({ ip: "127.0.0.1", port: 8080 });
    expect(parseProcAddress("garbage")).toBeNull();
  });

  test("only the tree's connected sockets, each once; v4-mapped IPv6 becomes IPv4", () => {
    const entries = [...parseProcNetTcp(TCP4, "inet"), ...parseProcNetTcp(TCP4, "inet"), ...parseProcNetTcp(TCP6, "inet6")];
    expect(treeConnections(entries, new Set([111, 112, 113, 114]))).toEqual([
      { family: "inet", local: "10.0.2.15", localPort: 6379, remote: "10.0.2.2", remotePort: 46536 },
      { family: "inet6", local: "fd00::1", localPort: 443, remote: "fd00::2", remotePort: 50000 },
      { family: "inet", local: "10.0.2.15", localPort: 80, remote: "10.0.2.2", remotePort: 4000 },
    ]);
    // Not the tree's inode: not its connection.
    expect(treeConnections(entries, new Set([999]))).toEqual([]);
  });
});

describe("the nf_tables batch", () => {
  const NEWRULE = (10 << 8) | 6;
  test("one transaction: begin, fresh table, two chains, a rule per direction per connection, end", () => {
    const tuples = treeConnections(parseProcNetTcp(TCP4, "inet"), new Set([111]));
    const b = lockBatch(tuples, 100);
    const msgs = decodeMessages(b.bytes);
    expect(msgs.map((m) => m.type)).toEqual([0x10, (10 << 8) | 0, (10 << 8) | 2, (10 << 8) | 0, (10 << 8) | 3, (10 << 8) | 3, NEWRULE, NEWRULE, 0x11]);
    expect(msgs.map((m) => m.seq)).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 108]);
    expect(b.seqs).toEqual([101, 102, 103, 104, 105, 106, 107]);
    // The input rule matches the peer's address and port as source: 10.0.2.2 then 46536 (0xB5C8).
    const input = Buffer.from((msgs[6] as { payload: Uint8Array }).payload).toString("hex");
    expect(input.indexOf("0a000202")).toBeLessThan(input.indexOf("0a00020f"));
    expect(input).toContain("b5c8");
  });

  test("the unlock deletes the table alone", () => {
    expect(decodeMessages(unlockBatch().bytes).map((m) => m.type)).toEqual([0x10, (10 << 8) | 2, 0x11]);
  });
});

describe("criu's own lock table", () => {
  test("named after the dump's run id (cut to 21 characters), or the root pid for older criu", () => {
    expect(criuLockTable("0123456789abcdef-0123-4567-89ab-cdef01234567", 42)).toBe("CRIU-0123456789abcdef-0123");
    expect(criuLockTable(null, 42)).toBe("CRIU-42");
  });

  test("the run id is field 13 of inventory.img's entry; anything unreadable is null", () => {
    const id = "6d3b1a2c-0000-4000-8000-000000000001";
    // magic, magic, u32 length, then: field 1 varint 2, field 13 string (tag 0x6a)
    const pb = new Uint8Array([0x08, 0x02, 0x6a, id.length, ...new TextEncoder().encode(id)]);
    const img = new Uint8Array(12 + pb.length);
    const v = new DataView(img.buffer);
    v.setUint32(0, 0x55105940, true);
    v.setUint32(4, 0x58313116, true);
    v.setUint32(8, pb.length, true);
    img.set(pb, 12);
    expect(dumpRunId(img)).toBe(id);
    expect(dumpRunId(img.subarray(0, 20))).toBeNull();
    expect(dumpRunId(new Uint8Array(3))).toBeNull();
  });
});
