#!/bin/bash
# Scenario "rollback": three targets, the second of which criu cannot dump (a perf_event fd).
# `nvwa update` must fail naming it, and afterwards everything runs on the old kernel as before:
# the first target (already frozen when the second failed) counts on, Redis keeps its pid and
# keys, no kernel is loaded, no drop-in is left.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh

[[ $1 == 1 ]] || guest_fail "the rollback scenario must not leave boot 1 (boot $1)"
[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "runs $(uname -r), expected $KVER_OLD"
start_workloads
high_pids 32000
start_detached blocker python3 "$T/blocker.py" "$W/blocker.log"
guest_wait 10 test -s "$W/blocker.log" || guest_fail "blocker did not start: $(cat "$W/blocker.out")"
blocker=$(cat "$W/blocker.pid")
write_config "$(cat "$W/counter.pid")" "$blocker"
redis_pid=$(cat "$W/redis.pid")

guest_mark update-start
set +e
nvwa update "$KVER_NEW" >"$NVWA_RESULTS/update.txt" 2>&1
rc=$?
set -e
guest_mark update-returned
guest_result update_rc "$rc"
guest_result update_error "$(tail -1 "$NVWA_RESULTS/update.txt")"
((rc == 1)) || guest_fail "nvwa update exited $rc, expected 1 (rolled back): $(cat "$NVWA_RESULTS/update.txt")"
grep -q "$blocker" "$NVWA_RESULTS/update.txt" || guest_fail "the error does not name the undumpable pid $blocker"

[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "the kernel changed"
[[ $(cat /sys/kernel/kexec_loaded) == 0 ]] || guest_fail "a kernel is still loaded for kexec"
assert_no_dropins

# Every target runs again: the counter (frozen before the failure) and the blocker count on.
for w in counter blocker; do
	before=$(wc -l <"$W/$w.log")
	sleep 1
	after=$(wc -l <"$W/$w.log")
	((after > before)) || guest_fail "$w is not running after the rollback"
done
assert_counter_continuous
[[ $(systemctl is-active redis-test.service) == active ]] || guest_fail "redis-test is not active"
[[ $(systemctl show -p MainPID --value redis-test.service) == "$redis_pid" ]] || guest_fail "redis-test's MainPID changed"
(($(redis-cli DBSIZE) >= 100000)) || guest_fail "redis lost keys"
kill -USR1 "$(cat "$W/tcp.pid")"
guest_wait 10 grep -q "INCR -> 2 " "$W/tcp.log" || guest_fail "tcp client does not work after the rollback"

nvwa status --json >"$NVWA_RESULTS/status.json" 2>&1 || true
phase=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("phase",""))' "$NVWA_RESULTS/status.json")
guest_result phase "$phase"
[[ $phase == rolled-back ]] || guest_fail "nvwa status says '$phase', not rolled-back"
cp "$W"/*.log "$NVWA_RESULTS/" 2>/dev/null || true
guest_mark scenario-passed
exit 0
