import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatLine, UpdateLog, updateLogPath } from "../../src/daemon/update-log.ts";
import { NvwaError } from "../../src/errors.ts";

describe("update log lines", () => {
  test("time, level, message, fields", () => {
    const at = new Date("2025-03-04T05:06:07.089Z");
    expect(formatLine(at, "info", "dumped redis.service", { pid: 42, ms: 1200, path: "/var/nvwa/x y" })).toBe(
      '2025-03-04T05:06:07.089Z INFO  dumped redis.service pid=42 ms=1200 path="/var/nvwa/x y"\n',
    );
    expect(formatLine(at, "error", "two\nlines")).toBe("2025-03-04T05:06:07.089Z ERROR two | lines\n");
  });

  test("ids that are not file-name safe are refused", () => {
    expect(updateLogPath("/l", "20250101-1a2b")).toBe("/l/update-20250101-1a2b.log");
    for (const bad of ["../x", "a/b", "", ".hidden", "x".repeat(65)]) expect(() => updateLogPath("/l", bad)).toThrow(NvwaError);
  });
});

describe("UpdateLog on disk", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("phases with durations; a second open (after the jump) appends", () => {
    dir = mkdtempSync(join(tmpdir(), "nvwa-log-"));
    const logDir = join(dir, "log");
    const a = UpdateLog.open(logDir, "u1", { mirror: null });
    a.phase("preflight");
    a.info("kernel found", { version: "6.12.9" });
    a.phase("dump");
    a.warn("slow dump", { target: "redis.service" });
    a.close();
    const b = UpdateLog.open(logDir, "u1", { mirror: null });
    b.phase("restore");
    b.event({ kind: "target", message: "restored redis.service", target: "redis.service", ms: 250 });
    b.close();

    const path = join(logDir, "update-u1.log");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(logDir).mode & 0o777).toBe(0o700);
    const lines = readFileSync(path, "utf8").trimEnd().split("\n").map((l) => l.replace(/^\S+ /, ""));
    expect(lines.map((l) => l.replace(/ends ms=\d+/, "ends ms=N"))).toEqual([
      "INFO  phase preflight begins",
      "INFO  kernel found version=6.12.9",
      "INFO  phase preflight ends ms=N",
      "INFO  phase dump begins",
      "WARN  slow dump target=redis.service",
      "INFO  phase dump ends ms=N",
      "INFO  phase restore begins",
      "INFO  restored redis.service kind=target target=redis.service ms=250",
      "INFO  phase restore ends ms=N",
    ]);
  });
});
