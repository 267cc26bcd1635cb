import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  defaultNvwaBin,
  listNvwaDropins,
  quoteEnvAssignment,
  quoteExecArg,
  removeAllNvwaDropins,
  removeDropins,
  renderNoRestartDropin,
  renderRestoreDropin,
  restoreModeFor,
  writeDropin,
  NORESTART_DROPIN,
  RESTORE_DROPIN,
} from "../../src/systemd/dropins.ts";
import { NvwaError } from "../../src/errors.ts";

describe("restore modes", () => {
  test("each original Type maps to a mode that leaves the restored process as MainPID", () => {
    const m = (type: string, pidFile = "") => restoreModeFor({ unit: "a.service", type, pidFile });
    expect(m("notify")).toEqual({ type: "notify" });
    expect(m("notify-reload")).toEqual({ type: "notify" });
    expect(m("oneshot")).toEqual({ type: "oneshot" });
    expect(m("forking", "/run/a/a.pid")).toEqual({ type: "forking", pidFile: "/run/a/a.pid" });
    expect(m("forking")).toEqual({ type: "forking", pidFile: "/run/nvwa/pid/a.service.pid" });
    for (const t of ["simple", "exec", "idle"]) expect(m(t)).toEqual({ type: "forking", pidFile: "/run/nvwa/pid/a.service.pid" });
    expect(() => m("dbus")).toThrow(NvwaError);
  });
});

describe("rendering", () => {
  test("notify service: the whole file", () => {
    expect(renderRestoreDropin({ unit: "redis-server.service", type: "notify", pidFile: "" }, { nvwaBin: "/usr/bin/nvwa", updateId: "20250101-abc" })).toBe(
      [
        "# Written by nvwa (update 20250101-abc): after the kernel jump redis-server.service is",
        "# restored from its checkpoint instead of started (original Type=notify, restored as Type=notify).",
        "# Removed by nvwa once the service runs again.",
        "[Unit]",
        "After=nvwa.service",
        "Wants=nvwa.service",
        "",
        "[Service]",
        "Type=notify",
        "ExecStart=",
        "ExecStart=!/usr/bin/nvwa restore redis-server.service",
        "DynamicUser=no",
        "TimeoutStartSec=300",
        'Environment="NVWA_RESTORE_MODE=notify"',
        "NotifyAccess=all",
        "",
      ].join("\n"),
    );
  });

  test("simple service restored as forking with nvwa's PID file", () => {
    const t = renderRestoreDropin({ unit: "counter.service", type: "simple", pidFile: "" }, { nvwaBin: "/opt/nvwa/bin/nvwa" });
    expect(t).toContain("Type=forking\n");
    expect(t).toContain("ExecStart=!/opt/nvwa/bin/nvwa restore counter.service\n");
    // root through "!", never User=root: the unit's User= keeps owning its RuntimeDirectory= and StateDirectory=
    expect(t).not.toMatch(/^(User|Group)=/m);
    expect(t).toContain('Environment="NVWA_PIDFILE=/run/nvwa/pid/counter.service.pid"\n');
    expect(t).toContain("PIDFile=/run/nvwa/pid/counter.service.pid\nGuessMainPID=no\n");
    expect(t).not.toContain("NotifyAccess");
  });

  test("oneshot keeps its cgroup alive with RemainAfterExit", () => {
    const t = renderRestoreDropin({ unit: "job.service", type: "oneshot", pidFile: "" }, { nvwaBin: "/usr/bin/nvwa" });
    expect(t).toContain("Type=oneshot\n");
    expect(t).toContain("RemainAfterExit=yes\n");
  });

  test("escaped instance names survive systemd's unescaping", () => {
    const unit = "getty@tty\\x2d1.service";
    const t = renderRestoreDropin({ unit, type: "simple", pidFile: "" }, { nvwaBin: "/usr/bin/nvwa" });
    expect(t).toContain('ExecStart=!/usr/bin/nvwa restore "getty@tty\\\\x2d1.service"\n');
    expect(t).toContain('Environment="NVWA_PIDFILE=/run/nvwa/pid/getty@tty\\\\x2d1.service.pid"\n');
  });

  test("Restart=no drop-in", () => {
    expect(renderNoRestartDropin("a.service", "u1")).toBe(
      "# Written by nvwa (update u1): a.service must not be restarted while it is\n# checkpointed and across the kernel jump. Removed by nvwa once the service runs again.\n[Service]\nRestart=no\n",
    );
  });

  test("Restart=no drop-in of a unit running a container: its stop commands cleared too", () => {
    expect(renderNoRestartDropin("container-web.service", "u1", { container: "web" })).toEndWith(
      "[Service]\nRestart=no\n# Its container web is checkpointed: its stop commands must not touch it.\nExecStop=\nExecStopPost=\n",
    );
  });

  test("bad unit names and relative binaries are refused", () => {
    for (const bad of ["../x.service", "a/b.service", "redis", "x.socket", ".service", ""]) {
      expect(() => renderNoRestartDropin(bad)).toThrow(NvwaError);
    }
    expect(() => renderRestoreDropin({ unit: "a.service", type: "notify", pidFile: "" }, { nvwaBin: "nvwa" })).toThrow(/absolute/);
  });

  test("quoting of ExecStart words and Environment assignments", () => {
    expect(quoteExecArg("/usr/bin/nvwa")).toBe("/usr/bin/nvwa");
    expect(quoteExecArg("a b")).toBe('"a b"');
    expect(quoteExecArg("100%")).toBe("100%%");
    expect(quoteExecArg("$HOME")).toBe('"$$HOME"');
    expect(quoteExecArg('say "hi"')).toBe('"say \\"hi\\""');
    expect(quoteExecArg("")).toBe('""');
    expect(quoteEnvAssignment("K", 'a%b\\c"d')).toBe('"K=a%%b\\\\c\\"d"');
  });

  test("default binary: the compiled nvwa itself, /usr/bin/nvwa under bun", () => {
    expect(defaultNvwaBin("/usr/local/bin/bun")).toBe("/usr/bin/nvwa");
    expect(defaultNvwaBin("/work/node_modules/.bin/bun")).toBe("/usr/bin/nvwa");
    expect(defaultNvwaBin("/usr/bin/nvwa")).toBe("/usr/bin/nvwa");
    expect(defaultNvwaBin("/opt/x/nvwa-arm64")).toBe("/opt/x/nvwa-arm64");
  });
});

describe("files under systemd_etc", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("write, list, remove one unit's drop-ins; other files stay", () => {
    dir = mkdtempSync(join(tmpdir(), "nvwa-dropins-"));
    const a = writeDropin(dir, "a.service", NORESTART_DROPIN, renderNoRestartDropin("a.service"));
    const b = writeDropin(dir, "a.service", RESTORE_DROPIN, "x\n");
    writeDropin(dir, "b.service", RESTORE_DROPIN, "y\n");
    writeFileSync(join(dir, "a.service.d", "override.conf"), "[Service]\n");
    expect(a).toBe(join(dir, "a.service.d", "nvwa-norestart.conf"));
    expect(readFileSync(b, "utf8")).toBe("x\n");
    expect(statSync(b).mode & 0o777).toBe(0o644);
    expect(listNvwaDropins(dir)).toEqual([a, b, join(dir, "b.service.d", "nvwa-restore.conf")].sort());

    expect(removeDropins(dir, "a.service").sort()).toEqual([a, b].sort());
    expect(existsSync(join(dir, "a.service.d", "override.conf"))).toBe(true); // not ours
    expect(removeDropins(dir, "a.service")).toEqual([]);
    // b's directory held only our file, so it goes with it
    expect(removeDropins(dir, "b.service")).toEqual([join(dir, "b.service.d", "nvwa-restore.conf")]);
    expect(existsSync(join(dir, "b.service.d"))).toBe(false);
  });

  test("removeAllNvwaDropins finds them by name pattern only", () => {
    dir = mkdtempSync(join(tmpdir(), "nvwa-dropins-"));
    mkdirSync(join(dir, "x.service.d"));
    mkdirSync(join(dir, "y.timer.d"));
    writeFileSync(join(dir, "x.service.d", "nvwa-restore.conf"), "");
    writeFileSync(join(dir, "x.service.d", "nvwa.conf.bak"), "");
    writeFileSync(join(dir, "y.timer.d", "nvwa-old.conf"), "");
    writeFileSync(join(dir, "y.timer.d", "10-nvwa-like.conf"), "");
    writeFileSync(join(dir, "nvwa-stray.conf"), ""); // not in a .d directory: not a drop-in
    const removed = removeAllNvwaDropins(dir).sort();
    expect(removed).toEqual([join(dir, "x.service.d", "nvwa-restore.conf"), join(dir, "y.timer.d", "nvwa-old.conf")]);
    expect(existsSync(join(dir, "x.service.d", "nvwa.conf.bak"))).toBe(true);
    expect(existsSync(join(dir, "y.timer.d", "10-nvwa-like.conf"))).toBe(true);
    expect(existsSync(join(dir, "nvwa-stray.conf"))).toBe(true);
    expect(removeAllNvwaDropins(join(dir, "missing"))).toEqual([]);
  });
});
