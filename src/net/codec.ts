/**
 * Netlink wire codec: nlmsghdr framing, rtattr TLVs, the fixed headers of rtnetlink messages
 * (ifinfomsg, ifaddrmsg, rtmsg, fib_rule_hdr) and NLMSG_ERROR with extended-ack text.
 * Pure: bytes in, values out, and the reverse. All integers are host order, which is
 * little-endian on both architectures nvwa supports (x86_64, arm64).
 */
import { NvwaError } from "../errors.ts";
import { align4, concat, dataView as view } from "../../ffi/bytes.ts";
import { NLM_F, NLMSG, NLMSGERR_ATTR_MSG } from "./constants.ts";

/** The integer writers and the alignment are ffi/bytes.ts's, shared with ffi/netlink.ts. */
export { align4, i32, u8, u16, u16be, u32, u64 } from "../../ffi/bytes.ts";

export const NLMSG_HDRLEN = 16;
const RTA_HDRLEN = 4;
/** nla_type carries two flag bits (NESTED, NET_BYTEORDER) above the type number. */
const NLA_TYPE_MASK = 0x3fff;

function malformed(what: string): NvwaError {
  return new NvwaError("net.netlink-malformed", `malformed netlink message from the kernel: ${what}`, {
    hint: "this is a bug in nvwa's netlink codec or an unexpected kernel; please report it with the kernel version",
  });
}

// ---------------------------------------------------------------- nlmsghdr

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header, up to nlmsg_len. */
  payload: Uint8Array;
}

export function encodeMessage(h: { type: number; flags: number; seq: number; pid?: number }, body: Uint8Array): Uint8Array {
  const len = NLMSG_HDRLEN + body.length;
  const out = new Uint8Array(align4(len));
  const v = view(out);
  v.setUint32(0, len, true);
  v.setUint16(4, h.type, true);
  v.setUint16(6, h.flags, true);
  v.setUint32(8, h.seq, true);
  v.setUint32(12, h.pid ?? 0, true);
  out.set(body, NLMSG_HDRLEN);
  return out;
}

/** Splits one received datagram into its messages; a length that does not fit is an error. */
export function decodeMessages(buf: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const v = view(buf.subarray(off));
    const len = v.getUint32(0, true);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw malformed(`nlmsg_len ${len} at offset ${off} of a ${buf.length}-byte datagram`);
    }
    out.push({
      type: v.getUint16(4, true),
      flags: v.getUint16(6, true),
      seq: v.getUint32(8, true),
      pid: v.getUint32(12, true),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  if (off < buf.length && buf.length - off >= NLMSG_HDRLEN) throw malformed("trailing bytes after the last message");
  return out;
}

// ---------------------------------------------------------------- rtattr

export interface AttrIn {
  type: number;
  /** Raw bytes, or nested attributes. */
  value: Uint8Array | AttrIn[];
}

export function encodeAttrs(attrs: AttrIn[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const a of attrs) {
    const data = a.value instanceof Uint8Array ? a.value : encodeAttrs(a.value);
    const len = RTA_HDRLEN + data.length;
    const out = new Uint8Array(align4(len));
    const v = view(out);
    v.setUint16(0, len, true);
    v.setUint16(2, a.type, true);
    out.set(data, RTA_HDRLEN);
    parts.push(out);
  }
  return concat(parts);
}

/** NUL-terminated string attribute (what the kernel expects for names and kinds). */
export function str(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

export type Attrs = Map<number, Uint8Array>;

/** Parses a run of rtattrs. A repeated type keeps the last value (the kernel never repeats
 * the ones nvwa reads). */
export function decodeAttrs(buf: Uint8Array): Attrs {
  const out: Attrs = new Map();
  for (const [type, value] of decodeAttrList(buf)) out.set(type, value);
  return out;
}

export function decodeAttrList(buf: Uint8Array): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  let off = 0;
  while (off + RTA_HDRLEN <= buf.length) {
    const v = view(buf.subarray(off));
    const len = v.getUint16(0, true);
    const type = v.getUint16(2, true) & NLA_TYPE_MASK;
    if (len < RTA_HDRLEN || off + len > buf.length) throw malformed(`rta_len ${len} at offset ${off} of ${buf.length}`);
    out.push([type, buf.subarray(off + RTA_HDRLEN, off + len)]);
    off += align4(len);
  }
  return out;
}

/** A fixed-size attribute read with `get`, or undefined when absent; too short is malformed. */
function readFixed(b: Uint8Array | undefined, size: number, what: string, get: (v: DataView) => number): number | undefined {
  if (b === undefined) return undefined;
  if (b.length < size) throw malformed(`${what} attribute too short`);
  return get(view(b));
}

export const readU8 = (b: Uint8Array | undefined): number | undefined => readFixed(b, 1, "u8", (v) => v.getUint8(0));
export const readU16 = (b: Uint8Array | undefined): number | undefined => readFixed(b, 2, "u16", (v) => v.getUint16(0, true));
export const readU16be = (b: Uint8Array | undefined): number | undefined => readFixed(b, 2, "u16", (v) => v.getUint16(0, false));
export const readU32 = (b: Uint8Array | undefined): number | undefined => readFixed(b, 4, "u32", (v) => v.getUint32(0, true));
export const readI32 = (b: Uint8Array | undefined): number | undefined => readFixed(b, 4, "s32", (v) => v.getInt32(0, true));
export function readStr(b: Uint8Array | undefined): string | undefined {
  if (b === undefined) return undefined;
  const nul = b.indexOf(0);
  return new TextDecoder().decode(nul === -1 ? b : b.subarray(0, nul));
}

export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new RangeError(`not hex: ${s}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(i * 2, i * 2 + 2), 16);
  return out;
}

// ---------------------------------------------------------------- fixed headers

export interface IfInfoMsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}
export const IFINFOMSG_LEN = 16;

export function encodeIfInfoMsg(m: IfInfoMsg): Uint8Array {
  const b = new Uint8Array(IFINFOMSG_LEN);
  const v = view(b);
  v.setUint8(0, m.family);
  v.setUint16(2, m.type, true);
  v.setInt32(4, m.index, true);
  v.setUint32(8, m.flags >>> 0, true);
  v.setUint32(12, m.change >>> 0, true);
  return b;
}
export function decodeIfInfoMsg(p: Uint8Array): { hdr: IfInfoMsg; attrs: Attrs } {
  if (p.length < IFINFOMSG_LEN) throw malformed(`ifinfomsg of ${p.length} bytes`);
  const v = view(p);
  return {
    hdr: {
      family: v.getUint8(0),
      type: v.getUint16(2, true),
      index: v.getInt32(4, true),
      flags: v.getUint32(8, true),
      change: v.getUint32(12, true),
    },
    attrs: decodeAttrs(p.subarray(IFINFOMSG_LEN)),
  };
}

export interface IfAddrMsg {
  family: number;
  prefixlen: number;
  flags: number;
  scope: number;
  index: number;
}
export const IFADDRMSG_LEN = 8;

export function encodeIfAddrMsg(m: IfAddrMsg): Uint8Array {
  const b = new Uint8Array(IFADDRMSG_LEN);
  const v = view(b);
  v.setUint8(0, m.family);
  v.setUint8(1, m.prefixlen);
  v.setUint8(2, m.flags & 0xff);
  v.setUint8(3, m.scope);
  v.setUint32(4, m.index, true);
  return b;
}
export function decodeIfAddrMsg(p: Uint8Array): { hdr: IfAddrMsg; attrs: Attrs } {
  if (p.length < IFADDRMSG_LEN) throw malformed(`ifaddrmsg of ${p.length} bytes`);
  const v = view(p);
  return {
    hdr: {
      family: v.getUint8(0),
      prefixlen: v.getUint8(1),
      flags: v.getUint8(2),
      scope: v.getUint8(3),
      index: v.getUint32(4, true),
    },
    attrs: decodeAttrs(p.subarray(IFADDRMSG_LEN)),
  };
}

/** struct rtmsg and struct fib_rule_hdr share one shape: eight u8 and a u32 of flags. */
export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}
export const RTMSG_LEN = 12;

export function encodeRtMsg(m: RtMsg): Uint8Array {
  const b = new Uint8Array(RTMSG_LEN);
  const v = view(b);
  [m.family, m.dstLen, m.srcLen, m.tos, m.table, m.protocol, m.scope, m.type].forEach((x, i) => v.setUint8(i, x));
  v.setUint32(8, m.flags >>> 0, true);
  return b;
}
export function decodeRtMsg(p: Uint8Array): { hdr: RtMsg; attrs: Attrs } {
  if (p.length < RTMSG_LEN) throw malformed(`rtmsg of ${p.length} bytes`);
  const v = view(p);
  return {
    hdr: {
      family: v.getUint8(0),
      dstLen: v.getUint8(1),
      srcLen: v.getUint8(2),
      tos: v.getUint8(3),
      table: v.getUint8(4),
      protocol: v.getUint8(5),
      scope: v.getUint8(6),
      type: v.getUint8(7),
      flags: v.getUint32(8, true),
    },
    attrs: decodeAttrs(p.subarray(RTMSG_LEN)),
  };
}

export interface FibRuleHdr {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  action: number;
  flags: number;
}
export const FIB_RULE_HDR_LEN = 12;

export function encodeFibRuleHdr(m: FibRuleHdr): Uint8Array {
  const b = new Uint8Array(FIB_RULE_HDR_LEN);
  const v = view(b);
  v.setUint8(0, m.family);
  v.setUint8(1, m.dstLen);
  v.setUint8(2, m.srcLen);
  v.setUint8(3, m.tos);
  v.setUint8(4, m.table);
  // bytes 5 and 6 are res1/res2, reserved
  v.setUint8(7, m.action);
  v.setUint32(8, m.flags >>> 0, true);
  return b;
}
export function decodeFibRuleHdr(p: Uint8Array): { hdr: FibRuleHdr; attrs: [number, Uint8Array][] } {
  if (p.length < FIB_RULE_HDR_LEN) throw malformed(`fib_rule_hdr of ${p.length} bytes`);
  const v = view(p);
  return {
    hdr: {
      family: v.getUint8(0),
      dstLen: v.getUint8(1),
      srcLen: v.getUint8(2),
      tos: v.getUint8(3),
      table: v.getUint8(4),
      action: v.getUint8(7),
      flags: v.getUint32(8, true),
    },
    attrs: decodeAttrList(p.subarray(FIB_RULE_HDR_LEN)),
  };
}

// ---------------------------------------------------------------- rtnexthop (RTA_MULTIPATH)

export interface RtNextHop {
  flags: number;
  /** rtnh_hops: weight - 1. */
  hops: number;
  ifindex: number;
  attrs: Attrs;
}
const RTNH_LEN = 8;

export function decodeNextHops(b: Uint8Array): RtNextHop[] {
  const out: RtNextHop[] = [];
  let off = 0;
  while (off + RTNH_LEN <= b.length) {
    const v = view(b.subarray(off));
    const len = v.getUint16(0, true);
    if (len < RTNH_LEN || off + len > b.length) throw malformed(`rtnh_len ${len} at offset ${off}`);
    out.push({
      flags: v.getUint8(2),
      hops: v.getUint8(3),
      ifindex: v.getInt32(4, true),
      attrs: decodeAttrs(b.subarray(off + RTNH_LEN, off + len)),
    });
    off += align4(len);
  }
  return out;
}

export function encodeNextHops(hops: { flags: number; hops: number; ifindex: number; attrs: AttrIn[] }[]): Uint8Array {
  return concat(
    hops.map((h) => {
      const attrs = encodeAttrs(h.attrs);
      const out = new Uint8Array(RTNH_LEN + attrs.length);
      const v = view(out);
      v.setUint16(0, out.length, true);
      v.setUint8(2, h.flags);
      v.setUint8(3, h.hops);
      v.setInt32(4, h.ifindex, true);
      out.set(attrs, RTNH_LEN);
      return out;
    }),
  );
}

// ---------------------------------------------------------------- NLMSG_ERROR

export interface NlAck {
  /** 0 for an ACK, else a positive errno. */
  errno: number;
  /** The kernel's explanation (extended ack), when it gave one. */
  message: string | undefined;
}

/** Decodes the payload of an NLMSG_ERROR message (an ACK when errno is 0). */
export function decodeError(m: NlMessage): NlAck {
  if (m.type !== NLMSG.ERROR) throw malformed(`message type ${m.type} is not NLMSG_ERROR`);
  if (m.payload.length < 4 + NLMSG_HDRLEN) throw malformed(`NLMSG_ERROR of ${m.payload.length} bytes`);
  const v = view(m.payload);
  const error = v.getInt32(0, true);
  let message: string | undefined;
  if (m.flags & NLM_F.ACK_TLVS) {
    const origLen = v.getUint32(4, true);
    const skip = m.flags & NLM_F.CAPPED ? NLMSG_HDRLEN : align4(origLen);
    const tlvStart = 4 + skip;
    if (tlvStart <= m.payload.length) {
      message = readStr(decodeAttrs(m.payload.subarray(tlvStart)).get(NLMSGERR_ATTR_MSG));
    }
  }
  return { errno: error === 0 ? 0 : -error, message: message === "" ? undefined : message };
}
