#!/usr/bin/python3
"""Workloads for the checkpoint host tests (test/host/criu*.test.ts).

Each mode daemonizes the way a unit started by systemd runs (fork, setsid: it leads its own
session; --double-fork: the classic daemon whose session leader is gone), gives itself stdio of
its own (files, never the test runner's pipes), closes every inherited fd, writes its pid to
<dir>/pid, and then records its progress in files under <dir> that the tests read:

  counter DIR               count in DIR/count, +1 every 50 ms
  tree DIR                  parent + child + an extra thread in the parent; the parent writes
                            numbers into a pipe, the child copies them to DIR/child; the thread
                            counts in DIR/thread; the parent keeps DIR/log open and appends
  tcp-client DIR PORT       connects to 127.0.0.1:PORT, sends n, expects "echo n", records
                            "n ok" (or the error) in DIR/tcp
  echo-server DIR PORT      echoes lines back (kept outside the dump); DIR/port when listening
  memory DIR MIB            MIB MiB of anonymous memory, every page dirtied with a pattern;
                            DIR/ready holds the checksum; SIGUSR1 re-checks into DIR/verify
  undumpable DIR            a counter that also holds a perf_event fd, which criu cannot dump

--foreground skips daemonizing (a "shell job": session and process group of the caller).
--double-fork: fork, setsid, fork (criu needs --shell-job: the root does not lead its session).
"""
import ctypes
import mmap
import os
import signal
import socket
import struct
import sys
import threading
import time


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def daemonize(d, how):
    # "leader": fork + setsid, like a unit systemd starts (the process leads its session);
    # "double-fork": the classic daemon, whose session leader has exited (criu then needs
    # --shell-job); "foreground": stays in the caller's session and group (a shell job).
    if how != "foreground":
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
        if how == "double-fork" and os.fork() > 0:
            os._exit(0)
    devnull = os.open("/dev/null", os.O_RDONLY)
    out = os.open(os.path.join(d, "stdout"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, 65536)
    os.chdir(d)
    write_atomic(os.path.join(d, "pid"), str(os.getpid()))


def counter(d):
    n = 0
    while True:
        n += 1
        write_atomic(os.path.join(d, "count"), str(n))
        time.sleep(0.05)


def tree(d):
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(w)
        f = os.fdopen(r, "r")
        for line in f:
            write_atomic(os.path.join(d, "child"), line.strip())
        os._exit(0)
    os.close(r)
    write_atomic(os.path.join(d, "childpid"), str(child))

    def spin():
        k = 0
        while True:
            k += 1
            write_atomic(os.path.join(d, "thread"), str(k))
            time.sleep(0.05)

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    log = open(os.path.join(d, "log"), "a", buffering=1)
    pipe = os.fdopen(w, "w", buffering=1)
    n = 0
    while True:
        n += 1
        pipe.write("%d\n" % n)
        log.write("%d\n" % n)
        time.sleep(0.05)


def tcp_client(d, port):
    c = socket.create_connection(("127.0.0.1", port))
    f = c.makefile("rw", buffering=1)
    out = open(os.path.join(d, "tcp"), "a", buffering=1)
    n = 0
    while True:
        n += 1
        try:
            f.write("%d\n" % n)
            f.flush()
            reply = f.readline().strip()
            out.write("%d %s\n" % (n, "ok" if reply == "echo %d" % n else "bad:" + reply))
        except Exception as e:  # recorded: the test reads it
            out.write("%d error %r\n" % (n, e))
            time.sleep(0.5)
        time.sleep(0.05)


def echo_server(d, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4)
    write_atomic(os.path.join(d, "port"), str(s.getsockname()[1]))
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def serve(c):
    f = c.makefile("rw", buffering=1)
    for line in f:
        f.write("echo " + line)
        f.flush()


def checksum(m, size):
    total = 0
    for off in range(0, size, 4096):
        total = (total + m[off] + m[off + 4095]) % 1000000007
    return total


def memory(d, mib):
    size = mib << 20
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    page = bytes(range(256)) * 16
    for off in range(0, size, 4096):
        m[off:off + 4096] = page
        m[off] = (off >> 12) % 251
    want = checksum(m, size)
    write_atomic(os.path.join(d, "ready"), str(want))

    def verify(_sig, _frame):
        # Every byte of every page against what was written (a lazy restore that loses a page
        # leaves zeros, which a sampled checksum could miss); the first bad page is named.
        bad = None
        for off in range(0, size, 4096):
            if m[off] != (off >> 12) % 251 or m[off + 1:off + 4096] != page[1:]:
                bad = off
                break
        write_atomic(os.path.join(d, "verify"), "ok" if bad is None and checksum(m, size) == want else f"bad page {bad >> 12 if bad is not None else '?'}")

    signal.signal(signal.SIGUSR1, verify)
    while True:
        time.sleep(1)


def undumpable(d):
    # struct perf_event_attr: type PERF_TYPE_SOFTWARE, size 112 (PERF_ATTR_SIZE_VER7 is 128;
    # any published size works), config PERF_COUNT_SW_DUMMY; disabled.
    attr = struct.pack("IIQQQQQ", 1, 112, 9, 0, 0, 1, 0) + b"\0" * 64
    buf = ctypes.create_string_buffer(attr, len(attr))
    nr = {"x86_64": 298, "aarch64": 241}[os.uname().machine]
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(nr, buf, 0, -1, -1, 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "perf_event_open")
    write_atomic(os.path.join(d, "perf_fd"), str(fd))
    counter(d)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    how = "foreground" if "--foreground" in sys.argv else "double-fork" if "--double-fork" in sys.argv else "leader"
    mode, d = args[0], os.path.abspath(args[1])
    os.makedirs(d, exist_ok=True)
    daemonize(d, how)
    if mode == "counter":
        counter(d)
    elif mode == "tree":
        tree(d)
    elif mode == "tcp-client":
        tcp_client(d, int(args[2]))
    elif mode == "echo-server":
        echo_server(d, int(args[2]))
    elif mode == "memory":
        memory(d, int(args[2]))
    elif mode == "undumpable":
        undumpable(d)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
