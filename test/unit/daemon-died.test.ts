/** What `nvwa update` prints when the daemon dies under it: phase, what comes next, the log. */
import { describe, expect, test } from "bun:test";
import { daemonDiedError } from "../../src/cli/daemon-died.ts";

describe("daemonDiedError", () => {
  test("during the checkpoint, under systemd's restart: the rollback by the restart, and the logs", () => {
    const e = daemonDiedError({ manifest: { updateId: "U1", phase: "checkpointing" }, restart: "on-failure", logDir: "/var/log/nvwa" });
    expect(e.code).toBe("daemon.died");
    expect(e.message).toBe("the nvwa daemon died during checkpointing of update U1; systemd restarts it, and its start resumes the frozen targets and unloads the kernel (rollback)");
    expect(e.hint).toBe("follow it with `nvwa status`; the log: journalctl -u nvwa and /var/log/nvwa/update-U1.log");
    expect(e.exitCode).toBe(4);
  });
  test("after the commit, with no restart policy: the exact command, and what it will do", () => {
    const e = daemonDiedError({ manifest: { updateId: "U2", phase: "committed" }, restart: "no", logDir: "/l" });
    expect(e.message).toBe("the nvwa daemon died during committed of update U2; nothing restarts it: run `systemctl start nvwa`, whose start restores the checkpointed targets on this kernel");
  });
  test("systemd could not be asked: the command is given, not a promise", () => {
    expect(daemonDiedError({ manifest: { updateId: "U3", phase: "dumped" }, restart: null, logDir: "/l" }).message).toContain("run `systemctl start nvwa`");
  });
  test("no update written yet, or one already settled: no promise of recovery", () => {
    expect(daemonDiedError({ manifest: null, restart: "on-failure", logDir: "/l" }).message).toBe("the nvwa daemon stopped before answering update; no update had started");
    expect(daemonDiedError({ manifest: { updateId: "U4", phase: "rolled-back" }, restart: "on-failure", logDir: "/l" }).message).toBe("the nvwa daemon stopped before answering update (update U4 is rolled-back)");
  });
});
