/**
 * A process that holds a file on a tmpfs open (a daemon's PID file in /run: lighttpd does it)
 * loses that file with the jump, and criu cannot restore it: the real criu here shows both, and
 * that nvwa's copy, saved while the tree is frozen and put back before the restore
 * (src/criu/held-files.ts), makes the restore work, same content, mode and owner. /dev/shm is the
 * tmpfs; deleting the file stands in for the reboot.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { heldVolatileFiles, putBackHeldFiles, saveHeldFiles } from "../../src/criu/held-files.ts";
import { dumpArgv, restoreArgv, type SharedCriuOptions } from "../../src/criu/argv.ts";
import { runCriu } from "../../src/criu/runner.ts";
import { PYTHON, testCriu, waitFor } from "./helpers/criu-env.ts";

const CRIU = testCriu();
const dir = mkdtempSync(join(tmpdir(), "nvwa-held-"));
const HELD = `/dev/shm/nvwa-held-${process.pid}.pid`;
const COUNT = join(dir, "count");
let restored = 0;
afterAll(() => {
  if (restored > 0) {
    try {
      process.kill(restored, "SIGKILL");
    } catch {
      // gone
    }
  }
  rmSync(HELD, { force: true });
  rmSync(dir, { recursive: true, force: true });
});

const shared: SharedCriuOptions = { shellJob: false, tcpEstablished: false, extUnixSk: true, fileLocks: false, pinMemory: false, displayStats: false, verbosity: 4 };
// Holds its PID file open on the tmpfs and counts into a file on disk.
const SCRIPT = `
import os, sys, time
f = open(sys.argv[1], "w"); f.write(str(os.getpid())); f.flush(); os.fchmod(f.fileno(), 0o640)
null = os.open("/dev/null", os.O_RDWR)
for fd in (0, 1, 2): os.dup2(null, fd)
n = 0
while True:
    n += 1
    with open(sys.argv[2], "w") as c: c.write(str(n))
    time.sleep(0.05)
`;

const count = (): number => Number(readFileSync(COUNT, "utf8") || "0");

test("a PID file held open on a tmpfs: the restore fails without it, and works with nvwa's copy put back", async () => {
  const svc = Bun.spawn(["/usr/bin/setsid", PYTHON, "-c", SCRIPT, HELD, COUNT], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  await waitFor("the counter", () => existsSync(COUNT) && count() > 3);
  expect(heldVolatileFiles([svc.pid])).toEqual([HELD]);

  const images = mkdtempSync(join(dir, "img-"));
  const dump = await runCriu({ exe: CRIU, argv: dumpArgv({ ...shared, pid: svc.pid, imagesDir: images }), action: "dump", outDir: images, timeoutMs: 60_000 });
  expect(dump.exitCode).toBe(0);
  const saved = saveHeldFiles([svc.pid], images, `pid ${svc.pid}`);
  expect(saved).toEqual([{ path: HELD, mode: 0o640, uid: 0, gid: 0, size: String(svc.pid).length, copy: "held-file-0" }]);
  const frozenAt = count();
  svc.kill(9);
  await svc.exited;
  rmSync(HELD); // the jump: every tmpfs starts empty

  const restore = () => runCriu({ exe: CRIU, argv: restoreArgv({ ...shared, imagesDir: images }), action: "restore", outDir: images, timeoutMs: 60_000 });
  expect((await restore()).exitCode).not.toBe(0);
  expect(readFileSync(join(images, "restore.log"), "utf8")).toContain(`Can't open file ${HELD.slice(1)} on restore`);

  // The failed restore's half-made task must be gone before the pid can be made again.
  await waitFor("the failed restore's task gone", () => !existsSync(`/proc/${svc.pid}`));
  putBackHeldFiles(saved, images);
  expect(readFileSync(HELD, "utf8")).toBe(String(svc.pid));
  expect(statSync(HELD).mode & 0o7777).toBe(0o640);
  const r = await restore();
  expect({ exit: r.exitCode, log: r.exitCode === 0 ? "" : readFileSync(join(images, "restore.log"), "utf8").slice(-800) }).toEqual({ exit: 0, log: "" });
  restored = svc.pid;
  await waitFor("the restored counter going on", () => count() > frozenAt + 3);
  expect(readFileSync(`/proc/${svc.pid}/cmdline`, "utf8")).toContain(PYTHON);
}, 120_000);
