#!/usr/bin/python3
# A process criu cannot checkpoint: it holds a perf_event file descriptor, which criu refuses to
# dump. Otherwise it counts like counter.py, so the test can see it keeps running.
import ctypes, os, struct, sys, time

attr = struct.pack("IIQQQQQ", 1, 112, 9, 0, 0, 1, 0) + b"\0" * 64  # PERF_TYPE_SOFTWARE, SW_DUMMY, disabled
buf = ctypes.create_string_buffer(attr, len(attr))
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 298, "aarch64": 241}[os.uname().machine]
fd = libc.syscall(nr, buf, 0, -1, -1, 0)
if fd < 0:
    raise OSError(ctypes.get_errno(), "perf_event_open")
path = sys.argv[1]
n = 0
while True:
    n += 1
    with open(path, "a") as f:
        f.write(f"{n}\n")
    time.sleep(0.2)
