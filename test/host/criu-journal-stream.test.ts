/**
 * The mechanism issue #13 builds on, with the real criu on this host: a service's stdout and
 * stderr are one stream to journald (a stand-in here: helpers/fake-journald.py; the guest has the
 * real one). criu refuses to dump half of a stream connection unless it is named external
 * (`--external unix[INO]`, INO the service's own end); on restore the process gets a fresh
 * stream nvwa opened and headed like systemd's (`--inherit-fd fd[3]:socket:[INO]`, fd 3 passed
 * by nvwa's criu runner), and goes on writing into it: same pid, the count continuing, every
 * chunk from the restored pid, the socket blocking. Without --inherit-fd, criu's --ext-unix-sk
 * silently reconnects by path and the stream has no header: journald would drop it.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeFd, connectStream } from "../../ffi/unix.ts";
import { dumpArgv, restoreArgv, type SharedCriuOptions } from "../../src/criu/argv.ts";
import { runCriu } from "../../src/criu/runner.ts";
import { streamHeader } from "../../src/systemd/journal-stream.ts";
import { PYTHON, testCriu, waitFor } from "./helpers/criu-env.ts";

const CRIU = testCriu();
const dir = mkdtempSync(join(tmpdir(), "nvwa-jstream-"));
const SOCK = join(dir, "stdout");
const OUT = join(dir, "conn");
const procs: { kill(sig?: number): void }[] = [];
const pids: number[] = [];
afterAll(() => {
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const p of procs) p.kill(9);
  rmSync(dir, { recursive: true, force: true });
});

const shared: SharedCriuOptions = { shellJob: false, tcpEstablished: false, extUnixSk: true, fileLocks: false, pinMemory: false, displayStats: false, verbosity: 4 };
const conn = (n: number): string => (existsSync(`${OUT}.${n}`) ? readFileSync(`${OUT}.${n}`, "utf8") : "");
const ticks = (text: string, pid: number): number[] => [...text.matchAll(new RegExp(`\\[pid ${pid}\\] tick (\\d+)`, "g"))].map((m) => Number(m[1]));
const socketIno = (link: string): number => Number(/^socket:\[(\d+)\]$/.exec(link)?.[1] ?? "NaN");

async function dump(pid: number, images: string, externals: string[]): Promise<{ exitCode: number; log: string }> {
  const r = await runCriu({ exe: CRIU, argv: dumpArgv({ ...shared, pid, imagesDir: images, externals }), action: "dump", outDir: images, timeoutMs: 60_000 });
  return { exitCode: r.exitCode, log: readFileSync(join(images, "dump.log"), "utf8") };
}

async function restore(images: string, inherit: boolean): Promise<number> {
  const ino = Number(readFileSync(join(dir, "ino"), "utf8"));
  const pidfile = join(images, "restored.pid");
  const fd = inherit ? connectStream(SOCK, streamHeader({ identifier: "stream-counter", unit: "stream-counter.service", priority: 30, levelPrefix: true, forwardToKmsg: false, forwardToConsole: false })) : -1;
  try {
    const r = await runCriu({
      exe: CRIU,
      argv: restoreArgv({ ...shared, imagesDir: images, pidfile, ...(inherit ? { inheritFds: [{ fd: 3, resource: `socket:[${ino}]` }] } : {}) }),
      action: "restore",
      outDir: images,
      timeoutMs: 60_000,
      ...(inherit ? { passFds: [fd] } : {}),
    });
    expect({ exit: r.exitCode, log: r.exitCode === 0 ? "" : readFileSync(join(images, "restore.log"), "utf8").slice(-1500) }).toEqual({ exit: 0, log: "" });
    const pid = Number(readFileSync(pidfile, "utf8"));
    pids.push(pid);
    if (inherit) expect(socketIno(readlinkSync(`/proc/${pid}/fd/1`))).toBe(socketIno(readlinkSync(`/proc/self/fd/${fd}`)));
    return pid;
  } finally {
    if (fd >= 0) closeFd(fd);
  }
}

/** A counter as systemd starts a service with journal output, on connection `n` of the stand-in. */
async function startCounter(n: number): Promise<{ svc: ReturnType<typeof Bun.spawn>; pid: number; ino: number }> {
  const svc = Bun.spawn(["/usr/bin/setsid", PYTHON, join(import.meta.dir, "helpers/stream-counter.py"), SOCK], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  pids.push(svc.pid);
  await waitFor("the counter's ticks", () => ticks(conn(n), svc.pid).length >= 3);
  const link = readlinkSync(`/proc/${svc.pid}/fd/1`);
  expect(readlinkSync(`/proc/${svc.pid}/fd/2`)).toBe(link); // one stream for both, as systemd dup2()s it
  const ino = socketIno(link);
  await Bun.write(join(dir, "ino"), String(ino));
  return { svc, pid: svc.pid, ino };
}

/** Dumps the counter with its stream named external, then kills it and reaps it (its pid must be free for the restore). */
async function dumpAndKill(c: { svc: ReturnType<typeof Bun.spawn>; pid: number; ino: number }, n: number): Promise<{ images: string; last: number }> {
  const images = mkdtempSync(join(dir, "img-"));
  expect((await dump(c.pid, images, [`unix[${c.ino}]`])).exitCode).toBe(0);
  const last = Math.max(...ticks(conn(n), c.pid));
  c.svc.kill(9);
  await c.svc.exited;
  return { images, last };
}

test("a journal stream is dumped as external and handed back through --inherit-fd; the service writes on into the new stream", async () => {
  procs.push(Bun.spawn([PYTHON, join(import.meta.dir, "helpers/fake-journald.py"), SOCK, OUT], { stdin: "ignore", stdout: "ignore", stderr: "inherit" }));
  await waitFor("the stand-in journald", () => existsSync(SOCK));
  const c = await startCounter(1);

  // criu refuses half a stream connection when it is not named external...
  const refused = await dump(c.pid, mkdtempSync(join(dir, "img-")), []);
  expect(refused.exitCode).not.toBe(0);
  expect(refused.log).toContain("Can't dump half of stream unix connection");
  await waitFor("the counter running again after the refused dump", () => ticks(conn(1), c.pid).length >= 5);

  // ...and dumps it with --external unix[INO] of the service's own end.
  const { images, last } = await dumpAndKill(c, 1);
  const restored = await restore(images, true);
  expect(restored).toBe(c.pid);
  await waitFor("ticks in the new stream", () => ticks(conn(2), c.pid).length >= 3);
  const text = conn(2);
  // The header first, written by nvwa (this process; the stand-in may read it before it sees
  // credentials: pid 0), then the restored process's own lines, continuing the count.
  expect(text).toMatch(new RegExp(`^\\[pid (0|${process.pid})\\] stream-counter\nstream-counter.service\n30\n1\n0\n0\n0\n`));
  const after = ticks(text, c.pid);
  expect(after[0]).toBe(last + 1);
  expect(after).toEqual(after.map((_, i) => last + 1 + i));
  expect(text.split("\n").filter((l) => /^\[pid \d+\]/.test(l) && !l.startsWith(`[pid ${c.pid}] tick `)).length).toBe(1); // only the header's first line
  // Blocking, as systemd makes it: criu applies no file flags to an inherited socket.
  const flags = parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/${c.pid}/fdinfo/1`, "utf8"))?.[1] ?? "0", 8);
  expect(flags & 0o4000).toBe(0);
}, 120_000);

test("without --inherit-fd, --ext-unix-sk reconnects the stream by path with no header (what nvwa must never leave to criu)", async () => {
  const c = await startCounter(3);
  const { images } = await dumpAndKill(c, 3);
  const restored = await restore(images, false);
  await waitFor("a fourth connection", () => ticks(conn(4), restored).length >= 1);
  expect(conn(4)).toMatch(new RegExp(`^\\[pid ${restored}\\] tick \\d+\n`));
}, 120_000);
