/**
 * IP and MAC addresses between their wire bytes and the text people (and `ip -j`) read.
 * IPv6 text follows RFC 5952 (lowercase, longest run of two or more zero groups as "::",
 * IPv4-mapped as ::ffff:a.b.c.d), which is what glibc's inet_ntop prints.
 */

export type Family = "inet" | "inet6";

export function familyLength(f: Family): number {
  return f === "inet" ? 4 : 16;
}

export function ipToString(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join(".");
  if (b.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) return `::ffff:${Array.from(b.subarray(12)).join(".")}`;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

function parseV4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? "";
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseV6(s: string): Uint8Array | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let tail: number[] = [];
  let text = s;
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".")) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    tail = [((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0)];
    // What precedes the dotted quad ends in "::" (elision, kept) or in a group separator (dropped).
    const prefix = s.slice(0, lastColon + 1);
    text = prefix.endsWith("::") ? prefix : prefix.slice(0, -1);
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const toGroups = (h: string): number[] | null => {
    if (h === "") return [];
    const out: number[] = [];
    for (const g of h.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = toGroups(halves[0] ?? "");
  if (head === null) return null;
  let groups: number[];
  if (halves.length === 2) {
    const rest = toGroups(halves[1] ?? "");
    if (rest === null) return null;
    const missing = 8 - head.length - rest.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest, ...tail];
  } else {
    groups = [...head, ...tail];
  }
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/** Parses an address of the given family; null when the text is not one. */
export function parseIp(s: string, family: Family): Uint8Array | null {
  return family === "inet" ? parseV4(s) : parseV6(s);
}

export function isIp(s: string, family: Family): boolean {
  return parseIp(s, family) !== null;
}

/** The family an address text belongs to, or null. */
export function ipFamily(s: string): Family | null {
  if (parseV4(s) !== null) return "inet";
  if (parseV6(s) !== null) return "inet6";
  return null;
}

export function ipBytes(s: string, family: Family): Uint8Array {
  const b = parseIp(s, family);
  if (b === null) throw new RangeError(`${JSON.stringify(s)} is not an ${family === "inet" ? "IPv4" : "IPv6"} address`);
  return b;
}

/** Canonical text of an address (so "2001:DB8:0:0::1" and "2001:db8::1" compare equal). */
export function canonicalIp(s: string, family: Family): string {
  return ipToString(ipBytes(s, family));
}

export function macToString(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":");
}

export function parseMac(s: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$/.test(s)) return null;
  return Uint8Array.from(s.split(":"), (h) => parseInt(h, 16));
}
