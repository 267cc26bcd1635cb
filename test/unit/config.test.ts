import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NvwaError } from "../../src/errors.ts";
import { insecurityOf, loadConfig, parseConfigText, restoreFromParsed } from "../../src/config/load.ts";
import { RESTORE_KEYS, SERVER_KEYS, unitNameProblem } from "../../src/config/schema.ts";
import { suggestKey } from "../../src/config/suggest.ts";

function dirWith(restore?: string, server?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-cfg-"));
  if (restore !== undefined) writeFileSync(join(dir, "nvwa-restore.yaml"), restore, { mode: 0o600 });
  if (server !== undefined) writeFileSync(join(dir, "nvwa-server.yaml"), server, { mode: 0o600 });
  return dir;
}

function failure(fn: () => unknown): NvwaError {
  try {
    fn();
  } catch (e) {
    if (e instanceof NvwaError) return e;
    throw new Error(`expected an NvwaError, got ${String(e)}`);
  }
  throw new Error("expected a failure, got success");
}

describe("defaults", () => {
  test("missing files mean the original's defaults", () => {
    const c = loadConfig(dirWith());
    expect(c.server).toEqual({
      criuDir: "/var/nvwa/running/",
      criuExe: "/usr/sbin/criu",
      kexecExe: "/usr/sbin/kexec",
      systemdEtc: "/etc/systemd/system/",
      logDir: "/etc/nvwa/log/",
    });
    expect(c.restore).toEqual({ pids: [], services: [], restoreNet: false, enableQuickKexec: false, enablePinMemory: false, debug: false });
    expect(c.files).toEqual({ restore: null, server: null });
  });

  test("empty files and empty lists (the original's samples) mean defaults", () => {
    const c = loadConfig(dirWith("", ""));
    expect(c.restore.pids).toEqual([]);
    expect(c.server.criuDir).toBe("/var/nvwa/running/");
    const d = loadConfig(dirWith("pids:\nservices:\n"));
    expect(d.restore.services).toEqual([]);
  });
});

describe("every key", () => {
  test("restore keys are read and normalised", () => {
    const c = loadConfig(
      dirWith(
        "pids:\n  - 14109\n  - 2\nservices:\n  - redis\n  - nginx.service\n  - getty@tty1\nrestore_net: true\nenable_quick_kexec: true\nenable_pin_memory: true\nenable_debug_mode: true\n",
      ),
    );
    expect(c.restore).toEqual({
      pids: [14109, 2],
      services: ["redis.service", "nginx.service", "getty@tty1.service"],
      restoreNet: true,
      enableQuickKexec: true,
      enablePinMemory: true,
      debug: true,
    });
  });

  test("server keys are read", () => {
    const c = loadConfig(dirWith(undefined, "criu_dir: /data/nvwa/\ncriu_exe: /opt/criu\nkexec_exe: /opt/kexec\nsystemd_etc: /run/sd/\nlog_dir: /var/log/nvwa/\n"));
    expect(c.server).toEqual({ criuDir: "/data/nvwa/", criuExe: "/opt/criu", kexecExe: "/opt/kexec", systemdEtc: "/run/sd/", logDir: "/var/log/nvwa/" });
  });

  test("the legacy misspelt enbale_debug_mode still works", () => {
    expect(loadConfig(dirWith("enbale_debug_mode: true\n")).restore.debug).toBe(true);
  });

  test("both spellings disagreeing is an error", () => {
    const e = failure(() => loadConfig(dirWith("enbale_debug_mode: true\nenable_debug_mode: false\n")));
    expect(e.code).toBe("config.invalid");
    expect(e.hint).toContain("enable_debug_mode");
  });

  test("YAML 1.1 booleans (yes/no/on/off) as the original's yaml.v2 read them", () => {
    const c = loadConfig(dirWith("restore_net: yes\nenable_quick_kexec: off\nenable_pin_memory: on\n"));
    expect(c.restore.restoreNet).toBe(true);
    expect(c.restore.enableQuickKexec).toBe(false);
    expect(c.restore.enablePinMemory).toBe(true);
  });
});

describe("the seed guide's typos get precise hints", () => {
  const cases: [string, string, string][] = [
    ["nvwa-restore.yaml", "restore net: false\n", "restore_net"],
    ["nvwa-restore.yaml", "enable pin_memory: false\n", "enable_pin_memory"],
    ["nvwa-server.yaml", "kexec_ex: /usr/sbin/kexec\n", "kexec_exe"],
  ];
  for (const [file, text, want] of cases) {
    test(`${text.trim()} → ${want}`, () => {
      const dir = file === "nvwa-restore.yaml" ? dirWith(text) : dirWith(undefined, text);
      const e = failure(() => loadConfig(dir));
      expect(e.code).toBe("config.unknown-key");
      expect(e.message).toBe(`${join(dir, file)}:1:1: unknown key "${text.split(":")[0]}"`);
      expect(e.hint).toStartWith(`did you mean "${want}"?`);
      expect(e.exitCode).toBe(2);
    });
  }

  test("the position is the offending line", () => {
    const dir = dirWith("pids:\n  - 1234\nservices: []\nrestore net: true\n");
    expect(failure(() => loadConfig(dir)).message).toContain("nvwa-restore.yaml:4:1:");
  });

  test("nonsense keys list what is allowed without a wild guess", () => {
    const e = failure(() => parseConfigText("f", "zzzzzzzzzzz: 1\n", RESTORE_KEYS));
    expect(e.hint).toStartWith("allowed keys: pids, services");
  });

  test("suggestKey", () => {
    expect(suggestKey("criu-dir", Object.keys(SERVER_KEYS))).toBe("criu_dir");
    expect(suggestKey("logdir", Object.keys(SERVER_KEYS))).toBe("log_dir");
    expect(suggestKey("foo", Object.keys(RESTORE_KEYS))).toBeUndefined();
  });
});

describe("malformed YAML", () => {
  const bad: [string, string][] = [
    ["pids: [1, 2\n", "2:"],
    ["pids:\n  - 1\n - 2\n", "3:"],
    ["restore_net: true\nrestore_net: false\n", "2:1"],
    ["\t- 1\n", "1:"],
    ["a: b: c\n", "1:"],
    ["---\npids: []\n---\npids: []\n", "3:"],
  ];
  for (const [text, pos] of bad) {
    test(JSON.stringify(text), () => {
      const e = failure(() => parseConfigText("x.yaml", text, RESTORE_KEYS));
      expect(e.exitCode).toBe(2);
      expect(e.message).toStartWith(`x.yaml:${pos}`);
      expect(e.message).not.toContain("\n");
    });
  }

  test("a file that is a list, not a mapping", () => {
    expect(failure(() => parseConfigText("x", "- 1\n- 2\n", RESTORE_KEYS)).message).toBe("x:1:1: must be a mapping of `key: value` lines");
  });

  test("binary content", () => {
    expect(failure(() => parseConfigText("x", "pids: \0\0", RESTORE_KEYS)).message).toContain("NUL bytes");
  });
});

describe("wrong types and out-of-range values", () => {
  const bad: [string, string][] = [
    ["pids: 1234\n", '"pids" must be a list of process ids'],
    ["pids: [abc]\n", '"pids" must be a process id (a whole number) (got "abc")'],
    ["pids: [1.5]\n", '"pids" must be a whole number (got 1.5)'],
    ["pids: [0]\n", '"pids" must be a pid of 2 or more'],
    ["pids: [-5]\n", '"pids" must be a pid of 2 or more'],
    ["pids: [1]\n", "pid 1 is init"],
    ["pids: [4194305]\n", "PID_MAX_LIMIT"],
    ["pids: [99999999999999999999999]\n", "PID_MAX_LIMIT"],
    ["pids: [12, 12]\n", "pid 12 is listed twice"],
    ["services: redis\n", '"services" must be a list of service names'],
    ["services: [42]\n", "must be a service name (a string)"],
    ["services: [../etc/passwd]\n", "contains '/'"],
    ["services: [a..b]\n", "contains '..'"],
    ["services: [sshd.socket]\n", "is a .socket unit"],
    ["services: ['bad name']\n", "characters systemd does not allow"],
    ["services: [getty@]\n", "template without an instance"],
    ["services: [redis, redis.service]\n", "listed twice"],
    ["restore_net: maybe\n", '"restore_net" must be true or false (got "maybe")'],
    ["enable_pin_memory: 1\n", '"enable_pin_memory" must be true or false (got 1)'],
    ["enable_quick_kexec: [true]\n", '"enable_quick_kexec" must be true or false'],
  ];
  for (const [text, want] of bad) {
    test(text.trim(), () => {
      const e = failure(() => loadConfig(dirWith(text)));
      expect(e.message).toContain(want);
      expect(e.hint).toBeString();
      expect(e.exitCode).toBe(2);
    });
  }

  const badServer: [string, string][] = [
    ["criu_dir: var/nvwa\n", "absolute path"],
    ["criu_exe: 17\n", "must be a path"],
    ["kexec_exe: /usr/../sbin/kexec\n", "'..'"],
    ["systemd_etc: ''\n", "must not be empty"],
    [`log_dir: /${"a".repeat(5000)}\n`, "PATH_MAX"],
  ];
  for (const [text, want] of badServer) {
    test(text.trim().slice(0, 40), () => {
      const e = failure(() => loadConfig(dirWith(undefined, text)));
      expect(e.message).toContain(want);
      expect(e.hint).toContain("absolute path");
    });
  }

  test("the error points at the bad list element", () => {
    const e = failure(() => parseConfigText("r.yaml", "pids:\n  - 10\n  - 20\n  - x\n", RESTORE_KEYS));
    expect(e.message).toStartWith("r.yaml:4:5:");
  });

  test("unitNameProblem accepts real unit names", () => {
    for (const ok of ["redis", "redis-server.service", "getty@tty1", "a:b_c.d", "x\\x2dy"]) expect(unitNameProblem(ok)).toBeUndefined();
  });

  test("restoreFromParsed is pure over parsed keys", () => {
    expect(restoreFromParsed("f", { services: ["a"] }).services).toEqual(["a.service"]);
  });
});

describe("ownership and permissions (rule; real files are in test/host/config-perms.test.ts)", () => {
  test("root refuses world-writable", () => {
    const e = insecurityOf("/etc/nvwa/nvwa-restore.yaml", { uid: 0, mode: 0o100666 }, 0);
    expect(e?.code).toBe("config.insecure");
    expect(e?.message).toContain("world-writable (mode 666)");
    expect(e?.hint).toBe("chmod go-w /etc/nvwa/nvwa-restore.yaml");
  });
  test("root refuses group-writable", () => {
    expect(insecurityOf("/f", { uid: 0, mode: 0o100660 }, 0)?.message).toContain("group-writable");
  });
  test("root refuses a file owned by another user", () => {
    const e = insecurityOf("/f", { uid: 1000, mode: 0o100600 }, 0);
    expect(e?.hint).toBe("chown root:root /f");
  });
  test("0640 root:root is fine; non-root callers are not policed", () => {
    expect(insecurityOf("/f", { uid: 0, mode: 0o100640 }, 0)).toBeUndefined();
    expect(insecurityOf("/f", { uid: 1000, mode: 0o100666 }, 1000)).toBeUndefined();
  });
});
