import { describe, expect, test } from "bun:test";
import { encodeResponse, errorToWire, parseRequest, parseResponse, ProtocolError } from "../../src/daemon/protocol.ts";
import { NvwaError } from "../../src/errors.ts";

const err = (line: string) => {
  const p = parseRequest(line);
  if (p.ok) throw new Error(`expected an error for ${line}`);
  return { id: p.id, code: p.error.code, message: p.error.message, hint: p.error.hint };
};

describe("parseRequest", () => {
  test("valid requests", () => {
    expect(parseRequest('{"id":1,"method":"ping"}')).toEqual({ ok: true, request: { id: 1, method: "ping", params: {} } });
    expect(parseRequest('{"id":"a","method":"status","params":{}}')).toEqual({ ok: true, request: { id: "a", method: "status", params: {} } });
    expect(parseRequest('{"id":2,"method":"update","params":{"version":"6.12.9","fast":true,"cmdlineAppend":["quiet"]}}')).toEqual({
      ok: true,
      request: { id: 2, method: "update", params: { version: "6.12.9", fast: true, cmdlineAppend: ["quiet"] } },
    });
    expect(parseRequest('{"id":3,"method":"restore","params":{"unit":"redis-server.service"}}')).toEqual({
      ok: true,
      request: { id: 3, method: "restore", params: { unit: "redis-server.service" } },
    });
  });

  test("not JSON, not an object, no id: answered with id null", () => {
    for (const line of ["", "{", "hello", "\u0000", '{"id":1,'])
      expect(err(line)).toMatchObject({ id: null, code: ProtocolError.invalidJson });
    for (const line of ["1", "null", "[]", '"x"', "true"]) expect(err(line)).toMatchObject({ id: null, code: ProtocolError.invalidRequest });
    for (const line of ['{"method":"ping"}', '{"id":{},"method":"ping"}', '{"id":1.5,"method":"ping"}', '{"id":"","method":"ping"}', `{"id":"${"x".repeat(129)}","method":"ping"}`])
      expect(err(line)).toMatchObject({ id: null, code: ProtocolError.invalidRequest });
  });

  test("unknown method and invalid params keep the id", () => {
    expect(err('{"id":7,"method":"reboot"}')).toMatchObject({ id: 7, code: ProtocolError.unknownMethod });
    expect(err('{"id":7}')).toMatchObject({ id: 7, code: ProtocolError.unknownMethod });
    expect(err('{"id":7,"method":"__proto__"}')).toMatchObject({ id: 7, code: ProtocolError.unknownMethod });
    const e = err('{"id":8,"method":"update","params":{"version":5}}');
    expect(e).toMatchObject({ id: 8, code: ProtocolError.invalidParams });
    expect(e.message).toContain("version");
    expect(err('{"id":8,"method":"update"}')).toMatchObject({ id: 8, code: ProtocolError.invalidParams });
    expect(err('{"id":8,"method":"update","params":{"version":"6.1","bogus":1}}')).toMatchObject({ code: ProtocolError.invalidParams });
    expect(err('{"id":8,"method":"update","params":{"version":"6.1","cmdlineAppend":["a b"]}}')).toMatchObject({ code: ProtocolError.invalidParams });
    expect(err('{"id":9,"method":"restore","params":{"unit":"../../etc/passwd"}}')).toMatchObject({ code: ProtocolError.invalidParams });
    expect(err('{"id":9,"method":"ping","params":{"x":1}}')).toMatchObject({ code: ProtocolError.invalidParams });
    expect(err('{"id":9,"method":"ping","extra":1}')).toMatchObject({ code: ProtocolError.invalidParams });
  });
});

describe("responses", () => {
  test("errors carry code, message, hint and exit code; lines end with a newline and parse back", () => {
    const e = new NvwaError("criu.dump-failed", "criu dump of pid 42 failed", { hint: "see dump.log", exitCode: 1, details: { pid: 42 } });
    const wire = errorToWire(e);
    expect(wire).toEqual({ code: "criu.dump-failed", message: "criu dump of pid 42 failed", hint: "see dump.log", exitCode: 1, details: { pid: 42 } });
    const line = encodeResponse({ id: 3, error: wire });
    expect(line.endsWith("\n")).toBe(true);
    expect(line.slice(0, -1).includes("\n")).toBe(false);
    expect(parseResponse(line.trim())).toEqual({ id: 3, error: wire });
    expect(parseResponse('{"id":3,"event":{"kind":"phase","message":"dump","phase":"dump"}}')).toEqual({ id: 3, event: { kind: "phase", message: "dump", phase: "dump" } });
    expect(parseResponse('{"id":3,"result":{"x":1}}')).toEqual({ id: 3, result: { x: 1 } });
    expect(parseResponse('{"id":3,"error":{"code":5}}')).toBeUndefined();
    expect(parseResponse("nope")).toBeUndefined();
  });
});

describe("encodeResponse", () => {
  test("bigints travel as strings", () => {
    expect(encodeResponse({ id: 1, result: { usec: 30_000_000n } })).toBe('{"id":1,"result":{"usec":"30000000"}}\n');
  });
});
