/**
 * sd_notify over a real AF_UNIX datagram socket bound by the test, as systemd binds
 * $NOTIFY_SOCKET: a path socket and an abstract ("@") one.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bindDatagram, sendDatagram, sockaddrUn } from "../../ffi/unix.ts";
import { SyscallError } from "../../ffi/libc.ts";
import { notify } from "../../src/systemd/notify.ts";

const dir = mkdtempSync(join(tmpdir(), "nvwa-notify-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString("utf8"));

describe("sd_notify datagrams", () => {
  test("to a path socket", () => {
    const rx = bindDatagram(join(dir, "notify"));
    try {
      expect(notify({ mainpid: 4242, ready: true, status: "restored" }, rx.address)).toBe(true);
      expect(text(rx.receive(2000))).toBe("MAINPID=4242\nREADY=1\nSTATUS=restored");
      expect(notify({ status: "second" }, rx.address)).toBe(true);
      expect(text(rx.receive(2000))).toBe("STATUS=second");
      expect(rx.receive(0)).toBeUndefined(); // nothing more was sent
    } finally {
      rx.close();
    }
  });

  test("to an abstract socket named with @, as $NOTIFY_SOCKET writes it", () => {
    const name = `@nvwa-test-${process.pid}-${Date.now()}`;
    const rx = bindDatagram(name);
    try {
      expect(notify({ ready: true }, name)).toBe(true);
      expect(text(rx.receive(2000))).toBe("READY=1");
    } finally {
      rx.close();
    }
  });

  test("the abstract name is not confused with a path of the same letters", () => {
    const name = `nvwa-abstract-${process.pid}`;
    const rx = bindDatagram(`@${name}`);
    try {
      let err: unknown;
      try {
        sendDatagram(join(dir, name), Buffer.from("x"));
      } catch (e) {
        err = e;
      }
      expect((err as SyscallError).errnoName).toBe("ENOENT");
      expect(rx.receive(0)).toBeUndefined();
    } finally {
      rx.close();
    }
  });

  test("nobody listening: a SyscallError that says where and what to check", () => {
    let err: unknown;
    try {
      notify({ ready: true }, join(dir, "nobody"));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe("syscall.ENOENT");
    expect((err as SyscallError).message).toContain(join(dir, "nobody"));
    expect((err as SyscallError).hint).toContain("NOTIFY_SOCKET");
  });

  test("sockaddr_un lengths: path with its NUL, abstract without; too long is refused", () => {
    expect(sockaddrUn("/run/systemd/notify").len).toBe(2 + 19 + 1);
    const a = sockaddrUn("@x/y");
    expect(a.len).toBe(2 + 1 + 3);
    expect([...a.addr.subarray(0, 6)]).toEqual([1, 0, 0, 0x78, 0x2f, 0x79]);
    expect(sockaddrUn(`/${"a".repeat(106)}`).len).toBe(110);
    expect(() => sockaddrUn(`/${"a".repeat(107)}`)).toThrow(SyscallError);
    expect(() => sockaddrUn("@")).toThrow(SyscallError);
  });
});
