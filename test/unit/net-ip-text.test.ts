import { describe, expect, test } from "bun:test";
import { canonicalIp, ipBytes, ipFamily, ipToString, macToString, parseIp, parseMac } from "../../src/net/ip-text.ts";

describe("IP text", () => {
  test("IPv6 is printed as RFC 5952 (and glibc's inet_ntop) prints it", () => {
    const cases: [string, string][] = [
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["0:0:0:0:0:0:0:1", "::1"],
      ["0:0:0:0:0:0:0:0", "::"],
      ["fe80:0:0:0:8820:61ff:fed1:c251", "fe80::8820:61ff:fed1:c251"],
      // a single zero group is not elided; the longest run wins, the first of equal runs
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["::ffff:10.1.2.3", "::ffff:10.1.2.3"],
      ["2001:DB8::A", "2001:db8::a"],
    ];
    for (const [input, want] of cases) expect({ input, out: canonicalIp(input, "inet6") }).toEqual({ input, out: want });
  });

  test("IPv4 round-trips and rejects what is not a dotted quad", () => {
    expect(ipToString(ipBytes("10.1.0.254", "inet"))).toBe("10.1.0.254");
    for (const bad of ["10.1.0", "10.1.0.256", "10.01.0.1", "1.2.3.4.5", "a.b.c.d", ""]) expect({ bad, r: parseIp(bad, "inet") }).toEqual({ bad, r: null });
  });

  test("IPv6 rejects malformed text", () => {
    for (const bad of ["1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "1:2:3:4:5:6:7", ":::", "::ffff:1.2.3"]) {
      expect({ bad, r: parseIp(bad, "inet6") }).toEqual({ bad, r: null });
    }
  });

  test("family detection", () => {
    expect(ipFamily("10.0.0.1")).toBe("inet");
    expect(ipFamily("::1")).toBe("inet6");
    expect(ipFamily("nope")).toBeNull();
  });

  test("MAC text", () => {
    expect(macToString(Uint8Array.of(2, 0xaa, 0, 0, 0, 1))).toBe("02:aa:00:00:00:01");
    expect(Array.from(parseMac("02:AA:00:00:00:01") ?? [])).toEqual([2, 0xaa, 0, 0, 0, 1]);
    expect(parseMac("02:aa:0")).toBeNull();
  });
});
