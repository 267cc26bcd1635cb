/**
 * Sizes and addresses as the kernel's memparse() reads them ("512M", "0x40000000", "1G"), and
 * as people like to read them ("512 MiB"). Pure.
 */

const SUFFIX: Record<string, bigint> = {
  k: 1n << 10n,
  m: 1n << 20n,
  g: 1n << 30n,
  t: 1n << 40n,
  p: 1n << 50n,
  e: 1n << 60n,
};

/** memparse(): a decimal, 0x-hex or 0-octal number with an optional K/M/G/T/P/E suffix. null if malformed. */
export function memparse(s: string): bigint | null {
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)$/.exec(s.trim());
  if (m === null) return null;
  const [, num = "0", suf = ""] = m;
  let v: bigint;
  if (/^0[xX]/.test(num)) v = BigInt(num);
  else if (num.length > 1 && num.startsWith("0")) v = BigInt(`0o${num.slice(1)}`);
  else v = BigInt(num);
  return suf === "" ? v : v * (SUFFIX[suf.toLowerCase()] ?? 1n);
}

/** "size@addr" (pinmemory=, crashkernel=): null if malformed or the address is missing. */
export function parseSizeAtAddr(s: string): { size: bigint; addr: bigint } | null {
  const at = s.indexOf("@");
  if (at < 0) return null;
  const size = memparse(s.slice(0, at));
  const addr = memparse(s.slice(at + 1));
  if (size === null || addr === null) return null;
  return { size, addr };
}

/** 536870912n → "512 MiB"; uneven values keep one decimal. */
export function humanBytes(n: bigint | number): string {
  const v = typeof n === "bigint" ? Number(n) : n;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let x = v;
  let i = 0;
  while (Math.abs(x) >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  const s = Number.isInteger(x) ? String(x) : x.toFixed(1);
  return `${s} ${units[i]}`;
}

/** The smallest "<n>M" (or "<n>G") at least `bytes`, rounded up to `stepMiB`, for suggested cmdlines. */
export function suggestSize(bytes: bigint, stepMiB = 64n): string {
  const step = stepMiB << 20n;
  const rounded = ((bytes + step - 1n) / step) * step;
  const mib = rounded >> 20n;
  return mib % 1024n === 0n ? `${mib / 1024n}G` : `${mib}M`;
}

export function alignUp(v: bigint, a: bigint): bigint {
  return ((v + a - 1n) / a) * a;
}
