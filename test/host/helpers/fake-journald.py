# A stand-in for journald's stdout stream socket: accepts stream connections at argv[1] and
# appends what each one sends to <argv[2]>.<n> (n = 1, 2, ... in accept order), every chunk
# prefixed with the writer's pid from SCM_CREDENTIALS ("[pid N] "), as journald attributes it.
import os, socket, sys, threading

path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(8)


def serve(c, n):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    with open(f"{out}.{n}", "ab", buffering=0) as f:
        while True:
            msg, anc, _flags, _addr = c.recvmsg(65536, socket.CMSG_SPACE(12))
            if not msg:
                break
            pid = 0
            for _level, kind, data in anc:
                if kind == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(data[:4], "little")
            f.write(b"[pid %d] " % pid + msg)


n = 0
while True:
    conn, _ = srv.accept()
    n += 1
    threading.Thread(target=serve, args=(conn, n), daemon=True).start()
