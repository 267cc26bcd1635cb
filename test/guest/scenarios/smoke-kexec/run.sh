#!/bin/bash
# smoke-kexec, guest side: prove the harness crosses a kexec from the old kernel (6.1) to the new one
# (6.12) and comes back with results — without nvwa. Runs once per boot (see the runner's contract).
#   boot 1 (old kernel): record uname -r, start a counter, checkpoint it with criu (a real workload
#                        image on disk, as nvwa will make), load the new kernel with kexec_file_load
#                        (`kexec -s`), `systemctl kexec`
#   boot 2 (new kernel): record uname -r, restore the counter with criu and see it count on, pass
set -euo pipefail
# shellcheck source=SCRIPTDIR/../../image/rootfs/usr/local/lib/nvwa-guest/lib.sh
. "$NVWA_GUEST_LIB"

work=/var/lib/smoke-kexec # on the root disk: survives the kexec (unlike /run and /tmp)
kernel=$(uname -r)
guest_result "boot${NVWA_BOOT}_kernel" "$kernel"

counter_value() { tail -n 1 "$work/counter.log" 2>/dev/null || echo 0; }

case $NVWA_BOOT in
1)
	[[ $kernel == "$KVER_OLD" ]] || guest_fail "boot 1 runs $kernel, expected $KVER_OLD"
	mkdir -p "$work/dump"

	# A tiny workload: counts up every 0.2 s into a file. Own session (criu dumps a whole session
	# without --shell-job), own stdio (files, not the runner's pipe), started at a high pid so that
	# its pid is free again after the jump.
	echo 30000 >/proc/sys/kernel/ns_last_pid
	setsid python3 -c '
import os, time
open("/var/lib/smoke-kexec/counter.pid", "w").write(str(os.getpid()))
n = 0
while True:
    n += 1
    print(n, flush=True)
    time.sleep(0.2)
' </dev/null >"$work/counter.log" 2>&1 &
	guest_wait 30 test -s "$work/counter.pid" || guest_fail "counter did not start"
	pid=$(<"$work/counter.pid")
	guest_wait 30 bash -c "(( \$(tail -n 1 $work/counter.log) >= 3 ))" || guest_fail "counter is not counting"
	guest_result counter_pid "$pid"

	guest_mark criu-dump-start
	criu dump -t "$pid" -D "$work/dump" -o dump.log -v4 || {
		cp "$work/dump/dump.log" "$NVWA_RESULTS/" || true
		guest_fail "criu dump failed"
	}
	guest_mark criu-dump-end
	dumped=$(counter_value)
	guest_result counter_at_dump "$dumped"
	sync

	guest_kexec_load "$KVER_NEW" # kexec -s (kexec_file_load) + --reuse-cmdline; checks kexec_loaded
	guest_result kexec_loaded "$(cat /sys/kernel/kexec_loaded)"
	guest_mark kexec
	systemctl kexec # orderly: units stopped, file systems unmounted, then the jump
	exit 75          # continue in boot 2 (the shutdown usually interrupts us before this)
	;;
2)
	[[ $kernel == "$KVER_NEW" ]] || guest_fail "boot 2 runs $kernel, expected $KVER_NEW"
	dumped=$(counter_value)
	guest_mark criu-restore-start
	criu restore -d -D "$work/dump" -o restore.log -v4 --pidfile "$work/restored.pid" || {
		cp "$work/dump/restore.log" "$NVWA_RESULTS/" || true
		guest_fail "criu restore failed"
	}
	guest_mark criu-restore-end
	guest_wait 30 bash -c "(( \$(tail -n 1 $work/counter.log) > $dumped + 2 ))" ||
		guest_fail "restored counter does not count on from $dumped"
	guest_result counter_after_restore "$(counter_value)"
	guest_result counter_pid_after_restore "$(<"$work/restored.pid")"
	kill "$(<"$work/restored.pid")"
	exit 0
	;;
*)
	guest_fail "unexpected boot $NVWA_BOOT"
	;;
esac
