# A service as systemd starts it with StandardOutput=journal: stdout and stderr are one stream
# to the journal socket (argv[1]) that began with the seven-line header; then it counts on stdout.
import os, socket, sys, time

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.shutdown(socket.SHUT_RD)
s.sendall(b"stream-counter\nstream-counter.service\n30\n1\n0\n0\n0\n")
os.dup2(s.fileno(), 1)
os.dup2(s.fileno(), 2)
s.close()
null = os.open("/dev/null", os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
n = 0
while True:
    n += 1
    print(f"tick {n}", flush=True)
    time.sleep(0.1)
