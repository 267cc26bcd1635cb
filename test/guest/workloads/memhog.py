#!/usr/bin/python3
# memhog.py MIB LOG: MIB MiB of dirty anonymous memory for the benchmarks (test/bench/guest.ts).
# Every page holds bytes that depend on its MiB, so a restore that loses or mixes pages is caught:
# SIGUSR1 re-reads all of it and logs "verify ok" or "verify BAD". Logs "ready <wall clock>" once
# the memory is written (the cold path's "running again").
import mmap, signal, sys, time

mib = int(sys.argv[1])
log = open(sys.argv[2], "a", buffering=1)
mem = mmap.mmap(-1, mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def block(i):
    # 1 MiB whose content is specific to block i (not all zero: zero pages could be special-cased)
    return (i.to_bytes(4, "little") + b"nvwa-memhog!") * 65536


for i in range(mib):
    mem[i << 20:(i + 1) << 20] = block(i)
log.write(f"ready {time.time():.6f} mib={mib}\n")


def verify(signum, frame):
    bad = [i for i in range(mib) if mem[i << 20:(i + 1) << 20] != block(i)]
    log.write("verify ok\n" if not bad else f"verify BAD blocks={bad[:10]}\n")


signal.signal(signal.SIGUSR1, verify)
while True:
    signal.pause()
