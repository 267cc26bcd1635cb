/**
 * D-Bus wire format (pure): signatures, marshalling of values by signature, and whole messages
 * (header + body). Follows the D-Bus specification, "Message Protocol": every value is aligned
 * to its natural boundary counted from the start of the message; the body starts 8-aligned, so
 * a body marshalled on its own from offset 0 has the same bytes as inside the message.
 *
 * nvwa writes little-endian messages (both of its architectures are little-endian) and reads
 * either byte order, as the specification requires of a receiver.
 */
import { NvwaError } from "../errors.ts";

// Limits from the specification ("Valid Signatures", "Message Protocol").
export const MAX_SIGNATURE_LENGTH = 255;
export const MAX_ARRAY_LENGTH = 67_108_864; // 64 MiB
export const MAX_MESSAGE_LENGTH = 134_217_728; // 128 MiB
export const MAX_STRUCT_DEPTH = 32;
export const MAX_ARRAY_DEPTH = 32;
/** Arrays + structs + variants together (the spec's "total depth" of container nesting). */
export const MAX_TOTAL_DEPTH = 64;

export const MessageType = { methodCall: 1, methodReturn: 2, error: 3, signal: 4 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const MessageFlag = { noReplyExpected: 0x1, noAutoStart: 0x2, allowInteractiveAuthorization: 0x4 } as const;

/** Header field codes (spec, "Header Fields"). */
export const HeaderField = {
  path: 1, interface: 2, member: 3, errorName: 4, replySerial: 5, destination: 6, sender: 7, signature: 8, unixFds: 9,
} as const;

/** A value whose D-Bus type travels with it. */
export class Variant {
  constructor(
    readonly signature: string,
    readonly value: DBusValue,
  ) {}
}

export type DBusBasic = number | bigint | boolean | string;
/**
 * How values look in TypeScript: y n q i u h d → number, x t → bigint, b → boolean, s o g → string,
 * ay → Uint8Array (a plain number[] is accepted when marshalling), other arrays → arrays,
 * structs → arrays (tuples), dicts a{..} → Map (an array of [key, value] pairs is accepted too),
 * v → Variant.
 */
export type DBusValue = DBusBasic | Variant | Uint8Array | DBusValue[] | Map<DBusBasic, DBusValue>;

export type BasicCode = "y" | "b" | "n" | "q" | "i" | "u" | "x" | "t" | "d" | "s" | "o" | "g" | "h";
export type TypeNode =
  | { code: BasicCode }
  | { code: "v" }
  | { code: "a"; elem: TypeNode }
  | { code: "("; fields: TypeNode[] }
  | { code: "{"; key: TypeNode; value: TypeNode };

const BASIC = new Set<string>(["y", "b", "n", "q", "i", "u", "x", "t", "d", "s", "o", "g", "h"]);

function wireError(message: string, details: Record<string, unknown> = {}): NvwaError {
  return new NvwaError("dbus.bad-message", message, {
    hint: "the peer sent (or nvwa built) a message that breaks the D-Bus wire format; this is a bug in one of the two",
    details,
  });
}

function valueError(message: string): NvwaError {
  return new NvwaError("dbus.bad-value", message, {
    hint: "this is a bug in nvwa: a D-Bus call was given a value that does not match its signature",
  });
}

// ---------------------------------------------------------------------------------------------
// Signatures

/** Parses a signature into one node per complete type; throws dbus.bad-message when invalid. */
export function parseSignature(sig: string): TypeNode[] {
  if (sig.length > MAX_SIGNATURE_LENGTH) throw wireError(`signature longer than ${MAX_SIGNATURE_LENGTH}: "${sig.slice(0, 40)}…"`);
  const out: TypeNode[] = [];
  let pos = 0;
  const one = (arrays: number, structs: number): TypeNode => {
    if (arrays > MAX_ARRAY_DEPTH || structs > MAX_STRUCT_DEPTH) throw wireError(`signature nests too deeply: "${sig}"`);
    const c = sig[pos];
    if (c === undefined) throw wireError(`signature ends inside a type: "${sig}"`);
    pos++;
    if (BASIC.has(c)) return { code: c as BasicCode };
    if (c === "v") return { code: "v" };
    if (c === "a") {
      if (sig[pos] === "{") {
        pos++;
        const key = one(arrays + 1, structs);
        if (!BASIC.has(key.code)) throw wireError(`dict key must be a basic type: "${sig}"`);
        const value = one(arrays + 1, structs);
        if (sig[pos] !== "}") throw wireError(`dict entry must have exactly two types: "${sig}"`);
        pos++;
        return { code: "a", elem: { code: "{", key, value } };
      }
      return { code: "a", elem: one(arrays + 1, structs) };
    }
    if (c === "(") {
      const fields: TypeNode[] = [];
      while (sig[pos] !== ")") {
        if (pos >= sig.length) throw wireError(`unclosed struct in signature: "${sig}"`);
        fields.push(one(arrays, structs + 1));
      }
      pos++;
      if (fields.length === 0) throw wireError(`empty struct in signature: "${sig}"`);
      return { code: "(", fields };
    }
    throw wireError(`invalid type code "${c}" in signature "${sig}"`);
  };
  while (pos < sig.length) out.push(one(0, 0));
  return out;
}

export function signatureOf(node: TypeNode): string {
  switch (node.code) {
    case "a":
      return `a${signatureOf(node.elem)}`;
    case "(":
      return `(${node.fields.map(signatureOf).join("")})`;
    case "{":
      return `{${signatureOf(node.key)}${signatureOf(node.value)}}`;
    default:
      return node.code;
  }
}

function alignmentOf(node: TypeNode): number {
  switch (node.code) {
    case "y":
    case "g":
    case "v":
      return 1;
    case "n":
    case "q":
      return 2;
    case "b":
    case "i":
    case "u":
    case "h":
    case "s":
    case "o":
    case "a":
      return 4;
    case "x":
    case "t":
    case "d":
    case "(":
    case "{":
      return 8;
  }
}

// ---------------------------------------------------------------------------------------------
// Names (spec, "Valid Names")

const OBJECT_PATH = /^\/$|^(\/[A-Za-z0-9_]+)+$/;
const MEMBER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOTTED = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/;
const WELL_KNOWN_BUS = /^[A-Za-z_-][A-Za-z0-9_-]*(\.[A-Za-z_-][A-Za-z0-9_-]*)+$/;
const UNIQUE_BUS = /^:[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/;

export const isObjectPath = (s: string): boolean => OBJECT_PATH.test(s);
export const isMemberName = (s: string): boolean => s.length <= 255 && MEMBER.test(s);
export const isInterfaceName = (s: string): boolean => s.length <= 255 && DOTTED.test(s);
export const isBusName = (s: string): boolean =>
  s.length <= 255 && (WELL_KNOWN_BUS.test(s) || UNIQUE_BUS.test(s) || s === "org.freedesktop.DBus");

// ---------------------------------------------------------------------------------------------
// Marshalling

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  pos = 0;

  private grow(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  align(n: number): void {
    const pad = (n - (this.pos % n)) % n;
    this.grow(pad);
    this.buf.fill(0, this.pos, this.pos + pad);
    this.pos += pad;
  }

  u8(v: number): void {
    this.grow(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
  }
  i16(v: number): void {
    this.align(2);
    this.grow(2);
    this.view.setInt16(this.pos, v, true);
    this.pos += 2;
  }
  u16(v: number): void {
    this.align(2);
    this.grow(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
  }
  i32(v: number): void {
    this.align(4);
    this.grow(4);
    this.view.setInt32(this.pos, v, true);
    this.pos += 4;
  }
  u32(v: number): void {
    this.align(4);
    this.grow(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  u32At(at: number, v: number): void {
    this.view.setUint32(at, v, true);
  }
  i64(v: bigint): void {
    this.align(8);
    this.grow(8);
    this.view.setBigInt64(this.pos, v, true);
    this.pos += 8;
  }
  u64(v: bigint): void {
    this.align(8);
    this.grow(8);
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }
  f64(v: number): void {
    this.align(8);
    this.grow(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.grow(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

function intIn(v: DBusValue, code: string, lo: number, hi: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
    throw valueError(`D-Bus type "${code}" needs an integer in [${lo}, ${hi}], got ${describe(v)}`);
  }
  return v;
}

function bigIn(v: DBusValue, code: string, lo: bigint, hi: bigint): bigint {
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number" && Number.isSafeInteger(v)) b = BigInt(v);
  else throw valueError(`D-Bus type "${code}" needs a bigint, got ${describe(v)}`);
  if (b < lo || b > hi) throw valueError(`D-Bus type "${code}" value ${b} out of range`);
  return b;
}

function stringOf(v: DBusValue, code: string): string {
  if (typeof v !== "string") throw valueError(`D-Bus type "${code}" needs a string, got ${describe(v)}`);
  if (v.includes("\0")) throw valueError(`D-Bus strings cannot contain NUL bytes`);
  return v;
}

function describe(v: DBusValue): string {
  if (v instanceof Variant) return `variant<${v.signature}>`;
  if (v instanceof Map) return "Map";
  if (v instanceof Uint8Array) return "Uint8Array";
  if (Array.isArray(v)) return "array";
  return `${typeof v} ${String(v).slice(0, 40)}`;
}

function writeValue(w: Writer, node: TypeNode, v: DBusValue, depth: number): void {
  if (depth > MAX_TOTAL_DEPTH) throw valueError("value nests deeper than D-Bus allows (64)");
  switch (node.code) {
    case "y":
      w.u8(intIn(v, "y", 0, 0xff));
      return;
    case "b":
      if (typeof v !== "boolean") throw valueError(`D-Bus type "b" needs a boolean, got ${describe(v)}`);
      w.u32(v ? 1 : 0);
      return;
    case "n":
      w.i16(intIn(v, "n", -0x8000, 0x7fff));
      return;
    case "q":
      w.u16(intIn(v, "q", 0, 0xffff));
      return;
    case "i":
      w.i32(intIn(v, "i", -0x80000000, 0x7fffffff));
      return;
    case "u":
    case "h":
      w.u32(intIn(v, node.code, 0, 0xffffffff));
      return;
    case "x":
      w.i64(bigIn(v, "x", -(1n << 63n), (1n << 63n) - 1n));
      return;
    case "t":
      w.u64(bigIn(v, "t", 0n, (1n << 64n) - 1n));
      return;
    case "d":
      if (typeof v !== "number") throw valueError(`D-Bus type "d" needs a number, got ${describe(v)}`);
      w.f64(v);
      return;
    case "s":
    case "o": {
      const s = stringOf(v, node.code);
      if (node.code === "o" && !isObjectPath(s)) throw valueError(`"${s}" is not a valid D-Bus object path`);
      const b = utf8.encode(s);
      w.u32(b.length);
      w.bytes(b);
      w.u8(0);
      return;
    }
    case "g": {
      const s = stringOf(v, "g");
      parseSignatureForValue(s);
      w.u8(s.length);
      w.bytes(utf8.encode(s));
      w.u8(0);
      return;
    }
    case "v": {
      if (!(v instanceof Variant)) throw valueError(`D-Bus type "v" needs a Variant, got ${describe(v)}`);
      const inner = parseSignatureForValue(v.signature);
      if (inner.length !== 1) throw valueError(`a variant holds exactly one complete type, not "${v.signature}"`);
      w.u8(v.signature.length);
      w.bytes(utf8.encode(v.signature));
      w.u8(0);
      writeValue(w, inner[0] as TypeNode, v.value, depth + 1);
      return;
    }
    case "(": {
      if (!Array.isArray(v) || v.length !== node.fields.length) {
        throw valueError(`struct ${signatureOf(node)} needs an array of ${node.fields.length} values, got ${describe(v)}`);
      }
      w.align(8);
      node.fields.forEach((f, i) => writeValue(w, f, v[i] as DBusValue, depth + 1));
      return;
    }
    case "{":
      throw valueError("a dict entry can only appear inside an array");
    case "a": {
      w.align(4);
      const lengthAt = w.pos;
      w.u32(0);
      // The padding to the element's alignment comes after the length and is not counted in it.
      w.align(alignmentOf(node.elem));
      const start = w.pos;
      const elem = node.elem;
      if (elem.code === "{") {
        const entries: [DBusValue, DBusValue][] =
          v instanceof Map ? [...v.entries()] : Array.isArray(v) ? v.map((e) => pairOf(e)) : badArray(node, v);
        for (const [k, val] of entries) {
          w.align(8);
          writeValue(w, elem.key, k, depth + 1);
          writeValue(w, elem.value, val, depth + 1);
        }
      } else if (elem.code === "y" && v instanceof Uint8Array) {
        w.bytes(v);
      } else if (Array.isArray(v)) {
        for (const item of v) writeValue(w, elem, item, depth + 1);
      } else {
        badArray(node, v);
      }
      const len = w.pos - start;
      if (len > MAX_ARRAY_LENGTH) throw valueError(`array longer than ${MAX_ARRAY_LENGTH} bytes`);
      w.u32At(lengthAt, len);
      return;
    }
  }
}

function pairOf(e: DBusValue): [DBusValue, DBusValue] {
  if (!Array.isArray(e) || e.length !== 2) throw valueError("dict entries given as an array must be [key, value] pairs");
  return [e[0] as DBusValue, e[1] as DBusValue];
}

function badArray(node: TypeNode, v: DBusValue): never {
  throw valueError(`${signatureOf(node)} needs an array, got ${describe(v)}`);
}

function parseSignatureForValue(sig: string): TypeNode[] {
  try {
    return parseSignature(sig);
  } catch (e) {
    throw valueError(`invalid signature "${sig}": ${(e as Error).message}`);
  }
}

/** Marshals `values` by `signature`, aligned as if starting at an 8-aligned offset. */
export function marshal(signature: string, values: readonly DBusValue[]): Uint8Array {
  const nodes = parseSignatureForValue(signature);
  if (nodes.length !== values.length) {
    throw valueError(`signature "${signature}" has ${nodes.length} types but ${values.length} values were given`);
  }
  const w = new Writer();
  nodes.forEach((n, i) => writeValue(w, n, values[i] as DBusValue, 0));
  return w.result();
}

// ---------------------------------------------------------------------------------------------
// Unmarshalling

class Reader {
  readonly view: DataView;
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    readonly le: boolean,
    start: number,
    readonly end: number,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
  }

  need(n: number): void {
    if (this.pos + n > this.end) throw wireError(`message truncated: need ${n} bytes at offset ${this.pos}`, { offset: this.pos });
  }
  align(n: number): void {
    const pad = (n - (this.pos % n)) % n;
    this.need(pad);
    for (let i = 0; i < pad; i++) {
      if (this.buf[this.pos + i] !== 0) throw wireError(`non-zero alignment padding at offset ${this.pos + i}`);
    }
    this.pos += pad;
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }
  i16(): number {
    this.align(2);
    this.need(2);
    const v = this.view.getInt16(this.pos, this.le);
    this.pos += 2;
    return v;
  }
  u16(): number {
    this.align(2);
    this.need(2);
    const v = this.view.getUint16(this.pos, this.le);
    this.pos += 2;
    return v;
  }
  i32(): number {
    this.align(4);
    this.need(4);
    const v = this.view.getInt32(this.pos, this.le);
    this.pos += 4;
    return v;
  }
  u32(): number {
    this.align(4);
    this.need(4);
    const v = this.view.getUint32(this.pos, this.le);
    this.pos += 4;
    return v;
  }
  i64(): bigint {
    this.align(8);
    this.need(8);
    const v = this.view.getBigInt64(this.pos, this.le);
    this.pos += 8;
    return v;
  }
  u64(): bigint {
    this.align(8);
    this.need(8);
    const v = this.view.getBigUint64(this.pos, this.le);
    this.pos += 8;
    return v;
  }
  f64(): number {
    this.align(8);
    this.need(8);
    const v = this.view.getFloat64(this.pos, this.le);
    this.pos += 8;
    return v;
  }
  text(len: number): string {
    this.need(len + 1);
    const bytes = this.buf.subarray(this.pos, this.pos + len);
    if (this.buf[this.pos + len] !== 0) throw wireError(`string at offset ${this.pos} is not NUL-terminated`);
    if (bytes.includes(0)) throw wireError(`string at offset ${this.pos} contains a NUL byte`);
    let s: string;
    try {
      s = utf8Strict.decode(bytes);
    } catch {
      throw wireError(`string at offset ${this.pos} is not valid UTF-8`);
    }
    this.pos += len + 1;
    return s;
  }
}

function readValue(r: Reader, node: TypeNode, depth: number): DBusValue {
  if (depth > MAX_TOTAL_DEPTH) throw wireError("value nests deeper than D-Bus allows (64)");
  switch (node.code) {
    case "y":
      return r.u8();
    case "b": {
      const v = r.u32();
      if (v > 1) throw wireError(`boolean with value ${v} (only 0 and 1 are valid)`);
      return v === 1;
    }
    case "n":
      return r.i16();
    case "q":
      return r.u16();
    case "i":
      return r.i32();
    case "u":
    case "h":
      return r.u32();
    case "x":
      return r.i64();
    case "t":
      return r.u64();
    case "d":
      return r.f64();
    case "s":
    case "o": {
      const s = r.text(r.u32());
      if (node.code === "o" && !isObjectPath(s)) throw wireError(`invalid object path "${s.slice(0, 80)}"`);
      return s;
    }
    case "g": {
      const s = r.text(r.u8());
      parseSignature(s);
      return s;
    }
    case "v": {
      const sig = r.text(r.u8());
      const nodes = parseSignature(sig);
      if (nodes.length !== 1) throw wireError(`variant signature "${sig}" is not a single complete type`);
      return new Variant(sig, readValue(r, nodes[0] as TypeNode, depth + 1));
    }
    case "(": {
      r.align(8);
      return node.fields.map((f) => readValue(r, f, depth + 1));
    }
    case "{":
      throw wireError("dict entry outside an array");
    case "a": {
      const len = r.u32();
      if (len > MAX_ARRAY_LENGTH) throw wireError(`array length ${len} exceeds the 64 MiB limit`);
      r.align(alignmentOf(node.elem));
      r.need(len);
      const end = r.pos + len;
      const elem = node.elem;
      if (elem.code === "y") {
        const bytes = r.buf.slice(r.pos, end);
        r.pos = end;
        return bytes;
      }
      if (elem.code === "{") {
        const map = new Map<DBusBasic, DBusValue>();
        while (r.pos < end) {
          r.align(8);
          const k = readValue(r, elem.key, depth + 1) as DBusBasic;
          map.set(k, readValue(r, elem.value, depth + 1));
        }
        if (r.pos !== end) throw wireError("array contents overrun the declared array length");
        return map;
      }
      const items: DBusValue[] = [];
      while (r.pos < end) items.push(readValue(r, elem, depth + 1));
      if (r.pos !== end) throw wireError("array contents overrun the declared array length");
      return items;
    }
  }
}

/** Reads a body of `signature` that fills `buf` exactly (the body starts 8-aligned). */
export function unmarshal(signature: string, buf: Uint8Array, littleEndian = true): DBusValue[] {
  const nodes = parseSignature(signature);
  const r = new Reader(buf, littleEndian, 0, buf.length);
  const out = nodes.map((n) => readValue(r, n, 0));
  if (r.pos !== buf.length) throw wireError(`${buf.length - r.pos} unexpected bytes after the body of signature "${signature}"`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Messages

export interface Message {
  type: MessageType;
  flags: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  /** "" when there is no body. */
  signature: string;
  body: DBusValue[];
  unixFds?: number;
}

const FIELD_SIGNATURE: Record<number, string> = {
  [HeaderField.path]: "o",
  [HeaderField.interface]: "s",
  [HeaderField.member]: "s",
  [HeaderField.errorName]: "s",
  [HeaderField.replySerial]: "u",
  [HeaderField.destination]: "s",
  [HeaderField.sender]: "s",
  [HeaderField.signature]: "g",
  [HeaderField.unixFds]: "u",
};

function checkRequiredFields(m: Message, fail: (msg: string) => NvwaError): void {
  const need = (ok: unknown, what: string): void => {
    if (ok === undefined) throw fail(`${typeName(m.type)} message without ${what}`);
  };
  if (m.type === MessageType.methodCall) {
    need(m.path, "PATH");
    need(m.member, "MEMBER");
  } else if (m.type === MessageType.signal) {
    need(m.path, "PATH");
    need(m.interface, "INTERFACE");
    need(m.member, "MEMBER");
  } else if (m.type === MessageType.error) {
    need(m.errorName, "ERROR_NAME");
    need(m.replySerial, "REPLY_SERIAL");
  } else if (m.type === MessageType.methodReturn) {
    need(m.replySerial, "REPLY_SERIAL");
  }
}

function typeName(t: number): string {
  return ["invalid", "METHOD_CALL", "METHOD_RETURN", "ERROR", "SIGNAL"][t] ?? `type ${t}`;
}

/**
 * Encodes a message, little-endian. Header fields are written in code order
 * (PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE, UNIX_FDS);
 * the specification allows any order.
 */
export function encodeMessage(m: Message): Uint8Array {
  if (!Number.isInteger(m.serial) || m.serial < 1 || m.serial > 0xffffffff) throw valueError(`invalid serial ${m.serial}`);
  checkRequiredFields(m, valueError);
  if (m.path !== undefined && !isObjectPath(m.path)) throw valueError(`"${m.path}" is not a valid D-Bus object path`);
  if (m.interface !== undefined && !isInterfaceName(m.interface)) throw valueError(`"${m.interface}" is not a valid D-Bus interface name`);
  if (m.member !== undefined && !isMemberName(m.member)) throw valueError(`"${m.member}" is not a valid D-Bus member name`);
  if (m.errorName !== undefined && !isInterfaceName(m.errorName)) throw valueError(`"${m.errorName}" is not a valid D-Bus error name`);
  if (m.destination !== undefined && !isBusName(m.destination)) throw valueError(`"${m.destination}" is not a valid D-Bus bus name`);

  const body = m.signature === "" ? new Uint8Array(0) : marshal(m.signature, m.body);
  const fields: [number, Variant][] = [];
  const add = (code: number, v: DBusValue | undefined): void => {
    if (v !== undefined) fields.push([code, new Variant(FIELD_SIGNATURE[code] as string, v)]);
  };
  add(HeaderField.path, m.path);
  add(HeaderField.interface, m.interface);
  add(HeaderField.member, m.member);
  add(HeaderField.errorName, m.errorName);
  add(HeaderField.replySerial, m.replySerial);
  add(HeaderField.destination, m.destination);
  add(HeaderField.sender, m.sender);
  if (m.signature !== "") add(HeaderField.signature, m.signature);
  add(HeaderField.unixFds, m.unixFds);

  const w = new Writer();
  w.u8(0x6c); // 'l': little-endian
  w.u8(m.type);
  w.u8(m.flags);
  w.u8(1); // protocol version
  w.u32(body.length);
  w.u32(m.serial);
  writeValue(w, { code: "a", elem: { code: "(", fields: [{ code: "y" }, { code: "v" }] } }, fields, 0);
  w.align(8);
  w.bytes(body);
  if (w.pos > MAX_MESSAGE_LENGTH) throw valueError(`message of ${w.pos} bytes exceeds the 128 MiB D-Bus limit`);
  return w.result();
}

/**
 * How many bytes the message at the start of `buf` occupies, once its 16-byte fixed header is
 * there; undefined before that. Throws dbus.bad-message for a header no valid message can have.
 */
export function messageLength(buf: Uint8Array): number | undefined {
  if (buf.length < 16) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const endian = buf[0];
  if (endian !== 0x6c && endian !== 0x42) throw wireError(`invalid endianness byte 0x${(endian ?? 0).toString(16)}`);
  const le = endian === 0x6c;
  if (buf[3] !== 1) throw wireError(`unsupported D-Bus protocol version ${buf[3]}`);
  const bodyLen = view.getUint32(4, le);
  const fieldsLen = view.getUint32(12, le);
  if (fieldsLen > MAX_ARRAY_LENGTH) throw wireError(`header field array of ${fieldsLen} bytes exceeds the limit`);
  const headerEnd = Math.ceil((16 + fieldsLen) / 8) * 8;
  const total = headerEnd + bodyLen;
  if (total > MAX_MESSAGE_LENGTH) throw wireError(`message of ${total} bytes exceeds the 128 MiB limit`);
  return total;
}

/** Decodes exactly one whole message (use messageLength to cut it from a stream). */
export function decodeMessage(buf: Uint8Array): Message {
  const total = messageLength(buf);
  if (total === undefined) throw wireError(`message shorter than its 16-byte fixed header`);
  if (total !== buf.length) throw wireError(`message is ${buf.length} bytes but its header says ${total}`);
  const le = buf[0] === 0x6c;
  const r = new Reader(buf, le, 1, buf.length);
  const type = r.u8();
  const flags = r.u8();
  r.u8(); // version, checked by messageLength
  const bodyLen = r.u32();
  const serial = r.u32();
  if (serial === 0) throw wireError("message with serial 0");
  const fieldsNode: TypeNode = { code: "a", elem: { code: "(", fields: [{ code: "y" }, { code: "v" }] } };
  const fields = readValue(r, fieldsNode, 0) as DBusValue[];
  r.align(8);
  const bodyStart = r.pos;
  if (bodyStart + bodyLen !== buf.length) throw wireError("body length does not match the message size");

  const m: Message = { type: type as MessageType, flags, serial, signature: "", body: [] };
  for (const f of fields) {
    const [code, variant] = f as [number, Variant];
    const want = FIELD_SIGNATURE[code];
    if (want === undefined) continue; // unknown header fields must be ignored (spec)
    if (variant.signature !== want) throw wireError(`header field ${code} has type "${variant.signature}", expected "${want}"`);
    const v = variant.value;
    switch (code) {
      case HeaderField.path:
        m.path = v as string;
        break;
      case HeaderField.interface:
        m.interface = v as string;
        break;
      case HeaderField.member:
        m.member = v as string;
        break;
      case HeaderField.errorName:
        m.errorName = v as string;
        break;
      case HeaderField.replySerial:
        m.replySerial = v as number;
        break;
      case HeaderField.destination:
        m.destination = v as string;
        break;
      case HeaderField.sender:
        m.sender = v as string;
        break;
      case HeaderField.signature:
        m.signature = v as string;
        break;
      case HeaderField.unixFds:
        m.unixFds = v as number;
        break;
    }
  }
  if (type >= 1 && type <= 4) checkRequiredFields(m, wireError);
  if (m.signature === "" && bodyLen > 0) throw wireError("message has a body but no SIGNATURE header field");
  const body = buf.subarray(bodyStart);
  // The body is 8-aligned within the message, so reading it from its own offset 0 keeps the alignment.
  m.body = m.signature === "" ? [] : unmarshal(m.signature, body, le);
  return m;
}
