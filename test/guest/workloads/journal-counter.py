# A service as shipped: no output setting, so systemd connects its stdout and stderr to the
# journal. It counts on stdout and, in step, through syslog(3) (/dev/log), five times a second.
import syslog
import time

syslog.openlog("svc-journal-sys", syslog.LOG_NDELAY)
n = 0
while True:
    n += 1
    print(f"tick {n}", flush=True)
    syslog.syslog(syslog.LOG_INFO, f"sys {n}")
    time.sleep(0.2)
