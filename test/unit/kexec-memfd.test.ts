import { expect, test } from "bun:test";
import { fstatSync, readFileSync } from "node:fs";
import { closeFd, memfdFromBytes, memfdPath } from "../../ffi/memfd.ts";

test("a memfd holds exactly the bytes, and another opener sees them through /proc/<pid>/fd", () => {
  const data = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 31) & 0xff);
  const fd = memfdFromBytes("nvwa-test", data);
  try {
    expect(fstatSync(fd).size).toBe(data.length);
    const back = new Uint8Array(readFileSync(memfdPath(fd)));
    expect(Buffer.compare(back, data)).toBe(0);
    expect(readFileSync(`/proc/self/fd/${fd}`.replace("self", String(process.pid))).length).toBe(data.length);
  } finally {
    closeFd(fd);
  }
  expect(() => fstatSync(fd)).toThrow();
});
