#!/bin/bash
# Scenario "predump": enable_pre_dump on x86_64 (soft-dirty). A process holds 512 MiB whose blocks
# it keeps rewriting, 4 MiB a second (its memory changes while it is pre-dumped). Boot 1: `nvwa
# check` says pre-dump works here; two rehearsals (checkpoint and resume, no jump) of the same
# process measure its freeze with a full dump and with pre-dump rounds; then `nvwa update --fast`
# with pre-dump. Boot 2: the process is back at its pid and re-reads every byte of its memory
# against what it wrote (a lost, zeroed or stale page fails), the manifest records the rounds and
# the final dump's parent, and no image (round or final) is left. Then enable_lazy_restore, back
# to the old kernel, with a second process of 256 MiB. Boot 3: the first ran again before its
# memory was back and re-reads every byte of it; the second's lazy-pages daemon was killed right
# after its restore (NVWA_FAULT_KILL on nvwa.service), so it is killed and reported lost by name.
# Then both settings together, to the new kernel again. Boot 4: the first process re-reads every
# byte after pre-dump rounds, a final dump chained to them and a lazy restore.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1
# The benchmark (test/bench/guest.ts, NVWA_BENCH_PREDUMP) sets another size and rewrite rate in
# /etc/nvwa-predump.env, with REHEARSE_ONLY=1: then only boot 1's rehearsals run.
MIB=512 DIRTY=4 REHEARSE_ONLY=0
# shellcheck source=/dev/null
[[ ! -f /etc/nvwa-predump.env ]] || . /etc/nvwa-predump.env

# tgt NAME EXPR: EXPR about the target NAME (as t) in the saved `nvwa status --json`.
tgt() {
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
t = [x for x in j["manifest"]["targets"] if x["name"] == sys.argv[2]][0]
v = eval(sys.argv[3], {"t": t})
print("" if v is None else v)' "$NVWA_RESULTS/status.json" "$1" "$2" 2>/dev/null || true
}

# verify_memhog PID KEY WHEN: memhog re-reads every byte of its memory against what it wrote (a
# lost, zeroed or stale page fails); its verdict becomes result KEY.
verify_memhog() {
	local before
	before=$(grep -c '^verify' "$W/memhog.log" || true)
	kill -USR1 "$1"
	guest_wait $((60 + MIB / 8)) sh -c "[ \$(grep -c '^verify' '$W/memhog.log') -gt $before ]" || guest_fail "memhog did not verify $3"
	guest_result "$2" "$(grep '^verify' "$W/memhog.log" | tail -1)"
	[[ $(grep '^verify' "$W/memhog.log" | tail -1) == "verify ok"* ]] || guest_fail "memhog's memory is wrong $3: $(tail -1 "$W/memhog.log")"
}

# rehearsal_row FILE: the rehearsal row's detail from `nvwa check --rehearse --json`.
rehearsal_row() {
	python3 -c 'import json,sys
r = [c for c in json.load(open(sys.argv[1]))["checks"] if c["id"].startswith("rehearse.")]
print(r[0]["status"], r[0]["detail"] if r else "none")' "$1"
}

case $boot in
1)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	mkdir -p "$W"
	rm -f "$W"/*.log
	# The benchmark's larger sizes come with a larger disk (run-guest.sh --disk-grow): the filesystem follows.
	if [[ -n ${GROW_FS:-} ]]; then resize2fs "$(findmnt -no SOURCE /)" >"$NVWA_RESULTS/resize2fs.txt" 2>&1 || guest_fail "resize2fs failed: $(cat "$NVWA_RESULTS/resize2fs.txt")"; fi
	high_pids 31000
	start_detached memhog python3 "$T/memhog.py" "$MIB" "$W/memhog.log" "$DIRTY"
	guest_wait $((180 + MIB / 4)) grep -q '^ready' "$W/memhog.log" || guest_fail "memhog did not fill its memory: $(cat "$W/memhog.out")"
	pid=$(cat "$W/memhog.pid")
	write_restore_config "[$pid]" "[]"
	echo "enable_pre_dump: false" >>/etc/nvwa/nvwa-restore.yaml

	rc=0
	nvwa check --rehearse --json >"$NVWA_RESULTS/rehearse-full.json" 2>"$NVWA_RESULTS/rehearse-full.err" || rc=$?
	((rc == 0)) || guest_fail "the full rehearsal failed ($rc): $(tail -3 "$NVWA_RESULTS/rehearse-full.err")"
	guest_result rehearse_full "$(rehearsal_row "$NVWA_RESULTS/rehearse-full.json")"

	sed -i 's/^enable_pre_dump: .*/enable_pre_dump: true/' /etc/nvwa/nvwa-restore.yaml
	nvwa check --rehearse --json >"$NVWA_RESULTS/rehearse-pre.json" 2>"$NVWA_RESULTS/rehearse-pre.err" || guest_fail "the pre-dump rehearsal failed: $(tail -3 "$NVWA_RESULTS/rehearse-pre.err")"
	guest_result rehearse_pre "$(rehearsal_row "$NVWA_RESULTS/rehearse-pre.json")"
	guest_result rehearse_pre_notes "$(grep -o 'pre-dump [0-9]*: .*\|[0-9]* pre-dump round(s).*' "$NVWA_RESULTS/rehearse-pre.err" | tr '\n' '|' | cut -c1-500)"
	guest_result check_pre_dump "$(python3 -c 'import json,sys
r = [c for c in json.load(open(sys.argv[1]))["checks"] if c["id"] == "criu.pre-dump"]
print(r[0]["status"], r[0]["detail"] if r else "none")' "$NVWA_RESULTS/rehearse-pre.json")"
	verify_memhog "$pid" rehearsed_verify "after the rehearsals"
	if ((REHEARSE_ONLY)); then
		guest_result rehearsed "$MIB MiB, rewriting $DIRTY MiB/s"
		guest_mark scenario-passed
		exit 0
	fi

	# A daemon stop between two pre-dump rounds (held there by the fault point after round 1): the
	# update rolls back before anything was frozen, the process never stopped, no round is left.
	mkdir -p /etc/systemd/system/nvwa.service.d
	printf '[Service]\nEnvironment=NVWA_FAULT_PAUSE=after-pre-dump-1\n' >/etc/systemd/system/nvwa.service.d/test-faults.conf
	systemctl daemon-reload
	systemctl restart nvwa.service
	rm -rf /run/nvwa/faults
	rc=0
	nvwa update --fast "$KVER_NEW" >"$NVWA_RESULTS/update-stopped.txt" 2>&1 &
	client=$!
	guest_wait 300 test -e /run/nvwa/faults/after-pre-dump-1.paused || guest_fail "the update never reached its first pre-dump round's end: $(tail -3 "$NVWA_RESULTS/update-stopped.txt")"
	[[ -d /var/nvwa/running/$pid/pre-1 ]] || guest_fail "no pre-1 round on disk at the fault point"
	systemctl stop --no-block nvwa.service
	sleep 1
	touch /run/nvwa/faults/after-pre-dump-1.go
	wait "$client" || rc=$?
	guest_wait 120 sh -c '! systemctl is-active -q nvwa.service' || guest_fail "nvwa.service did not stop after the rollback"
	guest_result stopped_rc "$rc"
	guest_result stopped_phase "$(python3 -c 'import json; print(json.load(open("/var/nvwa/running/manifest.json"))["phase"])' 2>/dev/null || echo none)"
	guest_result stopped_rounds_left "$(find /var/nvwa/running -maxdepth 2 -name 'pre-*' | head -3 | tr '\n' ' ')"
	guest_result stopped_kexec_loaded "$(cat /sys/kernel/kexec_loaded)"
	guest_result stopped_update_tail "$(tail -2 "$NVWA_RESULTS/update-stopped.txt" | tr '\n' '|')"
	[[ $(cat "/proc/$pid/stat" | cut -d' ' -f3) != T ]] || guest_fail "memhog is left stopped after the rollback"
	verify_memhog "$pid" stopped_verify "after the stopped update"
	rm -f /etc/systemd/system/nvwa.service.d/test-faults.conf
	systemctl daemon-reload
	systemctl start nvwa.service

	ON_UPDATE_FAIL=save_criu_logs guest_update --fast "$KVER_NEW"
	;;
2)
	guest_arrived "$KVER_NEW"
	pid=$(cat "$W/memhog.pid")
	[[ -d /proc/$pid && $(cat "/proc/$pid/comm") == python3 ]] || guest_fail "memhog is not at its old pid $pid"
	guest_result status_target "$(json_get "$NVWA_RESULTS/status.json" 'j["targets"][0]["phase"]')"
	guest_result pre_rounds "$(json_get "$NVWA_RESULTS/status.json" '" ".join("%s:%dMiB:%dms:synced-%sms" % (r["dir"], r["bytes"] >> 20, r["ms"], r.get("syncMs", "none")) for r in j["manifest"]["targets"][0]["preDump"]["rounds"])')"
	guest_result pre_parent "$(json_get "$NVWA_RESULTS/status.json" 'j["manifest"]["targets"][0]["preDump"].get("parent")')"
	guest_result final_stats "$(json_get "$NVWA_RESULTS/status.json" '" ".join("%s=%s" % kv for kv in j["manifest"]["targets"][0]["dumpStats"].items())')"
	guest_result final_bytes "$(json_get "$NVWA_RESULTS/status.json" 'j["manifest"]["targets"][0].get("imageBytes")')"
	guest_result downtime_ms "$(json_get "$NVWA_RESULTS/status.json" 'j["targets"][0].get("downtimeMs")')"
	# Every byte of its 512 MiB: the pages of the final dump and those of the rounds.
	verify_memhog "$pid" verify_after "after the restore"
	left=$(find "/var/nvwa/running/$pid" -mindepth 1 ! -name '*.log' 2>/dev/null | head -5 | tr '\n' ' ')
	guest_result images_left "${left:-none}"
	[[ -z $left ]] || guest_fail "images left after the restore: $left"
	assert_no_dropins
	guest_result restore_ms_eager "$(json_get "$NVWA_RESULTS/status.json" 'j["manifest"]["targets"][0]["timings"]["restore"]["end"] - j["manifest"]["targets"][0]["timings"]["restore"]["start"]')"

	# Lazy restore, back to the old kernel: the same process (still rewriting 4 MiB/s, so it faults
	# on pages not yet back), dumped in full this time; and a second one, 256 MiB, whose lazy-pages
	# daemon nvwa.service kills for real right after its restore (NVWA_FAULT_KILL, test-only).
	high_pids 32000
	start_detached memhog2 python3 "$T/memhog.py" 256 "$W/memhog2.log"
	guest_wait 120 grep -q '^ready' "$W/memhog2.log" || guest_fail "memhog2 did not fill its memory: $(cat "$W/memhog2.out")"
	pid2=$(cat "$W/memhog2.pid")
	write_restore_config "[$pid, $pid2]" "[]"
	printf 'enable_pre_dump: false\nenable_lazy_restore: true\n' >>/etc/nvwa/nvwa-restore.yaml
	mkdir -p /etc/systemd/system/nvwa.service.d
	printf '[Service]\nEnvironment=NVWA_FAULT_KILL=lazy-pages:%s\n' "$pid2" >/etc/systemd/system/nvwa.service.d/test-faults.conf
	nvwa check --json >"$NVWA_RESULTS/check-lazy.json" 2>"$NVWA_RESULTS/check-lazy.err" || true
	guest_result check_lazy "$(python3 -c 'import json,sys
r = [c for c in json.load(open(sys.argv[1]))["checks"] if c["id"] == "criu.lazy-restore"]
print(r[0]["status"], r[0]["detail"] if r else "none")' "$NVWA_RESULTS/check-lazy.json")"
	ON_UPDATE_FAIL=save_criu_logs guest_update --fast "$KVER_OLD"
	;;
3)
	guest_mark after-jump
	guest_result lazy_kernel "$(uname -r)"
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 3 runs $(uname -r), expected $KVER_OLD"
	pid=$(cat "$W/memhog.pid") pid2=$(cat "$W/memhog2.pid")
	guest_result lazy_phase "$(wait_for_restore)"
	cp /var/nvwa/running/"$pid"/lazy-pages.log "$NVWA_RESULTS/lazy-pages-$pid.log" 2>/dev/null || true
	cp /var/nvwa/running/"$pid2"/lazy-pages.log "$NVWA_RESULTS/lazy-pages-$pid2.log" 2>/dev/null || true
	guest_result lazy_a "$(tgt "$pid" 't["phase"] + " " + t["lazy"]["state"] + " " + t["lazy"]["end"]')"
	guest_result lazy_a_restore_ms "$(tgt "$pid" 't["timings"]["restore"]["end"] - t["timings"]["restore"]["start"]')"
	guest_result lazy_a_memory_ms "$(tgt "$pid" 't["lazy"]["endedAt"] - t["lazy"]["startedAt"]')"
	guest_result lazy_a_pages_restored "$(tgt "$pid" 't.get("restoreStats", {}).get("pagesRestored")')"
	guest_result lazy_b "$(tgt "$pid2" 't["phase"] + " " + t["lazy"]["state"] + " " + t["error"]["code"]')"
	guest_result lazy_b_message "$(tgt "$pid2" 't["error"]["message"]')"
	guest_result lazy_status_text "$(grep -o 'memory (lazy restore): .*' "$NVWA_RESULTS/status.txt" | tr '\n' '|')"
	# A: back at its pid, every byte of its 512 MiB right after its memory came back lazily.
	[[ -d /proc/$pid && $(cat "/proc/$pid/comm") == python3 ]] || guest_fail "memhog is not at its old pid $pid after the lazy restore"
	verify_memhog "$pid" lazy_verify "after the lazy restore"
	left=$(find "/var/nvwa/running/$pid" -mindepth 1 ! -name '*.log' 2>/dev/null | head -5 | tr '\n' ' ')
	guest_result lazy_a_images_left "${left:-none}"
	# B: killed with its daemon, its images kept, named in the update log.
	guest_result lazy_b_alive "$([[ -d /proc/$pid2 ]] && cat "/proc/$pid2/comm" || echo gone)"
	guest_result lazy_b_images "$([[ -f /var/nvwa/running/$pid2/inventory.img ]] && echo kept || echo gone)"
	guest_result lazy_log "$(grep -ho "$pid2 is damaged[^;]*\|$pid: all of its memory is back[^(]*" /var/log/nvwa/*.log | sort -u | tr '\n' '|')"
	rm -f /etc/systemd/system/nvwa.service.d/test-faults.conf
	assert_no_dropins

	# Both together, to the new kernel again: pre-dump rounds while the first process runs (still
	# rewriting 4 MiB/s), the final dump of what changed since, and a lazy restore of that dump
	# (criu reads the rounds' pages eagerly: it never serves a pre-dump's pages lazily). The daemon
	# starts again without the fault. The lost target left the update "restore-failed", which holds
	# the next one back until an operator clears it: nvwa init, as its message says.
	nvwa init >"$NVWA_RESULTS/init.txt" 2>&1 || guest_fail "nvwa init failed: $(tail -3 "$NVWA_RESULTS/init.txt")"
	systemctl daemon-reload
	systemctl restart nvwa.service
	write_restore_config "[$pid]" "[]"
	printf 'enable_pre_dump: true\nenable_lazy_restore: true\n' >>/etc/nvwa/nvwa-restore.yaml
	ON_UPDATE_FAIL=save_criu_logs guest_update --fast "$KVER_NEW"
	;;
4)
	guest_mark after-jump
	guest_result both_kernel "$(uname -r)"
	[[ $(uname -r) == "$KVER_NEW" ]] || guest_fail "boot 4 runs $(uname -r), expected $KVER_NEW"
	pid=$(cat "$W/memhog.pid")
	guest_result both_phase "$(wait_for_restore)"
	guest_result both_target "$(tgt "$pid" 't["phase"] + " " + t["lazy"]["state"] + " " + t["lazy"]["end"] + " " + t["preDump"].get("parent", "none")')"
	guest_result both_rounds "$(tgt "$pid" 'len(t["preDump"]["rounds"])')"
	guest_result both_skipped_parent "$(tgt "$pid" 't["dumpStats"].get("pagesSkippedParent")')"
	guest_result both_pages_restored "$(tgt "$pid" 't.get("restoreStats", {}).get("pagesRestored")')"
	guest_result both_restore_ms "$(tgt "$pid" 't["timings"]["restore"]["end"] - t["timings"]["restore"]["start"]')"
	[[ -d /proc/$pid && $(cat "/proc/$pid/comm") == python3 ]] || guest_fail "memhog is not at its old pid $pid after pre-dump and lazy restore"
	# Every byte of its 512 MiB: the rounds' pages (restored eagerly) and the final dump's (lazily).
	verify_memhog "$pid" both_verify "after pre-dump and lazy restore"
	left=$(find "/var/nvwa/running/$pid" -mindepth 1 ! -name '*.log' 2>/dev/null | head -5 | tr '\n' ' ')
	guest_result both_images_left "${left:-none}"
	assert_no_dropins
	guest_mark scenario-passed
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
