/**
 * Pure: nf_tables messages for nvwa's TCP lock (net/tcp-lock.ts), in the kernel's wire format
 * (include/uapi/linux/netfilter/nf_tables.h, nfnetlink.h). One table of family inet with an
 * input and an output chain, and per connection one rule each way that drops its packets:
 *
 *   meta nfproto ipv4|ipv6  meta l4proto tcp  ip(6) saddr S  ip(6) daddr D  tcp sport P  tcp dport Q  drop
 *
 * This is what criu's dump-time lock does (criu/netfilter.c), re-created after the kexec.
 * nf_tables takes its numbers in network byte order.
 */
import { concat, i32be, u16be } from "../../ffi/bytes.ts";
import { type AttrIn, encodeAttrs, encodeMessage, str } from "./codec.ts";
import { ipBytes } from "./ip-text.ts";
import type { TcpTuple } from "./tcp-conns.ts";

export const NETLINK_NETFILTER = 12;
export const LOCK_TABLE = "nvwa-tcp-lock";

const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10; // NLMSG_MIN_TYPE
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG = { NEWTABLE: 0, GETTABLE: 1, DELTABLE: 2, NEWCHAIN: 3, NEWRULE: 6 } as const;
const NFPROTO = { INET: 1, IPV4: 2, IPV6: 10 } as const;
const NF_INET_HOOK = { LOCAL_IN: 1, LOCAL_OUT: 3 } as const;
const NLM_F = { REQUEST: 0x1, ACK: 0x4, CREATE: 0x400, APPEND: 0x800 } as const;
const NLA_F_NESTED = 0x8000;
const IPPROTO_TCP = 6;

const A = {
  TABLE_NAME: 1,
  CHAIN_TABLE: 1,
  CHAIN_NAME: 3,
  CHAIN_HOOK: 4,
  CHAIN_POLICY: 5,
  CHAIN_TYPE: 7,
  HOOK_HOOKNUM: 1,
  HOOK_PRIORITY: 2,
  RULE_TABLE: 1,
  RULE_CHAIN: 2,
  RULE_EXPRESSIONS: 4,
  LIST_ELEM: 1,
  EXPR_NAME: 1,
  EXPR_DATA: 2,
  META_DREG: 1,
  META_KEY: 2,
  PAYLOAD_DREG: 1,
  PAYLOAD_BASE: 2,
  PAYLOAD_OFFSET: 3,
  PAYLOAD_LEN: 4,
  CMP_SREG: 1,
  CMP_OP: 2,
  CMP_DATA: 3,
  DATA_VALUE: 1,
  DATA_VERDICT: 2,
  VERDICT_CODE: 1,
  IMMEDIATE_DREG: 1,
  IMMEDIATE_DATA: 2,
} as const;
const NFT_META_NFPROTO = 15;
const NFT_META_L4PROTO = 16;
const NFT_PAYLOAD_NETWORK_HEADER = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER = 2;
const NFT_REG_VERDICT = 0;
const NFT_REG_1 = 1;
const NFT_CMP_EQ = 0;
const NF_DROP = 0;
const NF_ACCEPT = 1;

const nested = (type: number, value: AttrIn[]): AttrIn => ({ type: type | NLA_F_NESTED, value });

/** struct nfgenmsg: family, version NFNETLINK_V0, res_id (big endian). */
function nfgen(family: number, resId = 0): Uint8Array {
  return Uint8Array.of(family, 0, ...u16be(resId));
}

function expr(name: string, data: AttrIn[]): AttrIn {
  return nested(A.LIST_ELEM, [{ type: A.EXPR_NAME, value: str(name) }, nested(A.EXPR_DATA, data)]);
}

const meta = (key: number): AttrIn => expr("meta", [{ type: A.META_DREG, value: i32be(NFT_REG_1) }, { type: A.META_KEY, value: i32be(key) }]);
const payload = (base: number, offset: number, len: number): AttrIn =>
  expr("payload", [
    { type: A.PAYLOAD_DREG, value: i32be(NFT_REG_1) },
    { type: A.PAYLOAD_BASE, value: i32be(base) },
    { type: A.PAYLOAD_OFFSET, value: i32be(offset) },
    { type: A.PAYLOAD_LEN, value: i32be(len) },
  ]);
const cmpEq = (data: Uint8Array): AttrIn =>
  expr("cmp", [{ type: A.CMP_SREG, value: i32be(NFT_REG_1) }, { type: A.CMP_OP, value: i32be(NFT_CMP_EQ) }, nested(A.CMP_DATA, [{ type: A.DATA_VALUE, value: data }])]);
const verdict = (code: number): AttrIn =>
  expr("immediate", [{ type: A.IMMEDIATE_DREG, value: i32be(NFT_REG_VERDICT) }, nested(A.IMMEDIATE_DATA, [nested(A.DATA_VERDICT, [{ type: A.VERDICT_CODE, value: i32be(code) }])])]);

/** The expressions that drop one direction of a connection: packets from (src, sport) to (dst, dport). */
export function dropExpressions(family: TcpTuple["family"], src: string, sport: number, dst: string, dport: number): AttrIn[] {
  const v6 = family === "inet6";
  return [
    meta(NFT_META_NFPROTO),
    cmpEq(new Uint8Array([v6 ? NFPROTO.IPV6 : NFPROTO.IPV4])),
    meta(NFT_META_L4PROTO),
    cmpEq(new Uint8Array([IPPROTO_TCP])),
    // IPv4 header: saddr at 12, daddr at 16; IPv6 header: saddr at 8, daddr at 24.
    payload(NFT_PAYLOAD_NETWORK_HEADER, v6 ? 8 : 12, v6 ? 16 : 4),
    cmpEq(ipBytes(src, family)),
    payload(NFT_PAYLOAD_NETWORK_HEADER, v6 ? 24 : 16, v6 ? 16 : 4),
    cmpEq(ipBytes(dst, family)),
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2),
    cmpEq(u16be(sport)),
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
    cmpEq(u16be(dport)),
    verdict(NF_DROP),
  ];
}

interface Msg {
  type: number;
  flags: number;
  family: number;
  attrs: AttrIn[];
}

const ntMsg = (msg: number): number => (NFNL_SUBSYS_NFTABLES << 8) | msg;

function chainMsg(name: string, hook: number): Msg {
  return {
    type: ntMsg(NFT_MSG.NEWCHAIN),
    flags: NLM_F.CREATE,
    family: NFPROTO.INET,
    attrs: [
      { type: A.CHAIN_TABLE, value: str(LOCK_TABLE) },
      { type: A.CHAIN_NAME, value: str(name) },
      // Priority -300 (raw): before connection tracking and before any firewall's own chains.
      nested(A.CHAIN_HOOK, [{ type: A.HOOK_HOOKNUM, value: i32be(hook) }, { type: A.HOOK_PRIORITY, value: i32be(-300) }]),
      { type: A.CHAIN_POLICY, value: i32be(NF_ACCEPT) },
      { type: A.CHAIN_TYPE, value: str("filter") },
    ],
  };
}

function ruleMsg(chain: string, exprs: AttrIn[]): Msg {
  return {
    type: ntMsg(NFT_MSG.NEWRULE),
    flags: NLM_F.CREATE | NLM_F.APPEND,
    family: NFPROTO.INET,
    attrs: [{ type: A.RULE_TABLE, value: str(LOCK_TABLE) }, { type: A.RULE_CHAIN, value: str(chain) }, nested(A.RULE_EXPRESSIONS, exprs)],
  };
}

const tableMsg = (msg: number, flags: number, table = LOCK_TABLE): Msg => ({ type: ntMsg(msg), flags, family: NFPROTO.INET, attrs: [{ type: A.TABLE_NAME, value: str(table) }] });

export interface Batch {
  bytes: Uint8Array;
  /** Sequence numbers of the messages that are acknowledged (all but batch begin/end). */
  seqs: number[];
}

/** Wraps messages in a batch (one transaction: all of them take effect, or none). */
function batch(msgs: Msg[], firstSeq: number): Batch {
  const parts: Uint8Array[] = [];
  const seqs: number[] = [];
  let seq = firstSeq;
  parts.push(encodeMessage({ type: NFNL_MSG_BATCH_BEGIN, flags: NLM_F.REQUEST, seq: seq++ }, nfgen(0, NFNL_SUBSYS_NFTABLES)));
  for (const m of msgs) {
    seqs.push(seq);
    parts.push(encodeMessage({ type: m.type, flags: m.flags | NLM_F.REQUEST | NLM_F.ACK, seq: seq++ }, concat([nfgen(m.family), encodeAttrs(m.attrs)])));
  }
  parts.push(encodeMessage({ type: NFNL_MSG_BATCH_END, flags: NLM_F.REQUEST, seq: seq++ }, nfgen(0, NFNL_SUBSYS_NFTABLES)));
  return { bytes: concat(parts), seqs };
}

/**
 * The lock for these connections, replacing any earlier nvwa lock table in the same transaction
 * ("add; delete; add" is how nft makes a table fresh whether or not it existed).
 */
export function lockBatch(tuples: readonly TcpTuple[], firstSeq = 1): Batch {
  const msgs: Msg[] = [tableMsg(NFT_MSG.NEWTABLE, NLM_F.CREATE), tableMsg(NFT_MSG.DELTABLE, 0), tableMsg(NFT_MSG.NEWTABLE, NLM_F.CREATE), chainMsg("input", NF_INET_HOOK.LOCAL_IN), chainMsg("output", NF_INET_HOOK.LOCAL_OUT)];
  for (const t of tuples) {
    msgs.push(ruleMsg("input", dropExpressions(t.family, t.remote, t.remotePort, t.local, t.localPort)));
    msgs.push(ruleMsg("output", dropExpressions(t.family, t.local, t.localPort, t.remote, t.remotePort)));
  }
  return batch(msgs, firstSeq);
}

/** Removes nvwa's lock table, or another inet table by name, with its chains and rules. */
export function unlockBatch(firstSeq = 1, table = LOCK_TABLE): Batch {
  return batch([tableMsg(NFT_MSG.DELTABLE, 0, table)], firstSeq);
}

/** A single (unbatched) request for table `inet <name>`: answered with the table or ENOENT. */
export function getTableRequest(name: string, seq = 1): Uint8Array {
  return encodeMessage(
    { type: ntMsg(NFT_MSG.GETTABLE), flags: NLM_F.REQUEST | NLM_F.ACK, seq },
    concat([nfgen(NFPROTO.INET), encodeAttrs([{ type: A.TABLE_NAME, value: str(name) }])]),
  );
}
