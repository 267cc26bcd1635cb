#!/bin/bash
# Scenario "faults": the fault matrix. Each fault is caused for real (kill -9 of the daemon, a power
# cut with sysrq `b`: no sync, no shutdown, QEMU resets into the old kernel), at an exact moment
# held by nvwa's fault points (NVWA_FAULT_PAUSE on nvwa.service, src/fault-point.ts). Targets: three
# counters (pids; c2 carries 128 MiB so its dump takes seconds) and redis-test (a service).
#
#   boot 1 (6.1)  a  kill -9 during criu's dump of the second target → systemd restarts the daemon,
#                    which waits for that criu and rolls back: everything runs on, kernel unloaded
#                 b  kill -9 just after the commit (trees killed) → the restart restores on this
#                    kernel; kill -9 again during that restore → nothing restored twice
#                 c  power cut during the checkpoint
#   boot 2 (6.1)  c  the targets are reported lost by name; no drop-in; the enabled service starts
#                 d  new targets; power cut after the commit (trees killed), before the jump
#   boot 3 (6.1)  d  everything restored on the old kernel (the data-loss window of before)
#                 e-h the jump, with c1's images damaged and c2's pid taken at boot by another unit
#   boot 4 (6.12) g/h c3 restored; c1 failed with its restore.log, c2 skipped naming the holder
#                 f  kill -9 during the boot-side restore; the restart restores nothing twice
#                 e  power cut during that restore, before the service
#   boot 5 (6.1)  e  the service restored; c3 not restored twice; c1/c2 reported by name
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1
F=/run/nvwa/faults
S=$NVWA_STATE
mf() { python3 /payload/mf.py "$1"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The daemon's fault points: a drop-in of the test's own (not nvwa-*.conf, so nvwa never removes it).
arm_faults() {
	mkdir -p /etc/systemd/system/nvwa.service.d
	printf '[Service]\nEnvironment=NVWA_FAULT_PAUSE=%s\n' "$1" >/etc/systemd/system/nvwa.service.d/test-faults.conf
	systemctl daemon-reload
	! systemctl is-active -q nvwa.service || systemctl restart nvwa.service
	rm -f "$F"/*
}
paused() { test -e "$F/$1.paused"; }
wait_paused() { guest_wait "${2:-300}" paused "$1" || guest_fail "the daemon never reached fault point $1: $(tail -3 "$NVWA_RESULTS/$3" 2>/dev/null)"; }
release() { touch "$F/$1.go"; }
daemon() { systemctl show -p MainPID --value nvwa.service; }
restarts() { systemctl show -p NRestarts --value nvwa.service; }
kill_daemon() {
	local pid
	pid=$(daemon)
	((pid > 0)) || guest_fail "nvwa.service has no main process to kill"
	kill -9 "$pid"
	guest_mark "killed-daemon-$pid"
}
power_cut() {
	guest_mark "power-cut-$1"
	# Only the results disk is flushed (they must reach the host); the root disk keeps whatever
	# nvwa itself made durable, as at a real power cut.
	sync -f "$NVWA_RESULTS/marks.txt"
	echo 1 >/proc/sys/kernel/sysrq
	echo b >/proc/sysrq-trigger
	sleep 60
	guest_fail "still running after sysrq b"
}
# settled PHASE...: the manifest is in one of these phases and the daemon is up; after a restore,
# the boot-side restore has also ended (its drop-ins removed: the phase is settled a little before).
settled() {
	local p
	p=$(mf 'm["phase"]')
	[[ " $* " == *" $p "* ]] && systemctl is-active -q nvwa.service || return 1
	[[ $p != restored && $p != restore-failed ]] || [[ $(mf '"end" in m["timings"].get("boot-restore", {})') == True ]]
}
wait_settled() { guest_wait 300 settled "$@" || guest_fail "the update did not settle as $*: phase $(mf 'm["phase"]'), nvwa $(systemctl is-active nvwa.service)"; }
state_of() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null; }
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
# counting NAME: its process runs (not stopped) and its log grows.
counting() {
	local pid before
	pid=$(cat "$W/$1.pid")
	[[ $(state_of "$pid") != T && -n $(state_of "$pid") ]] || return 1
	before=$(wc -l <"$W/$1.log")
	sleep 0.6
	(($(wc -l <"$W/$1.log") > before))
}
all_counting() { for c in "$@"; do counting "$c" || return 1; done; }
is_counter() { grep -q counter.py "/proc/$1/cmdline" 2>/dev/null; }
# continuous NAME: 1, 2, 3, ... with no restart from 1 and no gap (no power cut in between).
continuous() {
	python3 - "$W/$1.log" <<'PY' || guest_fail "$1: counter log is not continuous"
import sys
v = [int(x) for x in open(sys.argv[1]).read().split()]
assert v == list(range(1, len(v) + 1)), v[:3] + ["..."] + v[-3:]
PY
}
# resumed_after_cut NAME BEFORE: after a power cut, lines the page cache held may be gone (ext4
# can even leave NUL bytes where appended data never reached the disk), but the process continued
# from its memory: strictly increasing from 1 (never restarted), past BEFORE.
resumed_after_cut() {
	python3 - "$W/$1.log" "$2" <<'PY' || guest_fail "$1: did not continue from its checkpointed value"
import sys
v = [int(x) for x in open(sys.argv[1]).read().split() if "\0" not in x]
assert v[0] == 1 and all(a < b for a, b in zip(v, v[1:])) and v[-1] > int(sys.argv[2]), (v[:3], v[-3:], sys.argv[2])
PY
}
start_counters() {
	local base=31000 c
	for c in c1 c2 c3; do
		high_pids $base
		base=$((base + 100))
		rm -f "$W/$c.log"
		if [[ $c == c2 ]]; then start_detached $c python3 "$T/counter.py" "$W/$c.log" 256; else start_detached $c python3 "$T/counter.py" "$W/$c.log"; fi
	done
	for c in c1 c2 c3; do guest_wait 30 test -s "$W/$c.log" || guest_fail "$c did not start: $(cat "$W/$c.out")"; done
}
start_redis() { start_redis_test 1000 "before-$boot"; }
redis_back() { # redis_back MARKER: same MainPID as saved, same keys
	[[ $(systemctl is-active redis-test.service) == active ]] || guest_fail "redis-test is $(systemctl is-active redis-test.service)"
	[[ $(systemctl show -p MainPID --value redis-test.service) == "$(cat "$W/redis.pid")" ]] || guest_fail "redis-test's MainPID is $(systemctl show -p MainPID --value redis-test.service), not $(cat "$W/redis.pid")"
	[[ $(redis-cli GET marker) == "$1" ]] || guest_fail "redis-test's marker is '$(redis-cli GET marker)', not $1"
	(($(redis-cli DBSIZE) >= 1001)) || guest_fail "redis-test holds $(redis-cli DBSIZE) keys"
}
config() { write_restore_config "[$(cat "$W/c1.pid"), $(cat "$W/c2.pid"), $(cat "$W/c3.pid")]" "[redis-test]"; }
update_bg() { # update_bg FILE: nvwa update --fast in the background, its output in FILE
	nvwa update --fast "$KVER_NEW" >"$NVWA_RESULTS/$1" 2>&1 &
	client=$!
}
# wait_client: the background update's exit status in $rc (wait works only in this shell, not in $()).
wait_client() {
	rc=0
	wait "$client" || rc=$?
}
collect() {
	save_criu_logs
	cp "$W"/*.log "$NVWA_RESULTS/" 2>/dev/null || true
	cp -r /var/log/nvwa "$NVWA_RESULTS/nvwa-logs-$boot" 2>/dev/null || true
	cp /var/nvwa/running/manifest.json "$NVWA_RESULTS/manifest-boot$boot.json" 2>/dev/null || true
}
trap 'collect' EXIT

case $boot in
1)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r)"
	mkdir -p "$W"
	install_nvwa
	arm_faults before-dump-2,after-kill,after-pids-restored
	start_redis
	systemctl enable -q redis-test.service
	start_counters
	config
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check.txt" 2>&1 || guest_fail "nvwa check failed: $(cat "$NVWA_RESULTS/check.txt")"

	# --- a: kill -9 while criu dumps the second target ---------------------------------------------
	c1=$(cat "$W/c1.pid") c2=$(cat "$W/c2.pid")
	update_bg a-update.txt
	wait_paused before-dump-2 300 a-update.txt
	[[ $(state_of "$c1") == T ]] || guest_fail "a: c1 is not frozen before the second dump"
	release before-dump-2
	guest_wait 60 pgrep -f -- "--tree $c2( |$)" >/dev/null || guest_fail "a: no criu dump of c2 seen"
	t0=$(now_ms)
	kill_daemon
	wait_client
	guest_result a_client_rc "$rc"
	guest_result a_client "$(tail -2 "$NVWA_RESULTS/a-update.txt" | tr '\n' ' ')"
	((rc == 4)) || guest_fail "a: nvwa update exited $rc: $(cat "$NVWA_RESULTS/a-update.txt")"
	grep -q "died during checkpointing of update" "$NVWA_RESULTS/a-update.txt" || guest_fail "a: the client does not say the daemon died during checkpointing"
	grep -q "systemd restarts it" "$NVWA_RESULTS/a-update.txt" || guest_fail "a: the client does not say systemd restarts the daemon"
	wait_settled rolled-back
	guest_wait 60 all_counting c1 c2 c3 || guest_fail "a: the counters do not all run again: c1 $(state_of "$c1") c2 $(state_of "$c2")"
	guest_result a_resumed_ms $(($(now_ms) - t0))
	guest_result a_restarts "$(restarts)"
	(($(restarts) == 1)) || guest_fail "a: nvwa.service restarted $(restarts) times"
	[[ $(cat /sys/kernel/kexec_loaded) == 0 ]] || guest_fail "a: a kernel is still loaded"
	assert_no_dropins
	for c in c1 c2 c3; do continuous $c; done
	redis_back "before-1"
	guest_result a_recovery "$(mf 'm["recoveries"][-1]["message"]')"
	[[ $(mf 'm["recoveries"][-1]["action"]') == rolled-back ]] || guest_fail "a: no rolled-back recovery recorded"
	nvwa status >"$NVWA_RESULTS/a-status.txt" 2>&1 || true
	grep -q "interrupted: the nvwa daemon stopped during checkpointing" "$NVWA_RESULTS/a-status.txt" || guest_fail "a: nvwa status does not show the interruption: $(cat "$NVWA_RESULTS/a-status.txt")"
	guest_mark a-passed

	# --- a2: systemctl stop nvwa during the checkpoint: the update rolls back before the daemon exits,
	# so no target stays frozen and no kernel stays loaded for a later `systemctl reboot` to kexec into
	rm -f "$F"/*
	update_bg a2-update.txt
	wait_paused before-dump-2 300 a2-update.txt
	[[ $(cat /sys/kernel/kexec_loaded) == 1 ]] || guest_fail "a2: the new kernel is not loaded during the checkpoint"
	systemctl stop --no-block nvwa.service
	guest_wait 60 sh -c 'journalctl -b -u nvwa.service -o cat | grep -q "rolling the update back before exiting"' || guest_fail "a2: the daemon did not take the stop as a rollback"
	release before-dump-2
	guest_wait 120 sh -c '! systemctl is-active -q nvwa.service' || guest_fail "a2: nvwa.service is still $(systemctl is-active nvwa.service)"
	wait_client
	guest_result a2_client_rc "$rc"
	guest_result a2_client "$(tail -2 "$NVWA_RESULTS/a2-update.txt" | tr '\n' ' ')"
	((rc == 1)) || guest_fail "a2: nvwa update exited $rc: $(cat "$NVWA_RESULTS/a2-update.txt")"
	grep -q "nvwa.service was stopped (SIGTERM) before the update's commit" "$NVWA_RESULTS/a2-update.txt" || guest_fail "a2: the client does not say the stop rolled the update back"
	[[ $(mf 'm["phase"]') == rolled-back ]] || guest_fail "a2: the manifest says $(mf 'm["phase"]')"
	[[ $(cat /sys/kernel/kexec_loaded) == 0 ]] || guest_fail "a2: a kernel is still loaded after the stop"
	guest_wait 60 all_counting c1 c2 c3 || guest_fail "a2: the counters do not all run again"
	assert_no_dropins
	redis_back "before-1"
	systemctl start nvwa.service
	guest_mark a2-passed

	# --- b: kill -9 just after the commit, and again during the restore that follows -----------------
	# (a2's manual start reset systemd's NRestarts: count b's restarts from here)
	r0=$(restarts)
	rm -f "$F"/*
	update_bg b-update.txt
	wait_paused before-dump-2 300 b-update.txt
	release before-dump-2
	wait_paused after-kill 300 b-update.txt
	for c in c1 c2 c3; do ! is_counter "$(cat "$W/$c.pid")" || guest_fail "b: $c still runs after the commit's kill"; done
	t0=$(now_ms)
	kill_daemon
	wait_client
	guest_result b_client "$(tail -2 "$NVWA_RESULTS/b-update.txt" | tr '\n' ' ')"
	((rc == 4)) || guest_fail "b: nvwa update exited $rc: $(cat "$NVWA_RESULTS/b-update.txt")"
	grep -q "died during committed of update" "$NVWA_RESULTS/b-update.txt" || guest_fail "b: the client does not say the daemon died after the commit"
	# The restarted daemon restores the processes, then stops at after-pids-restored: kill it there.
	wait_paused after-pids-restored 300
	declare -A st
	for c in c1 c2 c3; do
		pid=$(cat "$W/$c.pid")
		is_counter "$pid" || guest_fail "b: $c (pid $pid) was not restored by the restarted daemon"
		st[$c]=$(starttime "$pid")
	done
	kill_daemon
	wait_settled restored
	guest_wait 60 all_counting c1 c2 c3 || guest_fail "b: the counters do not all run"
	guest_result b_restored_ms $(($(now_ms) - t0))
	for c in c1 c2 c3; do
		[[ $(starttime "$(cat "$W/$c.pid")") == "${st[$c]}" ]] || guest_fail "b: $c was restored a second time"
		continuous $c
	done
	redis_back "before-1"
	(($(restarts) - r0 == 2)) || guest_fail "b: nvwa.service restarted $(($(restarts) - r0)) times, expected 2"
	[[ $(cat /sys/kernel/kexec_loaded) == 0 ]] || guest_fail "b: a kernel is still loaded"
	assert_no_dropins
	guest_result b_recovery "$(mf 'm["recoveries"][-1]["message"]')"
	[[ $(mf '[r["action"] for r in m["recoveries"]]') == "restored restored" ]] || guest_fail "b: recoveries: $(mf 'm["recoveries"]')"
	guest_mark b-passed

	# --- c: power cut during the checkpoint -----------------------------------------------------------
	rm -f "$F"/*
	for c in c1 c2 c3; do cat "$W/$c.pid" >"$S/c-$c.pid"; done
	cat "$W/redis.pid" >"$S/c-redis.pid"
	update_bg c-update.txt
	wait_paused before-dump-2 300 c-update.txt
	power_cut c
	;;
2)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 2 runs $(uname -r)"
	wait_settled rolled-back
	guest_result c_error "$(mf 'm["error"]["message"]')"
	for c in c1 c2 c3; do
		pid=$(cat "$S/c-$c.pid")
		[[ $(mf "t['$pid']['phase']") == lost ]] || guest_fail "c: target $pid ($c) is $(mf "t['$pid']['phase']"), not lost"
		mf 'm["error"]["message"]' | grep -q "$pid" || guest_fail "c: the error does not name $pid"
	done
	[[ $(mf "t['redis-test.service']['phase']") == lost ]] || guest_fail "c: redis-test is not reported lost"
	assert_no_dropins
	# Enabled, it was started by systemd at boot as after any power loss (a new process).
	guest_wait 60 redis-cli ping >/dev/null || guest_fail "c: the enabled redis-test did not start: $(systemctl status --no-pager redis-test 2>&1 | tail -5)"
	[[ $(systemctl show -p MainPID --value redis-test.service) != "$(cat "$S/c-redis.pid")" ]] || guest_fail "c: redis-test has its old pid?"
	nvwa status >"$NVWA_RESULTS/c-status.txt" 2>&1 || true
	grep -q "lost" "$NVWA_RESULTS/c-status.txt" || guest_fail "c: nvwa status does not say lost"
	guest_mark c-passed

	# --- d: power cut after the commit (the trees are killed), before the jump ------------------------
	arm_faults before-dump-2,after-kill # not after-pids-restored: boot 3's restore must run through
	start_redis
	start_counters
	config
	for c in c1 c2 c3; do cat "$W/$c.pid" >"$S/d-$c.pid"; done
	sync
	update_bg d-update.txt
	wait_paused before-dump-2 300 d-update.txt
	release before-dump-2
	wait_paused after-kill 300 d-update.txt
	for c in c1 c2 c3; do tail -1 "$W/$c.log" >"$S/d-$c.last"; done
	power_cut d
	;;
3)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 3 runs $(uname -r)"
	wait_settled restored restore-failed
	[[ $(mf 'm["phase"]') == restored ]] || guest_fail "d: the update is $(mf 'm["phase"]'): $(nvwa status 2>&1)"
	guest_wait 60 all_counting c1 c2 c3 || guest_fail "d: the counters do not all run"
	for c in c1 c2 c3; do
		[[ $(cat "$W/$c.pid") == "$(cat "$S/d-$c.pid")" ]] || guest_fail "d: $c pid changed"
		resumed_after_cut $c "$(cat "$S/d-$c.last")"
	done
	redis_back "before-2"
	assert_no_dropins
	guest_result d_recovery "$(mf 'm["recoveries"][-1]["message"]')"
	mf 'm["recoveries"][-1]["message"]' | grep -q "without the jump" || guest_fail "d: the recovery is not recorded: $(mf 'm.get("recoveries")')"
	guest_mark d-passed

	# --- e-h: the jump, c1's images damaged, c2's pid taken at the next boot ----------------------------
	systemctl disable -q redis-test.service # only the daemon starts it: the restore order is then nvwa's
	c2=$(cat "$W/c2.pid")
	cat >/etc/systemd/system/pid-thief.service <<UNIT
[Unit]
Description=takes pid $c2 at boot before nvwa restores (the fault scenario's pid clash)
DefaultDependencies=no
Before=nvwa.service sysinit.target
[Service]
Type=simple
ExecStart=/bin/sh -c 'echo $((c2 - 1)) >/proc/sys/kernel/ns_last_pid; sleep infinity & wait'
[Install]
WantedBy=sysinit.target
UNIT
	systemctl enable -q pid-thief.service
	# after-pids-restored only on the new kernel: boot 5 (after the power cut, the old kernel again)
	# reads the same unit file and must restore without stopping.
	arm_faults "after-kill,after-pids-restored@$KVER_NEW"
	for c in c1 c2 c3; do cat "$W/$c.pid" >"$S/e-$c.pid"; done
	cat "$W/redis.pid" >"$S/e-redis.pid"
	update_bg e-update.txt
	wait_paused after-kill 300 e-update.txt
	c1=$(cat "$W/c1.pid")
	: >"/var/nvwa/running/$c1/core-$c1.img"
	guest_mark images-damaged
	sync -f "$NVWA_RESULTS/marks.txt"
	release after-kill
	wait_client
	guest_fail "e: nvwa update returned ($rc) instead of jumping: $(cat "$NVWA_RESULTS/e-update.txt")"
	;;
4)
	guest_mark after-jump
	[[ $(uname -r) == "$KVER_NEW" ]] || guest_fail "boot 4 runs $(uname -r), expected $KVER_NEW"
	guest_result kernel_after "$(uname -r)"
	c1=$(cat "$S/e-c1.pid") c2=$(cat "$S/e-c2.pid") c3=$(cat "$S/e-c3.pid")
	wait_paused after-pids-restored 300
	is_counter "$c3" || guest_fail "g: c3 was not restored after the jump"
	echo "$(starttime "$c3")" >"$S/e-c3.start"
	[[ $(mf "t['$c3']['phase']") == restored ]] || guest_fail "g: c3 is $(mf "t['$c3']['phase']")"
	[[ $(mf "t['$c1']['phase']") == restore-failed ]] || guest_fail "g: c1 (damaged images) is $(mf "t['$c1']['phase']")"
	guest_result g_c1_error "$(mf "t['$c1']['error']['message']")"
	[[ $(mf "t['$c2']['phase']") == skipped ]] || guest_fail "h: c2 (pid taken) is $(mf "t['$c2']['phase']")"
	guest_result h_c2_error "$(mf "t['$c2']['error']['message']")"
	mf "t['$c2']['error']['message']" | grep -q "pid $c2 of python3 (pid $c2) is taken by sleep" || guest_fail "h: c2's error does not name the holder: $(mf "t['$c2']['error']")"
	mf "t['$c3']['timings']['restore']['start']" >"$S/e-c3.restore"

	# --- f: kill -9 during the boot-side restore, re-armed so that its restart stops there again -----
	kill_daemon
	rm -f "$F/after-pids-restored.paused"
	wait_paused after-pids-restored 300
	[[ $(starttime "$c3") == "$(cat "$S/e-c3.start")" ]] || guest_fail "f: c3 was restored a second time"
	[[ $(mf "t['$c3']['timings']['restore']['start']") == "$(cat "$S/e-c3.restore")" ]] || guest_fail "f: c3's restore was run again"
	(($(restarts) == 1)) || guest_fail "f: nvwa.service restarted $(restarts) times"
	guest_mark f-passed

	# --- e: power cut during the boot-side restore (c3 back, redis not yet) --------------------------
	[[ $(mf "t['redis-test.service']['phase']") != restored ]] || guest_fail "e: redis-test was restored before the cut"
	power_cut e
	;;
5)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 5 runs $(uname -r)"
	c1=$(cat "$S/e-c1.pid") c2=$(cat "$S/e-c2.pid") c3=$(cat "$S/e-c3.pid")
	wait_settled restore-failed restored
	nvwa status >"$NVWA_RESULTS/e-status.txt" 2>&1 || true
	nvwa status --json >"$NVWA_RESULTS/status.json" 2>&1 || true
	guest_result phase "$(mf 'm["phase"]')"
	[[ $(mf 'm["phase"]') == restore-failed ]] || guest_fail "e: the update is $(mf 'm["phase"]')"
	# The service, still pending at the cut, comes back on this boot under its unit.
	echo "$(cat "$S/e-redis.pid")" >"$W/redis.pid"
	redis_back "before-2"
	[[ $(mf "t['redis-test.service']['phase']") == restored ]] || guest_fail "e: redis-test is $(mf "t['redis-test.service']['phase']")"
	# c3 was restored on boot 4 and died with the power: never restored twice.
	[[ $(mf "t['$c3']['timings']['restore']['start']") == "$(cat "$S/e-c3.restore")" ]] || guest_fail "e: c3 was restored again"
	! is_counter "$c3" || guest_fail "e: c3 runs again: restored twice"
	[[ $(mf "t['$c1']['phase']") == restore-failed ]] || guest_fail "g: c1 is $(mf "t['$c1']['phase']")"
	grep -q "$c1" "$NVWA_RESULTS/e-status.txt" && grep -q "restore.log" "$NVWA_RESULTS/e-status.txt" || guest_fail "g: nvwa status does not name c1 with its restore.log: $(cat "$NVWA_RESULTS/e-status.txt")"
	[[ $(mf "t['$c2']['phase']") == skipped ]] || guest_fail "h: c2 is $(mf "t['$c2']['phase']")"
	grep -q "taken by sleep" "$NVWA_RESULTS/e-status.txt" || guest_fail "h: nvwa status does not explain c2's clash"
	assert_no_dropins
	guest_result e_recovery "$(mf 'm["recoveries"][-1]["message"]')"
	guest_mark scenario-passed
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
