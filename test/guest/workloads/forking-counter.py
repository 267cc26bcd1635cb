#!/usr/bin/python3
# A classic double-forking daemon (for a Type=forking unit): the first child leaves the session
# and forks the daemon, which writes its PID file and counts in memory like counter.py. The
# parent returns only once the PID file exists, as systemd expects of Type=forking.
import os, sys, time

log, pidfile = sys.argv[1], sys.argv[2]
r, w = os.pipe()
if os.fork() > 0:
    os.close(w)
    os.read(r, 1)  # the daemon has written its PID file
    sys.exit(0)
os.setsid()
if os.fork() > 0:
    os._exit(0)
os.close(r)
os.chdir("/")
with open(pidfile + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\n")
os.rename(pidfile + ".tmp", pidfile)
os.write(w, b"x")
os.close(w)
n = 0
while True:
    n += 1
    with open(log, "a") as f:
        f.write(f"{n}\n")
    time.sleep(0.2)
