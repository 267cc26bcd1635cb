#!/usr/bin/python3
# A process whose memory is its state: it counts in a variable and appends each value to a file.
# After a checkpoint/restore it must continue from where it was frozen, never from 1.
import sys, time

path = sys.argv[1]
n = 0
while True:
    n += 1
    with open(path, "a") as f:
        f.write(f"{n}\n")
    time.sleep(0.2)
