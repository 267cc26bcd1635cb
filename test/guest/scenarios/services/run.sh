#!/bin/bash
# Scenario "services": the service types other than notify across a real kernel upgrade, then
# `nvwa init`. Boot 1 (old kernel): three counters under systemd, each with its state in memory:
#   svc-simple   Type=simple            (the counter is the main process)
#   svc-forking  Type=forking, PIDFile= (a double-forking daemon)
#   svc-oneshot  Type=oneshot, RemainAfterExit=yes, its ExecStart leaves the counter running
#   svc-user     Type=simple as User=daemon with RuntimeDirectory= and StateDirectory= (its count
#                goes to /var/lib/svc-user): after the jump both are still daemon's, so it counts on
#   svc-journal  Type=simple with no output setting (stdout and stderr: a stream to the journal)
#                that counts on stdout and through syslog(3); after the jump its lines continue
#                in `journalctl -b -u svc-journal`, from the same pid, filed under its unit
# and `nvwa update --fast <new kernel>` (the direct jump: sync + reboot(LINUX_REBOOT_CMD_KEXEC)
# behind nvwa's guard, no orderly shutdown; the upgrade scenario covers the orderly one) with
# services: those three, pids: none. svc-forking and
# svc-oneshot are enabled (systemd itself queues their start at boot, ordered after nvwa.service
# by the drop-in); svc-simple is not (only the daemon's StartUnit brings it back). Boot 2 (new kernel):
# each unit active under systemd, simple/forking with MainPID = the old main pid, the oneshot's
# cgroup holding its old pid, every counter continuous, no drop-in left. Then `nvwa init` with a
# stray nvwa drop-in and a kernel loaded by hand: both go, the services keep running, and a
# second `nvwa init` has nothing left to remove.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1
UNITS=(svc-simple.service svc-forking.service svc-oneshot.service svc-user.service)

# cgroup_pids UNIT: the pids in the unit's cgroup (cgroup v2), sorted.
cgroup_pids() {
	local cg
	cg=$(systemctl show -p ControlGroup --value "$1")
	[[ -n $cg && -f /sys/fs/cgroup$cg/cgroup.procs ]] || return 0
	sort -n "/sys/fs/cgroup$cg/cgroup.procs"
}

# assert_continuous NAME: $W/NAME.log is 1, 2, 3, ... (never restarted from 1, no gap).
assert_continuous() {
	python3 - "$W/$1.log" <<'PY' || guest_fail "$1: counter log is not continuous (see $1.log in results)"
import sys
vals = [int(x) for x in open(sys.argv[1]).read().split()]
assert len(vals) > 0 and vals == list(range(1, len(vals) + 1)), vals[:5] + ["..."] + vals[-5:]
PY
}

collect() {
	save_criu_logs
	cp "$W"/*.log /var/log/svc-*.out "$NVWA_RESULTS/" 2>/dev/null || true
	cp -r /var/log/nvwa "$NVWA_RESULTS/nvwa-logs" 2>/dev/null || true
	for u in "${UNITS[@]}"; do systemctl status --no-pager "$u" >"$NVWA_RESULTS/status-$u.txt" 2>&1 || true; done
}

case $boot in
1)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result kernel_before "$(uname -r)"
	mkdir -p "$W"
	rm -f "$W"/*.log
	# svc-user counts into its StateDirectory; the checks below read every counter as $W/<name>.log.
	ln -s /var/lib/svc-user/count.log "$W/svc-user.log"
	base=33000
	for u in "${UNITS[@]}"; do
		high_pids $base
		base=$((base + 500))
		[[ $u == svc-simple.service ]] || systemctl enable -q "$u"
		systemctl start "$u" || guest_fail "$u did not start: $(systemctl status --no-pager "$u" 2>&1 | tail -5)"
	done
	for u in "${UNITS[@]}"; do
		n=${u%.service}
		guest_wait 10 test -s "$W/$n.log" || guest_fail "$u is not counting: $(cat "/var/log/$n.out" 2>/dev/null)"
		[[ $(systemctl is-active "$u") == active ]] || guest_fail "$u is $(systemctl is-active "$u")"
	done
	systemctl show -p MainPID --value svc-simple.service >"$W/svc-simple.pid"
	systemctl show -p MainPID --value svc-user.service >"$W/svc-user.pid"
	systemctl show -p MainPID --value svc-forking.service >"$W/svc-forking.pid"
	[[ $(cat "$W/svc-forking.pid") == "$(cat /run/svc-forking.pid)" ]] || guest_fail "svc-forking: MainPID is not its PIDFile's pid"
	cgroup_pids svc-oneshot.service >"$W/svc-oneshot.pid"
	[[ $(wc -l <"$W/svc-oneshot.pid") == 1 ]] || guest_fail "svc-oneshot's cgroup holds '$(cat "$W/svc-oneshot.pid")', expected one counter"
	for u in "${UNITS[@]}"; do guest_result "${u%.service}_pid_before" "$(cat "$W/${u%.service}.pid")"; done
	high_pids 34500
	systemctl start svc-journal.service
	guest_wait 30 sh -c 'journalctl -u svc-journal.service -o cat | grep -qx "tick 5"' || guest_fail "svc-journal's ticks do not reach the journal: $(journalctl -u svc-journal.service -o cat | tail -3)"
	systemctl show -p MainPID --value svc-journal.service >"$W/svc-journal.pid"
	guest_result svc-journal_pid_before "$(cat "$W/svc-journal.pid")"
	readlink "/proc/$(cat "$W/svc-journal.pid")/fd/1" >"$NVWA_RESULTS/svc-journal-fd1.txt"

	write_services_config "${UNITS[@]}" svc-journal.service
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check.txt" 2>&1 || guest_fail "nvwa check failed: $(cat "$NVWA_RESULTS/check.txt")"
	# Debian's own redis-server.service, unmodified, is sandboxed (PrivateTmp, ProtectSystem, …: a
	# mount namespace of its own): nvwa check refuses it by name, with those settings, before
	# anything is frozen.
	systemctl start redis-server.service || guest_fail "Debian's redis-server.service did not start"
	mkdir -p /run/stock-cfg
	cp /etc/nvwa/nvwa-server.yaml /run/stock-cfg/
	printf 'services:\n  - redis-server.service\n' >/run/stock-cfg/nvwa-restore.yaml
	chmod 600 /run/stock-cfg/*
	! nvwa check --config-dir /run/stock-cfg --json >"$NVWA_RESULTS/check-stock-redis.json" 2>&1 || guest_fail "nvwa check accepted Debian's sandboxed redis-server.service"
	guest_result stock_redis "$(python3 -c 'import json,sys
r = [c for c in json.load(open(sys.argv[1]))["checks"] if c["id"] == "service.redis-server.service"][0]
print(r["status"], r["detail"])' "$NVWA_RESULTS/check-stock-redis.json")"
	systemctl stop redis-server.service
	guest_result journal_tick_before "$(journalctl -u svc-journal.service -o cat | grep '^tick ' | tail -1)"
	ON_UPDATE_FAIL=collect guest_update --fast "$KVER_NEW"
	;;
2)
	ON_ARRIVED=collect guest_arrived "$KVER_NEW"

	sleep 1
	fails=()
	for u in "${UNITS[@]}"; do
		n=${u%.service}
		old=$(cat "$W/$n.pid")
		state=$(systemctl show -p ActiveState --value "$u")/$(systemctl show -p SubState --value "$u")
		guest_result "${n}_state" "$state"
		case $u in
		svc-oneshot.service)
			[[ $state == active/exited ]] || fails+=("$u is $state, expected active/exited")
			now=$(cgroup_pids "$u" | tr '\n' ' ')
			guest_result "${n}_cgroup" "$now"
			[[ " $now" == *" $old "* ]] || fails+=("$u: its cgroup holds '$now', not the restored pid $old")
			;;
		*)
			[[ $state == active/running ]] || fails+=("$u is $state, expected active/running")
			main=$(systemctl show -p MainPID --value "$u")
			guest_result "${n}_mainpid" "$main"
			[[ $main == "$old" ]] || fails+=("$u: MainPID is $main, the restored pid is $old")
			;;
		esac
		[[ -d /proc/$old && $(cat "/proc/$old/comm") == python3 ]] || fails+=("$u: pid $old is not the counter")
		before=$(wc -l <"$W/$n.log")
		sleep 0.6
		after=$(wc -l <"$W/$n.log")
		((after > before)) || fails+=("$u: the counter is not counting")
		guest_result "${n}_count" "$after"
	done
	# svc-user's directories after the jump: /run/svc-user made anew and /var/lib/svc-user, both
	# still the unit's user's (nvwa's helper ran as root through "!", not User=root).
	owners="$(stat -c '%n %U:%G' /run/svc-user /var/lib/svc-user /var/lib/svc-user/count.log 2>&1 | tr '\n' ',')"
	guest_result svc-user_owners "$owners"
	[[ $owners == "/run/svc-user daemon:daemon,/var/lib/svc-user daemon:daemon,/var/lib/svc-user/count.log daemon:daemon," ]] || fails+=("svc-user's directories are not daemon's after the jump: $owners")
	guest_result svc-user_uid "$(awk '/^Uid:/ { print $2 }' "/proc/$(cat "$W/svc-user.pid")/status")"
	((${#fails[@]} == 0)) || guest_fail "$(printf '%s; ' "${fails[@]}")"
	for u in "${UNITS[@]}"; do assert_continuous "${u%.service}"; done

	# svc-journal: the same process, active under its unit, its stdout and syslog lines going on in
	# this boot's journal under the unit, continuing the count from before the jump.
	jpid=$(cat "$W/svc-journal.pid")
	[[ $(systemctl show -p MainPID --value svc-journal.service) == "$jpid" ]] || guest_fail "svc-journal: MainPID is $(systemctl show -p MainPID --value svc-journal.service), not $jpid"
	[[ $(systemctl show -p SubState --value svc-journal.service) == running ]] || guest_fail "svc-journal is $(systemctl show -p SubState --value svc-journal.service)"
	guest_wait 30 sh -c "journalctl -b -u svc-journal.service -o cat | grep -c '^tick ' | grep -qvx '[0-4]'" || guest_fail "svc-journal: fewer than 5 ticks under its unit after the jump: $(journalctl -b -u svc-journal.service -o cat | tail -5)"
	journalctl -b -u svc-journal.service -o json --no-pager >"$NVWA_RESULTS/svc-journal.json"
	journalctl -b "_PID=$jpid" _SYSTEMD_UNIT=nvwa.service -o cat --no-pager >"$NVWA_RESULTS/svc-journal-under-nvwa.txt" || true
	guest_result journal_check "$(python3 - "$NVWA_RESULTS/svc-journal.json" "$jpid" "$(journalctl -b -1 -u svc-journal.service -o cat 2>/dev/null | grep '^tick ' | tail -1)" <<'PY'
import json, sys
path, pid, last_before = sys.argv[1], sys.argv[2], sys.argv[3]
ticks, syss, pids, transports = [], [], set(), set()
for line in open(path):
    e = json.loads(line)
    m = e.get("MESSAGE")
    if not isinstance(m, str):
        continue
    if m.startswith("tick "):
        ticks.append(int(m[5:])); pids.add(e.get("_PID")); transports.add(e.get("_TRANSPORT"))
    elif m.startswith("sys "):
        syss.append(int(m[4:])); pids.add(e.get("_PID")); transports.add(e.get("_TRANSPORT"))
before = int(last_before.split()[1]) if last_before.startswith("tick ") else 0
ok = (len(ticks) >= 5 and ticks == list(range(ticks[0], ticks[0] + len(ticks))) and ticks[0] > max(before, 1)
      and len(syss) >= 5 and syss == list(range(syss[0], syss[0] + len(syss))) and syss[0] > 1 and pids == {pid})
print(f"{'ok' if ok else 'BAD'} ticks {ticks[0] if ticks else None}..{ticks[-1] if ticks else None} ({len(ticks)}) sys {syss[0] if syss else None}..{syss[-1] if syss else None} ({len(syss)}) last in the old boot's journal {before} pids [{', '.join(sorted(p for p in pids if p))}] transports [{', '.join(sorted(t for t in transports if t))}]")
PY
)"
	grep -q "^journal_check=ok " "$NVWA_RESULTS/result.env" || guest_fail "svc-journal's journal lines after the jump: $(grep journal_check "$NVWA_RESULTS/result.env")"
	guest_result journal_under_nvwa "$(wc -l <"$NVWA_RESULTS/svc-journal-under-nvwa.txt")"
	assert_no_dropins
	guest_mark services-checked

	# nvwa init: a stray drop-in of an update that never happened and a kernel loaded by hand.
	mkdir -p /etc/systemd/system/foo.service.d
	printf '[Service]\nExecStart=\nExecStart=/usr/bin/nvwa restore foo.service\n' >/etc/systemd/system/foo.service.d/nvwa-restore.conf
	guest_kexec_load "$KVER_NEW"
	nvwa init >"$NVWA_RESULTS/init.txt" 2>&1 || guest_fail "nvwa init failed: $(cat "$NVWA_RESULTS/init.txt")"
	grep -q "foo.service.d/nvwa-restore.conf" "$NVWA_RESULTS/init.txt" || guest_fail "nvwa init did not report the stray drop-in: $(cat "$NVWA_RESULTS/init.txt")"
	grep -q "kernel loaded for kexec" "$NVWA_RESULTS/init.txt" || guest_fail "nvwa init did not report the loaded kernel: $(cat "$NVWA_RESULTS/init.txt")"
	[[ ! -e /etc/systemd/system/foo.service.d ]] || guest_fail "the stray drop-in (or its now empty directory) is still there: $(ls -la /etc/systemd/system/foo.service.d)"
	[[ $(cat /sys/kernel/kexec_loaded) == 0 ]] || guest_fail "a kernel is still loaded for kexec after nvwa init"
	[[ ! -e /var/nvwa/running/manifest.json ]] || guest_fail "nvwa init left the manifest"
	for u in "${UNITS[@]}"; do
		[[ $(systemctl is-active "$u") == active ]] || guest_fail "$u is $(systemctl is-active "$u") after nvwa init"
	done
	nvwa init >"$NVWA_RESULTS/init2.txt" 2>&1 || guest_fail "the second nvwa init failed: $(cat "$NVWA_RESULTS/init2.txt")"
	grep -q "^nothing to remove" "$NVWA_RESULTS/init2.txt" || guest_fail "the second nvwa init found something: $(cat "$NVWA_RESULTS/init2.txt")"
	guest_result init "$(tr '\n' ' ' <"$NVWA_RESULTS/init.txt" | tr -s ' ' | cut -c1-800)"
	guest_result init2 "$(cat "$NVWA_RESULTS/init2.txt")"
	cp "$W"/*.log "$NVWA_RESULTS/" 2>/dev/null || true
	guest_mark scenario-passed
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
