/**
 * The netlink codec against bytes the kernel really sent: each fixture below was captured from
 * a 6.18 kernel in a scratch network namespace (a bridge br0 with 02:aa:00:00:00:01, mtu 1400;
 * 2001:db8:1::1/64 nodad; a two-way multipath route in table 1000; a "not to ... uidrange
 * ipproto dport prohibit" rule; and the kernel's refusal of an address that already existed).
 */
import { describe, expect, test } from "bun:test";
import {
  decodeAttrs,
  decodeError,
  decodeMessages,
  decodeNextHops,
  decodeRtMsg,
  encodeAttrs,
  encodeFibRuleHdr,
  encodeIfAddrMsg,
  encodeIfInfoMsg,
  encodeMessage,
  encodeNextHops,
  encodeRtMsg,
  decodeFibRuleHdr,
  decodeIfAddrMsg,
  decodeIfInfoMsg,
  fromHex,
  readStr,
  str,
  toHex,
  u32,
  type NlMessage,
} from "../../src/net/codec.ts";
import { NLM_F, NLMSG, RTA } from "../../src/net/constants.ts";
import { decodeAddress, decodeLink, decodeRoute, decodeRule, resolveLinks } from "../../src/net/decode.ts";
import { isNvwaError } from "../../src/errors.ts";

const LINK_BR0 =
  "5807000010000200070000002777000000000100020000000310000000000000080003006272300008000d00e80300000500" +
  "100002000000050011000000000005004300010000000800040078050000080032004400000008003300ffff000008001b00" +
  "0000000008001e000000000008003d000000000008001f000100000008002800ffff0000080029000000010008003a000000" +
  "010008003f0000000100080040000000010008003b000000010008003c00ffff000008004200000000000800200001000000" +
  "0500210000000000080023000100000008002f00000000000800300001000000060044000000000006004500000000000500" +
  "2700000000000a00010002aa0000000100000a000200ffffffffffff0000cc00170000000000000000000000000000000000" +
  "0000000000000000000000000000000000000000000000000000000000000000000000000000000003000000000000000000" +
  "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
  "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
  "0000000000000000000000000000000000000000000000000000000000000000000064000700000000000000000000000000" +
  "0000000000000000000000000000000003000000000000000000000000000000000000000000000000000000000000000000" +
  "000000000000000000000000000000000000000000000000000000000000000000000c002b0005000200000000009c011200" +
  "0b00010062726964676500008c0102000c00100000000000000000000c00110000000000000000000c001200000000000000" +
  "00000c0013000d7500000000000008000100dc05000008000200c800000008000300d0070000080004003075000008000500" +
  "000000000600060000800000050007000000000006000900000000000c000b00800002aa000000010c000a00800002aa0000" +
  "000106000c000000000008000d000000000005000e000000000005000f00000000000a0014000180c200000000000c002e00" +
  "000000001f000000080030000000000008003100000000000500160001000000050017000100000005001800000000000500" +
  "19000000000005002a000000000008001a001000000008001b000010000008001c000200000008001d000200000005002b00" +
  "0200000005002c00010000000c001e0064000000000000000c001f0090650000000000000c0020009c630000000000000c00" +
  "2100d4300000000000000c002200e8030000000000000c002300340c00000000000005002400000000000500250000000000" +
  "05002600000000000c0006006e6f71756575650030031a008c00020088000100000000000000000000000000010000000100" +
  "0000010000000100000000000000010000000000000000000000000000000000000000000000000000000000000000000000" +
  "00000000000000000000000000000000000000000000000000000000000000000000000010270000e8030000000000000000" +
  "0000000000000000000001000000a0020a00080001000000000014000500ffff00009c0001003c690000e8030000f4000200" +
  "00000000400000007805000001000000010000000100000001000000ffffffffa00f0000e803000000000000803a09008051" +
  "01000300000058020000100000000000000001000000010000000100000060ea000000000000000000000000000000000000" +
  "000000000000000001000000000000000000000010270000e803000001000000000000000000000001000000000000000000" +
  "0000010000000000000000000000000000000000000080ee3600000000000000000001000000000000000000000000000000" +
  "00000000000000000004000000000000ffff0000ffffffff0100000000000000000000000000000034010300260000000000" +
  "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
  "0000000000000000010000000000000001000000000000006000000000000000000000000000000000000000000000000000" +
  "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001000000" +
  "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
  "0000000000000000000000000000000000000000000000000000010000000000000000000000000000000000000000000000" +
  "0000000000000000600000000000000000000000000000000000000000000000000000000000000000000000000000003c00" +
  "0600070000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
  "00000000000000001400070000000000000000000000000000000000050008000000000024000e0000000000000000000000" +
  "0000000000000000000000000000000000000000000004003e8004004180";
const ADDR_LO6 =
  "500000001400020007000000277700000a8080fe01000000140001000000000000000000000000000000000114000600ffff" +
  "ffffffffffff9800010098000100080008008000000005000b0001000000";
const ADDR_BR0_6 =
  "480000001400020007000000277700000a408200020000001400010020010db800010000000000000000000114000600ffff" +
  "ffffffffffffa3000100a30001000800080082000000";
const ROUTE_MULTIPATH =
  "5000000018000200070000002777000002100000fc0300011000000008000f00e8030000080001000a070000240009001000" +
  "100102000000080005000a0100fe1000100002000000080005000a0100fd";
const ROUTE_LOCAL =
  "3c00000018000200070000002777000002200000ff02fe020000000008000f00ff000000080001000a010001080007000a01" +
  "00010800040002000000";
const RULE_DEFAULT_LOCAL =
  "3400000020000200070000002777000002000000ff0000010000000008000f00ff00000008000e00ffffffff050015000200" +
  "0000";
const RULE_1002 =
  "6000000020000200070000002777000002100000000000080200000008000f000000000008000e00ffffffff050015000000" +
  "000008000600ea0300000c00140064000000c80000000800180050005a000500160006000000080001000a050000";
const ERR_EEXIST =
  "48000000020000030900000027770000efffffff3000000014000506090000000000000023000100697076343a2041646472" +
  "65737320616c72656164792061737369676e65640000";

function one(hex: string): NlMessage {
  const msgs = decodeMessages(fromHex(hex));
  expect(msgs.length).toBe(1);
  return msgs[0] as NlMessage;
}

const NAMES = new Map([
  [1, "lo"],
  [2, "br0"],
]);

describe("netlink framing", () => {
  test("a message round-trips and is padded to 4 bytes, with nlmsg_len counting the unpadded length", () => {
    const body = Uint8Array.of(1, 2, 3, 4, 5);
    const wire = encodeMessage({ type: 18, flags: NLM_F.REQUEST | NLM_F.DUMP, seq: 77, pid: 0 }, body);
    expect(wire.length).toBe(24);
    expect(new DataView(wire.buffer).getUint32(0, true)).toBe(21);
    const [m] = decodeMessages(wire);
    expect(m).toMatchObject({ type: 18, flags: 0x301, seq: 77, pid: 0 });
    expect(Array.from(m?.payload ?? [])).toEqual([1, 2, 3, 4, 5]);
  });

  test("several messages in one datagram are split", () => {
    const a = encodeMessage({ type: 16, flags: 2, seq: 1 }, Uint8Array.of(9));
    const b = encodeMessage({ type: NLMSG.DONE, flags: 2, seq: 1 }, u32(0));
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    expect(decodeMessages(both).map((m) => m.type)).toEqual([16, NLMSG.DONE]);
  });

  test("a length running past the datagram is refused as malformed, not read out of bounds", () => {
    const wire = encodeMessage({ type: 16, flags: 0, seq: 1 }, new Uint8Array(8));
    new DataView(wire.buffer).setUint32(0, 400, true);
    let code = "";
    try {
      decodeMessages(wire);
    } catch (e) {
      if (isNvwaError(e)) code = e.code;
    }
    expect(code).toBe("net.netlink-malformed");
  });

  test("attributes: nested, padded, flag bits masked off the type", () => {
    const wire = encodeAttrs([
      { type: 3, value: str("br0") },
      { type: 18, value: [{ type: 1, value: str("vlan") }, { type: 2, value: [{ type: 1, value: Uint8Array.of(10, 0) }] }] },
    ]);
    // "br0\0" is 4 bytes + 4 header; the nest holds 4+5 (padded to 12) and 4+(4+2 padded to 8).
    expect(wire.length).toBe(8 + 4 + 12 + 12);
    const top = decodeAttrs(wire);
    expect(readStr(top.get(3))).toBe("br0");
    const info = decodeAttrs(top.get(18) ?? new Uint8Array());
    expect(readStr(info.get(1))).toBe("vlan");
    expect(Array.from(decodeAttrs(info.get(2) ?? new Uint8Array()).get(1) ?? [])).toEqual([10, 0]);
    // NLA_F_NESTED (0x8000) on the wire does not change the type number.
    const flagged = Uint8Array.from(wire);
    new DataView(flagged.buffer).setUint16(10, 18 | 0x8000, true);
    expect(decodeAttrs(flagged).has(18)).toBe(true);
  });

  test("fixed headers round-trip", () => {
    const ifi = { family: 0, type: 1, index: 7, flags: 0x1003, change: 0xffffffff };
    expect(decodeIfInfoMsg(encodeIfInfoMsg(ifi)).hdr).toEqual(ifi);
    const ifa = { family: 10, prefixlen: 64, flags: 0x80, scope: 253, index: 3 };
    expect(decodeIfAddrMsg(encodeIfAddrMsg(ifa)).hdr).toEqual(ifa);
    const rtm = { family: 2, dstLen: 24, srcLen: 0, tos: 4, table: 254, protocol: 3, scope: 0, type: 1, flags: 4 };
    expect(decodeRtMsg(encodeRtMsg(rtm)).hdr).toEqual(rtm);
    const frh = { family: 10, dstLen: 48, srcLen: 64, tos: 0, table: 100, action: 1, flags: 2 };
    expect(decodeFibRuleHdr(encodeFibRuleHdr(frh)).hdr).toEqual(frh);
  });

  test("multipath nexthops round-trip", () => {
    const hops = [
      { flags: 4, hops: 1, ifindex: 2, attrs: [{ type: RTA.GATEWAY, value: Uint8Array.of(10, 1, 0, 254) }] },
      { flags: 0, hops: 0, ifindex: 5, attrs: [] },
    ];
    const back = decodeNextHops(encodeNextHops(hops));
    expect(back.map((h) => [h.flags, h.hops, h.ifindex, toHex(h.attrs.get(RTA.GATEWAY) ?? new Uint8Array())])).toEqual([
      [4, 1, 2, "0a0100fe"],
      [0, 0, 5, ""],
    ]);
  });
});

describe("decoding what the kernel sent", () => {
  test("a bridge link: name, kind, MAC, MTU, up", () => {
    const raw = decodeLink(one(LINK_BR0));
    expect(raw.index).toBe(2);
    expect(raw.link).toEqual({
      name: "br0",
      index: 2,
      kind: "bridge",
      mac: "02:aa:00:00:00:01",
      mtu: 1400,
      up: true,
      loopback: false,
      master: null,
      parent: null,
      vlan: null,
    });
  });

  test("master and parent indexes become names; an index not in the namespace becomes null", () => {
    const base = decodeLink(one(LINK_BR0));
    const { links } = resolveLinks([
      base,
      { index: 5, masterIndex: 2, parentIndex: 42, link: { ...base.link, name: "v1", index: 5, kind: "veth" } },
    ]);
    expect(links[1]).toMatchObject({ name: "v1", master: "br0", parent: null });
  });

  test("IPv6 addresses: loopback's carries proto kernel_lo, a configured one its nodad flag", () => {
    expect(decodeAddress(one(ADDR_LO6), NAMES)).toMatchObject({ link: "lo", local: "::1", prefixlen: 128, scope: 254, proto: 1 });
    expect(decodeAddress(one(ADDR_BR0_6), NAMES)).toEqual({
      link: "br0",
      family: "inet6",
      local: "2001:db8:1::1",
      prefixlen: 64,
      peer: null,
      broadcast: null,
      label: null,
      scope: 0,
      flags: 0x82, // permanent | nodad
      proto: null,
      validLft: null,
      preferredLft: null,
      metric: null,
    });
  });

  test("a multipath route in table 1000 (a table number only RTA_TABLE can carry)", () => {
    const d = decodeRoute(one(ROUTE_MULTIPATH), NAMES);
    expect(d !== null && !("unsupported" in d)).toBe(true);
    expect(d?.route).toMatchObject({
      family: "inet",
      table: 1000,
      dst: "10.7.0.0",
      dstLen: 16,
      protocol: 3,
      dev: null,
      gateway: null,
      multipath: [
        { dev: "br0", gateway: "10.1.0.254", weight: 2, onlink: false },
        { dev: "br0", gateway: "10.1.0.253", weight: 1, onlink: false },
      ],
    });
  });

  test("a kernel-made local route", () => {
    expect(decodeRoute(one(ROUTE_LOCAL), NAMES)?.route).toMatchObject({ table: 255, type: 2, protocol: 2, dst: "10.1.0.1", dstLen: 32 });
  });

  test("a route through an ifindex that is not in the link list is flagged unsupported", () => {
    const d = decodeRoute(one(ROUTE_LOCAL), new Map([[1, "lo"]]));
    expect(d !== null && "unsupported" in d ? d.unsupported : "").toContain("not in this namespace");
  });

  test("rules: the default local rule and a rule with every kind of selector", () => {
    expect(decodeRule(one(RULE_DEFAULT_LOCAL))).toMatchObject({ priority: 0, table: 255, action: 1, protocol: 2, src: null });
    expect(decodeRule(one(RULE_1002))).toMatchObject({
      family: "inet",
      priority: 1002,
      action: 8,
      dst: "10.5.0.0",
      dstLen: 16,
      invert: true,
      uidRange: { start: 100, end: 200 },
      ipProto: 6,
      dport: { start: 80, end: 90 },
      sport: null,
      suppressPrefixlen: null,
      extra: [],
    });
  });

  test("NLMSG_ERROR with extended ack: errno and the kernel's words", () => {
    const m = one(ERR_EEXIST);
    expect(m.type).toBe(NLMSG.ERROR);
    expect(m.flags & NLM_F.CAPPED).toBe(NLM_F.CAPPED);
    expect(decodeError(m)).toEqual({ errno: 17, message: "ipv4: Address already assigned" });
  });

  test("an ACK is errno 0 without a message", () => {
    const body = new Uint8Array(4 + 16);
    const ack = decodeError({ type: NLMSG.ERROR, flags: 0, seq: 1, pid: 0, payload: body });
    expect(ack).toEqual({ errno: 0, message: undefined });
  });
});
