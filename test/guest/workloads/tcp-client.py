#!/usr/bin/python3
# One end of a TCP connection to Redis, opened once and never reopened. On SIGUSR1 it sends
# INCR over that same socket and logs the reply, so the host can see the connection carried data
# before and after the kernel changed. It stays idle otherwise: a packet sent while only one end
# is restored would be answered with a reset.
import signal, socket, sys, os

log = open(sys.argv[1], "a", buffering=1)
s = socket.create_connection(("127.0.0.1", 6379))
local = s.getsockname()
log.write(f"connected from {local[0]}:{local[1]}\n")

def incr(signum, frame):
    s.sendall(b"INCR tcp_exchanges\r\n")
    reply = s.recv(64).decode().strip().lstrip(":")  # RESP integer reply ":<n>"
    log.write(f"INCR -> {reply} via {local[1]}\n")

signal.signal(signal.SIGUSR1, incr)
while True:
    signal.pause()
