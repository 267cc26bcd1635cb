import { describe, expect, test } from "bun:test";
import { NvwaError } from "../../src/errors.ts";
import { parseStreamRecord, streamHeader, type StreamHeader } from "../../src/systemd/journal-stream.ts";

const text = (h: StreamHeader): string => new TextDecoder().decode(streamHeader(h));
const base: StreamHeader = { identifier: "counter.py", unit: "counter.service", priority: 30, levelPrefix: true, forwardToKmsg: false, forwardToConsole: false };

describe("streamHeader", () => {
  test("the seven lines connect_logger_as() writes for a default unit", () => {
    expect(text(base)).toBe("counter.py\ncounter.service\n30\n1\n0\n0\n0\n");
  });
  test("kmsg and console forwarding, no level prefix, another priority", () => {
    expect(text({ ...base, priority: 27, levelPrefix: false, forwardToKmsg: true, forwardToConsole: true })).toBe("counter.py\ncounter.service\n27\n0\n0\n1\n1\n");
  });
  test("what journald would drop the stream for is refused here", () => {
    for (const bad of [{ ...base, identifier: "a\nb" }, { ...base, unit: "x\0" }, { ...base, identifier: "x".repeat(256) }, { ...base, priority: 1000 }, { ...base, priority: -1 }, { ...base, priority: 2.5 }]) {
      expect(() => streamHeader(bad)).toThrow(NvwaError);
    }
    expect(text({ ...base, identifier: "x".repeat(255) })).toStartWith(`${"x".repeat(255)}\n`);
  });
});

describe("parseStreamRecord (journald's /run/systemd/journal/streams/<dev>:<ino>)", () => {
  const record = "# This is private data. Do not parse\nPRIORITY=30\nLEVEL_PREFIX=1\nFORWARD_TO_SYSLOG=0\nFORWARD_TO_KMSG=0\nFORWARD_TO_CONSOLE=1\nSTREAM_ID=0123456789abcdef0123456789abcdef\nIDENTIFIER=my\\x20app\\ttab\nUNIT=redis.service\n";
  test("reads the header back, C escapes undone", () => {
    expect(parseStreamRecord(record, "fallback.service")).toEqual({ identifier: "my app\ttab", unit: "redis.service", priority: 30, levelPrefix: true, forwardToKmsg: false, forwardToConsole: true });
  });
  test("no IDENTIFIER or UNIT (a User= service): empty identifier, the target's unit", () => {
    const r = parseStreamRecord(record.replace(/IDENTIFIER=.*\n/, "").replace(/UNIT=.*\n/, ""), "app.service");
    expect(r).toMatchObject({ identifier: "", unit: "app.service" });
  });
  test("a missing or malformed key: null, so the unit's properties are used instead", () => {
    expect(parseStreamRecord(record.replace("PRIORITY=30\n", ""), "x.service")).toBeNull();
    expect(parseStreamRecord(record.replace("LEVEL_PREFIX=1", "LEVEL_PREFIX=yes"), "x.service")).toBeNull();
  });
});
