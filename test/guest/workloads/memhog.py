#!/usr/bin/python3
# memhog.py MIB LOG [DIRTY]: MIB MiB of dirty anonymous memory for the benchmarks (test/bench/guest.ts)
# and the pre-dump scenario. Every 1 MiB block holds bytes that depend on its index and on how often
# it was rewritten (its generation, kept in this process's memory too), so a restore that loses,
# mixes or zeroes pages is caught: SIGUSR1 re-reads all of it and logs "verify ok" or "verify BAD".
# With DIRTY > 0 it rewrites DIRTY blocks a second, round robin, for ever (a working set that
# changes while pre-dumps run). Logs "ready <wall clock>" once the memory is written (the cold
# path's "running again").
import mmap, signal, sys, time

mib = int(sys.argv[1])
log = open(sys.argv[2], "a", buffering=1)
dirty = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
mem = mmap.mmap(-1, mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
gen = [0] * mib


def block(i, g):
    # 1 MiB specific to block i and its generation (not all zero: zero pages could be special-cased)
    return (i.to_bytes(4, "little") + g.to_bytes(4, "little") + b"nvwa-mhg") * 65536


for i in range(mib):
    mem[i << 20:(i + 1) << 20] = block(i, 0)
log.write(f"ready {time.time():.6f} mib={mib}\n")


def verify(signum, frame):
    bad = [i for i in range(mib) if mem[i << 20:(i + 1) << 20] != block(i, gen[i])]
    log.write(f"verify ok rewrites={sum(gen)}\n" if not bad else f"verify BAD blocks={bad[:10]} of {len(bad)}\n")


signal.signal(signal.SIGUSR1, verify)
if dirty <= 0:
    while True:
        signal.pause()
n = 0
while True:
    i = n % mib
    gen[i] += 1
    mem[i << 20:(i + 1) << 20] = block(i, gen[i])
    n += 1
    time.sleep(1 / dirty)
