/**
 * D-Bus wire format against byte vectors worked out by hand from the D-Bus specification
 * ("Message Protocol": marshalling, alignment, header fields). Each vector is written out with
 * offsets in comments; none was produced by the code under test.
 */
import { describe, expect, test } from "bun:test";
import {
  decodeMessage,
  encodeMessage,
  marshal,
  messageLength,
  MessageType,
  parseSignature,
  signatureOf,
  unmarshal,
  Variant,
  type DBusValue,
} from "../../src/systemd/dbus-wire.ts";
import { NvwaError } from "../../src/errors.ts";

/** Concatenates hex groups ("6c 01") and quoted ASCII ('"Hello"') into bytes. */
function bytes(...parts: string[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (p.startsWith('"')) for (const ch of p.slice(1, -1)) out.push(ch.charCodeAt(0));
    else for (const h of p.split(/\s+/).filter(Boolean)) out.push(parseInt(h, 16));
  }
  return new Uint8Array(out);
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof NvwaError ? e.code : `non-nvwa: ${String(e)}`;
  }
  return "no error";
}

describe("marshal by hand-worked vectors", () => {
  test("y q x: padding up to each alignment", () => {
    // 0: y=01 | 1: pad | 2: q=0x0203 LE | 4..7: pad to 8 | 8: x=-2 as 64-bit two's complement LE
    const want = bytes("01 00 03 02 00 00 00 00 fe ff ff ff ff ff ff ff");
    expect(marshal("yqx", [1, 0x0203, -2n])).toEqual(want);
    expect(unmarshal("yqx", want)).toEqual([1, 0x0203, -2n]);
  });

  test("a{sv}: array length excludes the padding before the first 8-aligned dict entry", () => {
    // 0: array length 38 (0x26) | 4..7: pad to 8
    // 8: key s len 1, "A", NUL (→14) | 14: variant sig len 1 "u" NUL (→17) | 17..19 pad | 20: u 7
    // 24: key s len 2, "Bc", NUL (→31) | 31: sig len 2 "as" NUL (→35) | 35: pad | 36: inner array len 6
    // 40: s len 1 "x" NUL (→46). Outer length = 46 - 8 = 38.
    const want = bytes(
      "26 00 00 00 00 00 00 00",
      "01 00 00 00", '"A"', "00", "01", '"u"', "00", "00 00 00", "07 00 00 00",
      "02 00 00 00", '"Bc"', "00", "02", '"as"', "00", "00", "06 00 00 00",
      "01 00 00 00", '"x"', "00",
    );
    const value = new Map<string, DBusValue>([
      ["A", new Variant("u", 7)],
      ["Bc", new Variant("as", ["x"])],
    ]);
    expect(want.length).toBe(46);
    expect(marshal("a{sv}", [value])).toEqual(want);
    expect(unmarshal("a{sv}", want)).toEqual([value]);
  });

  test("b then an empty at: the padding after the length is there even with no elements", () => {
    // 0: b=1 as u32 | 4: array length 0 | (8: already 8-aligned; no elements)
    const want = bytes("01 00 00 00 00 00 00 00");
    expect(marshal("bat", [true, []])).toEqual(want);
    expect(unmarshal("bat", want)).toEqual([true, []]);
    // b then an empty a(y): the length ends at 8 and the struct alignment adds nothing
    // 0: b=0 | 4: len 0 | 8: end
    expect(marshal("ba(y)", [false, []])).toEqual(bytes("00 00 00 00 00 00 00 00"));
    // y then an empty at: 0: y | 1..3 pad | 4: len 0 | 8: (pad to 8 is zero bytes)
    expect(marshal("yat", [9, []])).toEqual(bytes("09 00 00 00 00 00 00 00"));
    // i then ax with one element: 0: i=-1 | 4: len 8 | 8: x=1
    expect(marshal("iax", [-1, [1n]])).toEqual(bytes("ff ff ff ff 08 00 00 00 01 00 00 00 00 00 00 00"));
  });

  test("y then a struct (ys): the struct starts 8-aligned", () => {
    // 0: y=0x2a | 1..7: pad | 8: y=1 | 9..11: pad | 12: len 2 | 16: "hi" NUL (→19)
    const want = bytes("2a 00 00 00 00 00 00 00 01 00 00 00 02 00 00 00", '"hi"', "00");
    expect(marshal("y(ys)", [0x2a, [1, "hi"]])).toEqual(want);
    expect(unmarshal("y(ys)", want)).toEqual([0x2a, [1, "hi"]]);
  });

  test("g, o, n, q, d, h, u and i", () => {
    // g: length byte 5, "a{sv}", NUL
    expect(marshal("g", ["a{sv}"])).toEqual(bytes("05", '"a{sv}"', "00"));
    // o: like s; "/a/b" is 4 bytes
    expect(marshal("o", ["/a/b"])).toEqual(bytes("04 00 00 00", '"/a/b"', "00"));
    // n=-2, q=0xfffe: 0: n | 2: q
    expect(marshal("nq", [-2, 0xfffe])).toEqual(bytes("fe ff fe ff"));
    // d=1.5: IEEE 754 0x3FF8000000000000, little-endian
    expect(marshal("d", [1.5])).toEqual(bytes("00 00 00 00 00 00 f8 3f"));
    // y then d: 7 bytes of padding
    expect(marshal("yd", [1, -2])).toEqual(bytes("01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 c0"));
    // u then i then h
    expect(marshal("uih", [0xffffffff, -2147483648, 3])).toEqual(bytes("ff ff ff ff 00 00 00 80 03 00 00 00"));
    // t max
    expect(marshal("t", [(1n << 64n) - 1n])).toEqual(bytes("ff ff ff ff ff ff ff ff"));
  });

  test("variant holding a struct and a byte array", () => {
    // 0: sig len 4 "(yu)" NUL (→6) | 6,7: pad to 8 | 8: y=5 | 9..11 pad | 12: u=6
    expect(marshal("v", [new Variant("(yu)", [5, 6])])).toEqual(
      bytes("04", '"(yu)"', "00 00 00 05 00 00 00 06 00 00 00"),
    );
    // ay: 0: len 3 | 4: bytes
    expect(marshal("ay", [new Uint8Array([1, 2, 3])])).toEqual(bytes("03 00 00 00 01 02 03"));
    expect(marshal("ay", [[1, 2, 3]])).toEqual(bytes("03 00 00 00 01 02 03"));
    expect(unmarshal("ay", bytes("03 00 00 00 01 02 03"))).toEqual([new Uint8Array([1, 2, 3])]);
  });
});

describe("messages by hand-worked vectors", () => {
  // The Hello call every bus client sends first: PATH, INTERFACE, MEMBER, DESTINATION, no body.
  const hello = bytes(
    "6c 01 00 01", // 'l', METHOD_CALL, flags 0, version 1
    "00 00 00 00", // body length 0
    "01 00 00 00", // serial 1
    "6d 00 00 00", // header field array: 109 bytes (16 → 125)
    "01 01 6f 00 15 00 00 00", '"/org/freedesktop/DBus"', "00", // 16: PATH, "o", len 21 (→46)
    "00 00", // 46: pad to 48
    "02 01 73 00 14 00 00 00", '"org.freedesktop.DBus"', "00", // 48: INTERFACE, "s", len 20 (→77)
    "00 00 00", // 77: pad to 80
    "03 01 73 00 05 00 00 00", '"Hello"', "00", // 80: MEMBER (→94)
    "00 00", // 94: pad to 96
    "06 01 73 00 14 00 00 00", '"org.freedesktop.DBus"', "00", // 96: DESTINATION (→125)
    "00 00 00", // 125: header padded to 128, where the (empty) body would start
  );

  test("encode Hello", () => {
    expect(hello.length).toBe(128);
    const m = encodeMessage({
      type: MessageType.methodCall,
      flags: 0,
      serial: 1,
      path: "/org/freedesktop/DBus",
      interface: "org.freedesktop.DBus",
      member: "Hello",
      destination: "org.freedesktop.DBus",
      signature: "",
      body: [],
    });
    expect(m).toEqual(hello);
    expect(messageLength(hello)).toBe(128);
  });

  test("decode Hello", () => {
    expect(decodeMessage(hello)).toEqual({
      type: MessageType.methodCall,
      flags: 0,
      serial: 1,
      path: "/org/freedesktop/DBus",
      interface: "org.freedesktop.DBus",
      member: "Hello",
      destination: "org.freedesktop.DBus",
      signature: "",
      body: [],
    });
  });

  test("encode an ERROR reply with a string body", () => {
    const want = bytes(
      "6c 03 01 01", // ERROR, flags NO_REPLY_EXPECTED
      "07 00 00 00", // body 7 bytes
      "03 00 00 00", // serial 3
      "2f 00 00 00", // fields: 47 bytes (16 → 63)
      "04 01 73 00 03 00 00 00", '"a.B"', "00", // 16: ERROR_NAME (→28)
      "00 00 00 00", // 28: pad to 32
      "05 01 75 00 02 00 00 00", // 32: REPLY_SERIAL u 2 (→40)
      "06 01 73 00 04 00 00 00", '":1.5"', "00", // 40: DESTINATION (→53)
      "00 00 00", // 53: pad to 56
      "08 01 67 00 01", '"s"', "00", // 56: SIGNATURE g "s" (→63)
      "00", // 63: header padded to 64
      "02 00 00 00", '"no"', "00", // 64: body s "no"
    );
    const m = encodeMessage({
      type: MessageType.error,
      flags: 1,
      serial: 3,
      errorName: "a.B",
      replySerial: 2,
      destination: ":1.5",
      signature: "s",
      body: ["no"],
    });
    expect(m).toEqual(want);
    expect(decodeMessage(want).body).toEqual(["no"]);
  });

  test("decode a big-endian METHOD_RETURN", () => {
    const be = bytes(
      "42 02 00 01", // 'B', METHOD_RETURN
      "00 00 00 07", // body 7 bytes, big-endian
      "00 00 00 09", // serial 9
      "00 00 00 0f", // fields: 15 bytes (16 → 31)
      "05 01 75 00 00 00 00 05", // 16: REPLY_SERIAL u 5
      "08 01 67 00 01", '"s"', "00", // 24: SIGNATURE "s" (→31)
      "00", // 31: pad to 32
      "00 00 00 02", '"ok"', "00", // 32: body "ok"
    );
    expect(messageLength(be)).toBe(39);
    expect(decodeMessage(be)).toEqual({ type: MessageType.methodReturn, flags: 0, serial: 9, replySerial: 5, signature: "s", body: ["ok"] });
  });

  test("decode a SIGNAL with fields out of order and an unknown field (ignored)", () => {
    const sig = bytes(
      "6c 04 00 01", "04 00 00 00", "02 00 00 00", "3d 00 00 00", // SIGNAL, body 4, serial 2, fields 61
      "03 01 73 00 04 00 00 00", '"Ping"', "00", "00 00 00", // 16: MEMBER (→29), pad to 32
      "01 01 6f 00 02 00 00 00", '"/a"', "00", "00 00 00 00 00", // 32: PATH (→43), pad to 48
      "02 01 73 00 05 00 00 00", '"a.b.C"', "00", "00 00", // 48: INTERFACE (→62), pad to 64
      "08 01 67 00 01", '"u"', "00", // 64: SIGNATURE (→71)
      "00", // 71: pad to 72
      "50 01", '"y"', "00 07", // 72: unknown field code 0x50, variant y 7 (→77)
      "00 00 00", // 77: header padded to 80
      "2a 00 00 00", // 80: body u 42
    );
    expect(decodeMessage(sig)).toEqual({
      type: MessageType.signal,
      flags: 0,
      serial: 2,
      member: "Ping",
      path: "/a",
      interface: "a.b.C",
      signature: "u",
      body: [42],
    });
  });
});

describe("invalid input is refused with dbus.bad-message / dbus.bad-value", () => {
  test("booleans other than 0 and 1", () => {
    expect(code(() => unmarshal("b", bytes("02 00 00 00")))).toBe("dbus.bad-message");
  });
  test("non-zero padding", () => {
    expect(code(() => unmarshal("yu", bytes("01 01 00 00 05 00 00 00")))).toBe("dbus.bad-message");
  });
  test("strings: missing NUL, inner NUL, bad UTF-8, truncated", () => {
    expect(code(() => unmarshal("s", bytes("01 00 00 00 41 42")))).toBe("dbus.bad-message");
    expect(code(() => unmarshal("s", bytes("02 00 00 00 41 00 00")))).toBe("dbus.bad-message");
    expect(code(() => unmarshal("s", bytes("01 00 00 00 ff 00")))).toBe("dbus.bad-message");
    expect(code(() => unmarshal("s", bytes("09 00 00 00 41 00")))).toBe("dbus.bad-message");
  });
  test("invalid object path and signature values", () => {
    expect(code(() => unmarshal("o", bytes("02 00 00 00", '"a/"', "00")))).toBe("dbus.bad-message");
    expect(code(() => unmarshal("g", bytes("02", '"a{"', "00")))).toBe("dbus.bad-message");
  });
  test("array longer than 64 MiB, and trailing bytes", () => {
    expect(code(() => unmarshal("ai", bytes("01 00 00 04")))).toBe("dbus.bad-message");
    expect(code(() => unmarshal("y", bytes("01 02")))).toBe("dbus.bad-message");
  });
  test("signatures: nesting limits, dict rules, empty struct, bad codes", () => {
    expect(parseSignature(`${"a".repeat(32)}y`).length).toBe(1);
    expect(code(() => parseSignature(`${"a".repeat(33)}y`))).toBe("dbus.bad-message");
    expect(parseSignature(`${"(".repeat(32)}y${")".repeat(32)}`).length).toBe(1);
    expect(code(() => parseSignature(`${"(".repeat(33)}y${")".repeat(33)}`))).toBe("dbus.bad-message");
    for (const bad of ["a{vs}", "a{s}", "a{sss}", "{ss}", "()", "(y", "a", "z", "y)", "x".repeat(256)]) {
      expect(code(() => parseSignature(bad))).toBe("dbus.bad-message");
    }
    expect(parseSignature("a{sv}(yi)as").map(signatureOf)).toEqual(["a{sv}", "(yi)", "as"]);
  });
  test("message headers: endianness, version, required fields, declared sizes", () => {
    const good = bytes("6c 02 00 01 00 00 00 00 05 00 00 00 08 00 00 00 05 01 75 00 01 00 00 00");
    expect(decodeMessage(good).replySerial).toBe(1);
    const badEndian = good.slice();
    badEndian[0] = 0x78;
    expect(code(() => messageLength(badEndian))).toBe("dbus.bad-message");
    const badVersion = good.slice();
    badVersion[3] = 2;
    expect(code(() => messageLength(badVersion))).toBe("dbus.bad-message");
    // METHOD_RETURN without REPLY_SERIAL: the one field is an (ignored) unknown code 0x50
    const noReply = bytes("6c 02 00 01 00 00 00 00 05 00 00 00 05 00 00 00 50 01", '"y"', "00 07 00 00 00");
    expect(code(() => decodeMessage(noReply))).toBe("dbus.bad-message");
    // serial 0
    const zero = good.slice();
    zero[8] = 0;
    expect(code(() => decodeMessage(zero))).toBe("dbus.bad-message");
    // a header field with the wrong type: REPLY_SERIAL as "y"
    const wrongType = bytes("6c 02 00 01 00 00 00 00 05 00 00 00 05 00 00 00 05 01", '"y"', "00 01 00 00 00");
    expect(code(() => decodeMessage(wrongType))).toBe("dbus.bad-message");
    // body length that does not match the buffer
    expect(code(() => decodeMessage(good.subarray(0, 20)))).toBe("dbus.bad-message");
    // 2 GiB body announced: over the 128 MiB message limit
    const huge = good.slice();
    huge[7] = 0x80;
    expect(code(() => messageLength(huge))).toBe("dbus.bad-message");
    expect(messageLength(good.subarray(0, 15))).toBeUndefined();
  });
  test("values that do not fit their signature", () => {
    expect(code(() => marshal("y", [256]))).toBe("dbus.bad-value");
    expect(code(() => marshal("i", [1.5]))).toBe("dbus.bad-value");
    expect(code(() => marshal("u", [-1]))).toBe("dbus.bad-value");
    expect(code(() => marshal("x", [1n << 63n]))).toBe("dbus.bad-value");
    expect(code(() => marshal("b", [1]))).toBe("dbus.bad-value");
    expect(code(() => marshal("s", ["a\0b"]))).toBe("dbus.bad-value");
    expect(code(() => marshal("o", ["not/a/path"]))).toBe("dbus.bad-value");
    expect(code(() => marshal("v", [5]))).toBe("dbus.bad-value");
    expect(code(() => marshal("v", [new Variant("ss", "x")]))).toBe("dbus.bad-value");
    expect(code(() => marshal("(ys)", [[1]]))).toBe("dbus.bad-value");
    expect(code(() => marshal("as", ["x"]))).toBe("dbus.bad-value");
    expect(code(() => marshal("ss", ["x"]))).toBe("dbus.bad-value");
    expect(code(() => encodeMessage({ type: MessageType.methodCall, flags: 0, serial: 1, path: "/a", signature: "", body: [] }))).toBe("dbus.bad-value");
    expect(code(() => encodeMessage({ type: MessageType.methodCall, flags: 0, serial: 1, path: "/a", member: "bad-member", signature: "", body: [] }))).toBe("dbus.bad-value");
  });
});

describe("round trips", () => {
  test("every basic type inside structs, arrays, dicts and variants", () => {
    const sig = "a{sa(ybnqiuxtdsogh)}av";
    const row: DBusValue[] = [255, true, -32768, 65535, -2147483648, 4294967295, -(1n << 63n), (1n << 64n) - 1n, -0.25, "ü€ ok", "/x/y_1", "a{sv}", 0];
    const dict = new Map<string, DBusValue>([
      ["one", [row, row]],
      ["empty", []],
    ]);
    const variants = [new Variant("s", "x"), new Variant("av", [new Variant("t", 7n)]), new Variant("a{us}", new Map([[1, "a"]]))];
    const m = marshal(sig, [dict, variants]);
    expect(unmarshal(sig, m)).toEqual([dict, variants]);
  });

  test("a whole message with a body", () => {
    const msg = {
      type: MessageType.methodCall,
      flags: 0,
      serial: 77,
      path: "/org/freedesktop/systemd1",
      interface: "org.freedesktop.systemd1.Manager",
      member: "StartUnit",
      destination: "org.freedesktop.systemd1",
      signature: "ss",
      body: ["kexec.target", "replace-irreversibly"],
    } as const;
    const enc = encodeMessage({ ...msg, body: [...msg.body] });
    expect(messageLength(enc)).toBe(enc.length);
    expect(decodeMessage(enc)).toEqual({ ...msg, body: [...msg.body] });
  });
});
