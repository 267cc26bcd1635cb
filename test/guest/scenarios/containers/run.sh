#!/bin/bash
# Scenario "containers" (issue #15): podman containers kept across a real kernel upgrade.
# Boot 1 (old kernel): podman's API socket enabled as Debian ships it; an image imported locally
# (no registry): an almost empty root whose /usr is the guest's, bind-mounted read-only, so the
# workloads are the guest's own python3 scripts. Containers, with runc:
#   counter   counter.py on podman's default bridge network, its count only in memory, appended
#             to a bind-mounted file
#   redis     redis-server on the host's network, its keys only in memory, serving a peer on the
#             host (tcp-peer.ts) over one TCP connection
#   web       counter.py again, run by container-web.service as `podman generate systemd` writes
#             it (Type=forking, PIDFile= its conmon.pid, ExecStart=podman start)
#   unixpeer  holds a connection to a unix socket listening outside it, which criu cannot
#             checkpoint without --ext-unix-sk: its checkpoint fails for real
#   ttyc      started with -t: preflight refuses it by name
# plus a bare process (pids:). Three updates:
#   1. [counter, ttyc]: refused in preflight (exit 3), nothing changed
#   2. [counter, redis, web, unixpeer]: the first three are checkpointed (stopped), unixpeer's
#      checkpoint fails; the update fails naming unixpeer, the three are restored on the old
#      kernel (counter counts on, redis keeps its keys and the peer's connection, web is back
#      under its unit with conmon as MainPID), the bare process resumed, the kernel unloaded
#   3. [counter, redis, web] with restore_net: the orderly jump to the new kernel
# Boot 2 (new kernel): all run again under podman, same ids; the counts continued (never reset);
# redis has its keys and the peer's connection, which carries the peer's second INCR; web's unit
# is active with the restored conmon as MainPID, in the unit's cgroup; podman's dump.log and
# restore.log under criu_dir, no drop-in left.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1
C=$W/containers

# running NAME: podman says the container runs (prints State.Running and the host pid of its init).
state_of() { podman inspect --format '{{.State.Status}} {{.State.Pid}} {{.Id}}' "$1"; }
# gaps FILE: the counter's values must be 1, 2, 3, ... with nothing missing and no restart at 1.
gaps() { python3 -c 'import sys
v = [int(x) for x in open(sys.argv[1]) if x.strip()]
bad = [(a, b) for a, b in zip(v, v[1:]) if b != a + 1]
print(f"{len(v)} values, last {v[-1] if v else None}, breaks {bad[:3]}")
sys.exit(1 if bad or not v or v[0] != 1 else 0)' "$1"; }
lines() { wc -l <"$1"; }
# web_under_unit: "active conmon-is-mainpid in-unit-cgroup" when container-web.service follows the
# container's conmon as podman names it and conmon is in the unit's cgroup.
web_under_unit() {
	local state main conmon cg
	state=$(systemctl show -p ActiveState --value container-web.service)
	main=$(systemctl show -p MainPID --value container-web.service)
	conmon=$(podman inspect --format '{{.State.ConmonPid}}' web)
	cg=$(cat "/proc/$conmon/cgroup" 2>/dev/null)
	echo "$state $([[ $main == "$conmon" ]] && echo conmon-is-mainpid || echo "mainpid=$main/conmon=$conmon") $([[ $cg == */container-web.service ]] && echo in-unit-cgroup || echo "cgroup=$cg")"
}
write_yaml() { # write_yaml PIDS CONTAINERS
	cat >/etc/nvwa/nvwa-restore.yaml <<YAML
pids: $1
services: []
containers: $2
restore_net: true
enable_quick_kexec: false
enable_pin_memory: false
enable_debug_mode: false
YAML
	chmod 0640 /etc/nvwa/nvwa-restore.yaml
}

case $boot in
1)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result kernel_before "$(uname -r)"
	mkdir -p "$W" "$C/counter" "$C/sock" "$C/root"
	eth0_up
	install_nvwa
	write_yaml "[]" "[]"
	start_nvwa
	systemctl enable -q --now podman.socket podman-restart.service || guest_fail "podman.socket did not start"
	guest_mark podman-up
	# The image: directories only, /usr to be bind-mounted (merged-/usr links as on Debian).
	(cd "$C/root" && mkdir -p usr etc tmp proc sys dev state sock && ln -sfn usr/bin bin && ln -sfn usr/lib lib && ln -sfn usr/lib64 lib64 && ln -sfn usr/sbin sbin)
	tar -C "$C/root" -cf - . | podman import --quiet - localhost/nvwa-base:latest >/dev/null || guest_fail "podman import failed"
	guest_mark image-imported
	# As from an operator's shell: this script runs in a unit (nvwa-guest-runner.service), and with
	# INVOCATION_ID set podman leaves conmon in the calling unit's cgroup, which nvwa refuses (a
	# container run by a unit), rightly.
	run=(env -u INVOCATION_ID podman run -d --runtime runc -v /usr:/usr:ro)
	high_pids 40000
	"${run[@]}" --name counter -v "$C/counter:/state" localhost/nvwa-base python3 "$T/counter.py" /state/counter.log >/dev/null ||
		guest_fail "podman run counter failed"
	# web: run by its unit, as podman generate systemd writes one (the unit starts podman, so conmon
	# stays in the unit's cgroup and is its MainPID).
	mkdir -p "$C/web"
	podman create --runtime runc -v /usr:/usr:ro -v "$C/web:/state" --name web localhost/nvwa-base python3 "$T/counter.py" /state/counter.log >/dev/null ||
		guest_fail "podman create web failed"
	(cd /etc/systemd/system && podman generate systemd --name web --files >/dev/null) || guest_fail "podman generate systemd failed"
	cp /etc/systemd/system/container-web.service "$NVWA_RESULTS/container-web.service"
	systemctl daemon-reload
	high_pids 40300
	systemctl enable -q --now container-web.service || guest_fail "container-web.service did not start: $(systemctl status --no-pager container-web 2>&1 | tail -5)"
	guest_wait 20 test -s "$C/web/counter.log" || guest_fail "web does not count"
	high_pids 40500
	"${run[@]}" --name redis --network host localhost/nvwa-base redis-server --port 6379 --save '' --appendonly no --protected-mode no --enable-debug-command local >/dev/null ||
		guest_fail "podman run redis failed"
	guest_wait 30 redis-cli ping >/dev/null || guest_fail "redis in its container does not answer: $(podman logs redis 2>&1 | tail -3)"
	redis-cli DEBUG POPULATE 5000 key 16 >/dev/null
	redis-cli SET marker "before-$(uname -r)" >/dev/null
	host_peer_first
	# The peer outside: a listener that keeps every connection it accepts.
	start_detached unixpeer-host python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); held = []
while True: held.append(s.accept())' "$C/sock/peer.sock"
	guest_wait 10 test -S "$C/sock/peer.sock" || guest_fail "the unix listener did not start"
	"${run[@]}" --name unixpeer -v "$C/sock:/sock" localhost/nvwa-base python3 -c 'import socket, time
c = socket.socket(socket.AF_UNIX); c.connect("/sock/peer.sock")
while True: time.sleep(1)' >/dev/null || guest_fail "podman run unixpeer failed"
	"${run[@]}" -t --name ttyc localhost/nvwa-base python3 -c 'import time
while True: time.sleep(1)' >/dev/null || guest_fail "podman run -t ttyc failed"
	high_pids 41000
	start_detached counter python3 "$T/counter.py" "$W/counter.log"
	guest_wait 20 test -s "$C/counter/counter.log" || guest_fail "the counter container does not count: $(podman logs counter 2>&1 | tail -3)"
	guest_wait 10 test -s "$W/counter.log" || guest_fail "the bare counter does not count"
	read -r st cpid cid < <(state_of counter)
	[[ $st == running ]] || guest_fail "counter is $st"
	echo "$cid" >"$W/counter.id"
	guest_result container_id_before "$cid"
	guest_result container_pid_before "$cpid"
	pid=$(cat "$W/counter.pid")

	# 1. A container with a terminal: refused by name before anything is frozen.
	write_yaml "[$pid]" "[counter, ttyc]"
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check-refused.txt" 2>&1 && guest_fail "nvwa check passed with a -t container"
	rc=0
	nvwa update "$KVER_NEW" >"$NVWA_RESULTS/update-refused.txt" 2>&1 || rc=$?
	guest_result refused_rc "$rc"
	guest_result refused_message "$(tail -1 "$NVWA_RESULTS/update-refused.txt")"
	[[ $(state_of counter) == "running $cpid $cid" ]] || guest_fail "after the refused update counter is $(state_of counter), not running $cpid"
	[[ $(cat /sys/kernel/kexec_loaded) == 0 ]] || guest_fail "a kernel is loaded after the refused update"

	# 1b. The daemon killed (kill -9) after web's checkpoint, counter's not begun: systemd restarts
	#     it, and its recovery gives web back through its unit (READY first: the unit's start is
	#     ordered after nvwa.service) and resumes the bare process.
	write_yaml "[$pid]" "[web, counter]"
	mkdir -p /etc/systemd/system/nvwa.service.d
	printf '[Service]\nEnvironment=NVWA_FAULT_PAUSE=after-container-1\n' >/etc/systemd/system/nvwa.service.d/test-faults.conf
	systemctl daemon-reload
	systemctl restart nvwa.service
	rm -rf /run/nvwa/faults
	before=$(lines "$C/web/counter.log")
	rc=0
	(nvwa update "$KVER_NEW" >"$NVWA_RESULTS/update-killed.txt" 2>&1 || echo $? >"$W/killed.rc") &
	client=$!
	guest_wait 300 test -e /run/nvwa/faults/after-container-1.paused || guest_fail "the daemon never paused after web's checkpoint: $(tail -3 "$NVWA_RESULTS/update-killed.txt")"
	guest_result killed_web_state "$(state_of web | cut -d' ' -f1)"
	systemctl kill -s KILL nvwa.service
	wait "$client" # only the client: the workloads are this shell's background jobs too
	guest_result killed_client_rc "$(cat "$W/killed.rc" 2>/dev/null || echo 0)"
	rm -f /etc/systemd/system/nvwa.service.d/test-faults.conf
	systemctl daemon-reload
	settled() { [[ $(nvwa status --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("phase"))') == rolled-back ]]; }
	guest_wait 300 settled || guest_fail "the restarted daemon did not roll the update back: $(nvwa status 2>&1 | head -20)"
	nvwa status >"$NVWA_RESULTS/status-killed.txt" 2>&1 || true
	guest_wait 60 test "$(web_under_unit)" = "active conmon-is-mainpid in-unit-cgroup" || true
	guest_result killed_web "$(web_under_unit)"
	guest_result killed_counter_state "$(state_of counter | cut -d' ' -f1)"
	[[ $(awk '{print $3}' "/proc/$pid/stat") != T ]] || guest_fail "the bare counter stays stopped after the recovery"
	sleep 2
	(($(lines "$C/web/counter.log") > before)) || guest_fail "web does not count after the recovery"
	gaps "$C/web/counter.log" >"$W/gaps-web-killed" || guest_fail "web restarted or skipped in the recovery: $(cat "$W/gaps-web-killed")"
	guest_result killed_recovery "$(nvwa status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest"]["recoveries"][-1]["message"])')"
	guest_mark killed-checked

	# 2. unixpeer's checkpoint fails after the others' succeeded: everything back as it was.
	write_yaml "[$pid]" "[counter, redis, web, unixpeer]"
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check-unixpeer.txt" 2>&1 || guest_fail "nvwa check refused: $(grep -i fail "$NVWA_RESULTS/check-unixpeer.txt" | head -3)"
	before=$(lines "$C/counter/counter.log")
	rc=0
	nvwa update "$KVER_NEW" >"$NVWA_RESULTS/update-failed.txt" 2>&1 || rc=$?
	guest_result failed_rc "$rc"
	guest_result failed_message "$(tail -1 "$NVWA_RESULTS/update-failed.txt")"
	nvwa status --json >"$NVWA_RESULTS/status-failed.json" 2>&1 || true
	nvwa status >"$NVWA_RESULTS/status-failed.txt" 2>&1 || true
	cp /var/nvwa/running/containers/unixpeer/dump.log "$NVWA_RESULTS/podman-unixpeer-dump.log" 2>/dev/null || true
	cp /var/nvwa/running/containers/counter/restore.log "$NVWA_RESULTS/podman-counter-rollback-restore.log" 2>/dev/null || true
	guest_result unixpeer_dump_log "$(test -s /var/nvwa/running/containers/unixpeer/dump.log && echo kept || echo missing)"
	read -r st _ cid2 < <(state_of counter)
	guest_result rollback_counter_state "$st"
	[[ $st == running && $cid2 == "$cid" ]] || guest_fail "after the failed update counter is $st ($cid2)"
	guest_result rollback_unixpeer_state "$(state_of unixpeer | cut -d' ' -f1)"
	guest_result rollback_redis_state "$(state_of redis | cut -d' ' -f1)"
	guest_result rollback_redis_keys "$(redis-cli DBSIZE)"
	redis-cli CLIENT LIST >"$NVWA_RESULTS/redis-clients-rollback.txt"
	grep -q "$(cat "$W/peer.addr") " "$NVWA_RESULTS/redis-clients-rollback.txt" || guest_fail "redis lost the peer's connection in the rollback: $(cat "$NVWA_RESULTS/redis-clients-rollback.txt")"
	guest_result rollback_redis_peer kept
	guest_result rollback_web "$(web_under_unit)"
	gaps "$C/web/counter.log" >"$W/gaps-web-rollback" || guest_fail "web restarted or skipped in the rollback: $(cat "$W/gaps-web-rollback")"
	kill -0 "$pid" || guest_fail "the bare counter is gone after the rollback"
	[[ $(awk '{print $3}' "/proc/$pid/stat") != T ]] || guest_fail "the bare counter stays stopped after the rollback"
	guest_result rollback_kexec_loaded "$(cat /sys/kernel/kexec_loaded)"
	sleep 2
	after=$(lines "$C/counter/counter.log")
	((after > before)) || guest_fail "counter does not count after the rollback ($before → $after lines)"
	gaps "$C/counter/counter.log" >"$W/gaps-rollback" || guest_fail "counter restarted or skipped in the rollback: $(cat "$W/gaps-rollback")"
	guest_result rollback_counter "$(cat "$W/gaps-rollback")"
	podman rm -f unixpeer ttyc >/dev/null
	guest_mark rollback-checked

	# 3. The jump.
	write_yaml "[$pid]" "[counter, redis, web]"
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check.txt" 2>&1 || guest_fail "nvwa check failed: $(grep -i fail "$NVWA_RESULTS/check.txt" | head -3)"
	lines "$C/counter/counter.log" >"$W/lines-before-jump"
	guest_update "$KVER_NEW"
	;;
2)
	ON_ARRIVED=save_criu_logs guest_arrived "$KVER_NEW"
	fails=()
	read -r st cpid cid < <(state_of counter) || true
	guest_result container_state "$st"
	guest_result container_pid_after "$cpid"
	guest_result container_id_after "$cid"
	[[ $st == running ]] || fails+=("counter is $st")
	[[ $cid == "$(cat "$W/counter.id")" ]] || fails+=("counter's id is $cid, before $(cat "$W/counter.id")")
	sleep 2
	n0=$(cat "$W/lines-before-jump") n1=$(lines "$C/counter/counter.log")
	((n1 > n0)) || fails+=("counter does not count after the jump ($n0 → $n1 lines)")
	g=$(gaps "$C/counter/counter.log") || fails+=("counter restarted or skipped: $g")
	guest_result container_counter "$g"
	pid=$(cat "$W/counter.pid")
	kill -0 "$pid" 2>/dev/null || fails+=("the bare counter $pid is not running")
	guest_result web "$(web_under_unit)"
	gw=$(gaps "$C/web/counter.log") || fails+=("web restarted or skipped: $gw")
	guest_result web_counter "$gw"
	guest_result redis_state "$(state_of redis | cut -d' ' -f1)"
	guest_result redis_marker "$(redis-cli GET marker)"
	guest_result redis_keys "$(redis-cli DBSIZE)"
	host_peer_kept
	for n in counter redis web; do
		for l in dump.log restore.log; do
			f=/var/nvwa/running/containers/$n/$l
			if [[ -s $f ]]; then cp "$f" "$NVWA_RESULTS/podman-$n-$l"; else fails+=("podman's $l of $n is not in $f"); fi
		done
	done
	guest_result checkpoint_left "$(test -e "$(podman inspect --format '{{.StaticDir}}' counter)/checkpoint" && echo yes || echo no)"
	((${#fails[@]} == 0)) || guest_fail "$(printf '%s; ' "${fails[@]}")"
	assert_no_dropins
	# nvwa init: the saved state goes, podman's logs under criu_dir with it; the containers run on.
	nvwa init >"$NVWA_RESULTS/init.txt" 2>&1 || guest_fail "nvwa init failed: $(cat "$NVWA_RESULTS/init.txt")"
	[[ ! -e /var/nvwa/running/containers ]] || guest_fail "nvwa init left /var/nvwa/running/containers: $(cat "$NVWA_RESULTS/init.txt")"
	guest_result after_init "$(state_of counter | cut -d' ' -f1) $(state_of web | cut -d' ' -f1) $(state_of redis | cut -d' ' -f1)"
	guest_mark scenario-passed
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
