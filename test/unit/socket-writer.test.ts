/**
 * SocketWriter against a socket that takes only so many bytes per write, as a full kernel buffer
 * does: order kept across partial writes and drains, writes before the socket exists, the limit.
 */
import { describe, expect, test } from "bun:test";
import { SocketWriter } from "../../src/socket-writer.ts";

/** Takes at most `room` bytes in all until given more (0: none, as when the buffer is full). */
function fakeSocket(room: number): { room: number; got: number[]; write(d: Uint8Array): number } {
  const s = {
    room,
    got: [] as number[],
    write(d: Uint8Array): number {
      const n = Math.min(s.room, d.length);
      s.got.push(...d.subarray(0, n));
      s.room -= n;
      return n;
    },
  };
  return s;
}

const bytes = (from: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => from + i);

describe("SocketWriter", () => {
  test("partial writes: the rest goes out on flush, in order, behind what was queued first", () => {
    const s = fakeSocket(3);
    const w = new SocketWriter();
    w.attach(s);
    expect(w.write(bytes(0, 5))).toBe(true);
    expect(w.write(bytes(5, 4))).toBe(true);
    expect(s.got).toEqual([0, 1, 2]);
    expect(w.pendingBytes).toBe(6);
    expect(w.flush()).toBe(false);
    s.room = 100;
    expect(w.flush()).toBe(true);
    expect(s.got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(w.pendingBytes).toBe(0);
  });

  test("a socket that takes nothing keeps everything queued", () => {
    const s = fakeSocket(0);
    const w = new SocketWriter();
    w.attach(s);
    w.write(bytes(0, 4));
    expect(w.flush()).toBe(false);
    expect(w.pendingBytes).toBe(4);
  });

  test("bytes written before attach go out on attach", () => {
    const w = new SocketWriter();
    w.write(bytes(0, 2));
    w.write(bytes(2, 2));
    expect(w.flush()).toBe(false);
    const s = fakeSocket(100);
    w.attach(s);
    expect(s.got).toEqual([0, 1, 2, 3]);
    expect(w.flush()).toBe(true);
  });

  test("more than maxPendingBytes unsent: refused and everything unsent dropped", () => {
    const s = fakeSocket(0);
    const w = new SocketWriter(10);
    w.attach(s);
    expect(w.write(bytes(0, 6))).toBe(true);
    expect(w.write(bytes(6, 4))).toBe(true);
    expect(w.write(bytes(10, 1))).toBe(false);
    expect(w.pendingBytes).toBe(0);
    expect(w.flush()).toBe(true);
  });
});
