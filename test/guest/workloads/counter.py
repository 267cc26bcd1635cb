#!/usr/bin/python3
# A process whose memory is its state: it counts in a variable and appends each value to a file.
# After a checkpoint/restore it must continue from where it was frozen, never from 1.
# counter.py LOG [MIB]: MIB MiB of dirty ballast make its dump take seconds (the fault scenario
# kills the daemon while criu dumps it).
import sys, time

path = sys.argv[1]
ballast = bytearray(b"nvwa") * ((int(sys.argv[2]) << 20) // 4) if len(sys.argv) > 2 else b""
n = 0
while True:
    n += 1
    with open(path, "a") as f:
        f.write(f"{n}\n")
    time.sleep(0.2)
