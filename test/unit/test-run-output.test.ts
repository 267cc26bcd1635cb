/**
 * test/run.ts repeats each failed test at the very end of its output, because CI shows only the
 * tail of a long log. The fixture is bun 1.3's real output for a file with one passing and two
 * failing tests, followed by the summary bun adds when it ran several files.
 */
import { describe, expect, test } from "bun:test";
import { counts, failureBlocks } from "../run-output.ts";

const OUTPUT = `bun test v1.3.14 (0d9b296a)

x.test.ts:
(pass) passes [0.28ms]
noise before
4 | test("throws a typed error", () => { throw new E("boom"); });
                                         ^
error: criu dump failed (exit code 1): Error (criu/tty.c:1) boom
 log: "/tmp/a/dump.log",
 command: "${"criu dump --tree 1 ".repeat(30)}",
      at <anonymous> (/tmp/failrun/x.test.ts:4:138)
(fail) throws a typed error [0.65ms]
5 | test("expect fails", () => { expect(2).toBe(3); });
                                           ^
error: expect(received).toBe(expected)

Expected: 3
Received: 2

      at <anonymous> (/tmp/failrun/x.test.ts:5:40)
(fail) expect fails [0.18ms]

2 tests failed:
(fail) throws a typed error [0.65ms]
(fail) expect fails [0.18ms]

 1 pass
 2 fail
 2 expect() calls
Ran 3 tests across 2 files. [47.00ms]
`;

describe("test/run.ts reading bun's output", () => {
  test("counts come from bun's last pass/fail lines", () => {
    expect(counts(OUTPUT)).toEqual({ passed: 1, failed: 2 });
  });

  test("each failure appears once, led by its error line, and long lines are clipped", () => {
    const blocks = failureBlocks(OUTPUT);
    expect(blocks.length).toBe(2);
    const [first, second] = blocks;
    expect(first?.split("\n")[0]).toBe("(fail) throws a typed error");
    expect(first?.split("\n")[1]).toBe("  error: criu dump failed (exit code 1): Error (criu/tty.c:1) boom");
    expect(first).not.toContain("noise before");
    const command = first?.split("\n").find((l) => l.includes("command:")) ?? "";
    expect(command.length).toBeLessThanOrEqual(243);
    expect(command.endsWith("…")).toBe(true);
    expect(second?.split("\n").slice(0, 5)).toEqual(["(fail) expect fails", "  error: expect(received).toBe(expected)", "  ", "  Expected: 3", "  Received: 2"]);
  });

  test("a failure without an error line keeps the lines just above it", () => {
    expect(failureBlocks("(pass) a\nsomething broke\n(fail) b [1ms]\n")).toEqual(["(fail) b\n  something broke"]);
  });
});
