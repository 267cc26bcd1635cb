# Installed in the guest as /usr/local/lib/nvwa-test/common.sh (see test/guest/scenarios.ts).
# Workloads shared by the scenarios (sourced by run.sh inside the guest, after $NVWA_GUEST_LIB).
# Each workload writes its pid to $W/<name>.pid so boot 2 can compare with what was restored.
W=/var/lib/nvwa-test
T=/usr/local/lib/nvwa-test

# Start workloads at high pids: the machine's own services then do not take them after the jump
# by chance (nvwa's own pid-clash handling is tested on the host).
high_pids() { echo "$1" >/proc/sys/kernel/ns_last_pid; }

# start_detached NAME CMD...: a session of its own, stdio to files, no inherited descriptors
# (criu refuses what it cannot resolve, such as the runner's pipes).
start_detached() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$W/$name.out" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
	echo $! >"$W/$name.pid"
}

# start_redis_test KEYS MARKER: redis-test.service (Redis as a Type=notify service, Debian's own
# unit masked) from pid 30000 on, holding KEYS keys and "marker" = MARKER; its MainPID in $W/redis.pid.
start_redis_test() {
	mkdir -p "$W" /var/lib/redis
	systemctl mask -q --now redis-server.service 2>/dev/null || true
	high_pids 30000
	systemctl start redis-test.service
	guest_wait 30 redis-cli ping >/dev/null || guest_fail "redis-test did not answer"
	redis-cli DEBUG POPULATE "$1" key 16 >/dev/null
	redis-cli SET marker "$2" >/dev/null
	systemctl show -p MainPID --value redis-test.service >"$W/redis.pid"
}

start_workloads() {
	mkdir -p "$W"
	rm -f "$W"/*.log
	start_redis_test 100000 "before-$(uname -r)"
	[[ $(redis-cli DBSIZE) == 100001 ]] || guest_fail "redis holds $(redis-cli DBSIZE) keys, not 100000 and the marker"

	high_pids 31000
	start_detached counter python3 "$T/counter.py" "$W/counter.log"
	start_detached tcp python3 "$T/tcp-client.py" "$W/tcp.log"
	guest_wait 10 grep -q connected "$W/tcp.log" || guest_fail "tcp client did not connect: $(cat "$W/tcp.out")"
	kill -USR1 "$(cat "$W/tcp.pid")"
	guest_wait 10 grep -q "INCR -> 1 " "$W/tcp.log" || guest_fail "no INCR reply before the update"
	guest_wait 10 test -s "$W/counter.log" || guest_fail "counter did not start"
}

# The signed RPM repo, copied to the guest by scenarios.ts (run-scenario.sh --add-dir) where the
# README's Install section mounts the repo's ISO.
NVWA_REPO=/mnt

# install_nvwa: nvwa from its signed RPM repo, as the README's Install section says, as far as a
# Debian guest allows: no yum, so rpm itself, with --nodeps (rpm's database does not know Debian's
# criu). Once per scenario, before the configs are written: rpm would otherwise set the package's
# default configs aside as .rpmnew and leave the scenario's in place only by that accident.
install_nvwa() {
	local pkg out t0
	! rpm -q --quiet nvwa || return 0
	t0=$(date +%s%N)
	guest_mark rpm-install-start
	pkg=$(echo "$NVWA_REPO"/Packages/nvwa-*."$(uname -m)".rpm)
	[[ -f $pkg ]] || guest_fail "no nvwa RPM for $(uname -m) in $NVWA_REPO/Packages: $(ls "$NVWA_REPO/Packages" 2>&1)"
	# Before the key is imported the signature cannot verify: proves rpm -K really checks it.
	out=$(rpm -K "$pkg" 2>&1) && guest_fail "rpm -K accepted $pkg before its key was imported: $out"
	echo "before rpm --import: $out" >"$NVWA_RESULTS/rpm-checksig.txt"
	rpm --import "$NVWA_REPO/RPM-GPG-KEY-nvwa" || guest_fail "rpm --import $NVWA_REPO/RPM-GPG-KEY-nvwa failed"
	out=$(rpm -K "$pkg" 2>&1) || guest_fail "rpm -K $pkg failed: $out"
	echo "$out" >>"$NVWA_RESULTS/rpm-checksig.txt"
	# rpm 4.18 says "<file>: digests signatures OK"; an unsigned package says only "digests OK".
	[[ $out =~ :\ .*signatures\ OK$ ]] || guest_fail "the signature of $pkg is not OK: $out"
	guest_result rpm_checksig "${out##*: }"
	guest_mark rpm-checked
	out=$(rpm -i --nodeps "$pkg" 2>&1) || guest_fail "rpm -i --nodeps $pkg failed: $out"
	guest_mark rpm-unpacked
	out=$(rpm -qa | grep nvwa) || guest_fail "rpm -qa does not list nvwa after installing $pkg"
	guest_result rpm_installed "$out"
	[[ $out == "$(basename "$pkg" .rpm)" ]] || guest_fail "rpm -qa lists '$out', not $(basename "$pkg" .rpm)"
	# rpm -i checked the payload against the digests in the signed header, so the executable is
	# the one that was signed (rpm -V would hash its 90 MB again: 4 s under TCG for nothing new).
	[[ -x /usr/bin/nvwa && -f /usr/lib/systemd/system/nvwa.service ]] || guest_fail "the RPM did not install /usr/bin/nvwa and nvwa.service"
	[[ ! -e /etc/systemd/system/nvwa.service ]] || guest_fail "/etc/systemd/system/nvwa.service shadows the packaged unit"
	# %post only presets the unit (--no-reload, as rpm's systemd macros do); on an RPM distro
	# systemd's own rpm file trigger then reloads, and Debian's rpm has no such trigger.
	systemctl daemon-reload
	guest_result rpm_install_ms $((($(date +%s%N) - t0) / 1000000))
	guest_mark rpm-installed
}

# start_nvwa: the server config every scenario uses, then the daemon (after nvwa-restore.yaml).
start_nvwa() {
	cat >/etc/nvwa/nvwa-server.yaml <<YAML
criu_dir: /var/nvwa/running/
criu_exe: /usr/sbin/criu
kexec_exe: /usr/sbin/kexec
systemd_etc: /etc/systemd/system/
log_dir: /var/log/nvwa/
YAML
	chmod 0640 /etc/nvwa/*.yaml
	systemctl enable -q --now nvwa.service || guest_fail "nvwa.service did not start: $(systemctl status nvwa --no-pager 2>&1 | tail -5)"
}

# wait_for_restore: after the jump, wait until the daemon has finished its boot-side restore (the
# manifest's boot-restore timing has an end: targets restored and drop-ins removed), then save
# `nvwa status` and every target's criu logs to the results; prints the update's phase.
wait_for_restore() {
	local done="" phase=""
	for _ in $(seq 1 300); do
		read -r done phase < <(nvwa status --json 2>/dev/null | python3 -c 'import json,sys
j = json.load(sys.stdin)
print(1 if j.get("manifest", {}).get("timings", {}).get("boot-restore", {}).get("end") else 0, j.get("phase", "none"))' || echo "0 none")
		[[ $done == 1 ]] && break
		sleep 1
	done
	nvwa status --json >"$NVWA_RESULTS/status.json" 2>&1 || true
	nvwa status >"$NVWA_RESULTS/status.txt" 2>&1 || true
	save_criu_logs
	echo "$phase"
}

# save_criu_logs: every target's criu dump.log and restore.log into the results.
save_criu_logs() {
	local d n l
	for d in /var/nvwa/running/*/; do
		[[ -d $d ]] || continue
		n=$(basename "$d")
		for l in dump.log restore.log; do [[ ! -f $d$l ]] || cp "$d$l" "$NVWA_RESULTS/criu-$n-$l"; done
	done
}

# guest_update ARG...: `nvwa update ARG...` (its output in update.txt; $NVWA_UPDATE replaces
# `nvwa update` with another command line), then end this boot's script
# with 75: the jump is under way and the runner goes on after it. A fast jump ends the boot
# inside the syscall, so the client may never see a reply. On failure the function named by
# $ON_UPDATE_FAIL (if any) runs first, to collect what the scenario wants kept.
guest_update() {
	sync
	guest_mark update-start
	# shellcheck disable=SC2086 # NVWA_UPDATE is a command line, split on purpose
	if ! ${NVWA_UPDATE:-nvwa update} "$@" >"$NVWA_RESULTS/update.txt" 2>&1; then
		sync
		if [[ -n ${ON_UPDATE_FAIL:-} ]]; then "$ON_UPDATE_FAIL"; fi
		guest_fail "nvwa update failed: $(tail -5 "$NVWA_RESULTS/update.txt")"
	fi
	guest_mark update-returned
	exit 75
}

# guest_arrived KVER: the first steps after the jump: the kernel is KVER, and nvwa's boot-side
# restore has finished with the update restored. The function named by $ON_ARRIVED (if any) runs
# before that verdict, to collect what the scenario wants kept either way.
guest_arrived() {
	local phase
	guest_mark after-jump
	guest_result kernel_after "$(uname -r)"
	[[ $(uname -r) == "$1" ]] || guest_fail "boot $NVWA_BOOT runs $(uname -r), expected $1"
	phase=$(wait_for_restore)
	guest_mark restore-seen
	guest_result phase "$phase"
	if [[ -n ${ON_ARRIVED:-} ]]; then "$ON_ARRIVED"; fi
	[[ $phase == restored ]] || guest_fail "nvwa status says '$phase', not restored: $(cat "$NVWA_RESULTS/status.txt")"
}

# flow_list ITEM...: a YAML flow sequence, "[a, b]" ("[]" for none).
flow_list() {
	local IFS=,
	local joined="$*"
	echo "[${joined//,/, }]"
}

# write_restore_config PIDS SERVICES [RESTORE_NET]: nvwa-restore.yaml with these YAML lists
# (e.g. "[31001]" "[redis-test]"), nvwa installed first from its RPM, then the daemon started.
write_restore_config() {
	install_nvwa
	mkdir -p /etc/nvwa
	cat >/etc/nvwa/nvwa-restore.yaml <<YAML
pids: $1
services: $2
restore_net: ${3:-false}
enable_quick_kexec: false
enable_pin_memory: false
enable_debug_mode: false
YAML
	start_nvwa
}

# write_config PIDS... : nvwa's config for the workloads (the pids and Redis), then the daemon.
write_config() {
	write_restore_config "$(flow_list "$@")" "[redis-test]" "${NVWA_TEST_RESTORE_NET:-false}"
}

# No nvwa drop-in may remain under /etc/systemd/system.
assert_no_dropins() {
	local left
	left=$(find /etc/systemd/system -path '*.d/nvwa-*.conf' 2>/dev/null)
	[[ -z $left ]] || guest_fail "nvwa drop-ins left behind: $left"
}

# The counter's log must be 1, 2, 3, ... with no restart from 1 and no gap beyond one tick.
assert_counter_continuous() {
	python3 - "$W/counter.log" <<'PY' || guest_fail "counter log is not continuous (see counter.log in results)"
import sys
vals = [int(x) for x in open(sys.argv[1]).read().split()]
assert vals == list(range(1, len(vals) + 1)), vals[:5] + ["..."] + vals[-5:]
PY
}

# write_services_config SERVICE... : like write_config, with only these services and no pids
# (the "services" scenario); the daemon is started the same way.
write_services_config() {
	write_restore_config "[]" "$(flow_list "$@")"
}

# json_get FILE EXPR: a field of a JSON file, EXPR in Python over `j`; empty when missing.
json_get() {
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"j": j})
print("" if v is None else v)' "$1" "$2" 2>/dev/null || true
}

# kaslr_state: what the running arm64 kernel said about KASLR at boot ("KASLR enabled", "KASLR
# disabled due to lack of seed", …; arch/arm64/kernel/kaslr.c): a kernel entered without a
# kaslr-seed in /chosen runs at its link address.
# (dmesg into a variable first: `dmesg | grep -m1` lets grep leave early, dmesg then fails on its
# closed pipe, and pipefail turns the found line into a failure.)
kaslr_state() {
	local log
	log=$(dmesg)
	grep -m1 -o 'KASLR .*' <<<"$log" || echo "KASLR: no message"
}

# eth0_up: the NIC of a host-side peer (run-guest.sh --hostfwd), configured by hand. Nothing on the
# machine configures it at boot: after the jump only nvwa's restore_net brings it back.
eth0_up() {
	guest_wait 60 test -e /sys/class/net/eth0 || guest_fail "no eth0 (run-guest.sh --hostfwd): $(ls /sys/class/net)"
	ip addr add 10.0.2.15/24 dev eth0
	ip link set eth0 up
	ip route add default via 10.0.2.2 dev eth0
}

# The host peer's INCR counter in Redis (guest_wait re-runs this until it holds).
host_exchanges_are() { [[ $(redis-cli GET host_exchanges) == "$1" ]]; }

# host_peer_first: ask the host peer (scenario.conf TCP_PEER_*) for its first INCR to Redis and
# note its address and port in $W/peer.addr.
host_peer_first() {
	local peer
	guest_mark tcp-peer-go
	guest_wait 120 host_exchanges_are 1 || guest_fail "the host peer's INCR did not arrive (host_exchanges=$(redis-cli GET host_exchanges))"
	peer=$(redis-cli CLIENT LIST | grep -o 'addr=10\.0\.2\.2:[0-9]*') || guest_fail "no client from 10.0.2.2: $(redis-cli CLIENT LIST)"
	echo "$peer" >"$W/peer.addr"
	guest_result tcp_peer_before "$peer"
}

# host_peer_kept: after the jump, the host peer's connection is back in Redis (same address and
# port) and carries the peer's second INCR; nothing reconnected (the host checks its side used
# one socket too).
host_peer_kept() {
	local peer
	peer=$(cat "$W/peer.addr")
	redis-cli CLIENT LIST >"$NVWA_RESULTS/redis-clients.txt"
	grep -q "$peer " "$NVWA_RESULTS/redis-clients.txt" || guest_fail "Redis lost the peer's connection $peer: $(cat "$NVWA_RESULTS/redis-clients.txt")"
	guest_mark tcp-peer-go
	guest_wait 120 host_exchanges_are 2 || guest_fail "the host peer's INCR after the jump did not arrive (host_exchanges=$(redis-cli GET host_exchanges)); clients: $(redis-cli CLIENT LIST)"
	guest_result tcp_peer_after "$peer"
}

# counter_kept: the counter is at its old pid and counts on from its frozen value, without a gap.
counter_kept() {
	local pid before after
	pid=$(cat "$W/counter.pid")
	[[ -d /proc/$pid && $(cat "/proc/$pid/comm") == python3 ]] || guest_fail "counter not at its old pid $pid"
	before=$(wc -l <"$W/counter.log")
	sleep 1
	after=$(wc -l <"$W/counter.log")
	((after > before)) || guest_fail "counter is not counting after restore"
	assert_counter_continuous
	guest_result counter_last "$after"
}

# redis_kept KEYS: Redis after the jump: at least KEYS keys (those start_redis_test populated; the
# marker and a host peer's counter come on top), the marker from the old kernel, active under
# systemd with the restored pid as MainPID.
redis_kept() {
	local keys mainpid
	keys=$(redis-cli DBSIZE)
	guest_result redis_keys "$keys"
	((keys > $1)) || guest_fail "redis has $keys keys after restore, fewer than the $1 populated and the marker"
	[[ $(redis-cli GET marker) == "before-$KVER_OLD" ]] || guest_fail "redis marker lost"
	[[ $(systemctl is-active redis-test.service) == active ]] || guest_fail "redis-test is not active: $(systemctl status redis-test --no-pager | tail -5)"
	mainpid=$(systemctl show -p MainPID --value redis-test.service)
	guest_result redis_mainpid "$mainpid"
	[[ $mainpid == "$(cat "$W/redis.pid")" ]] || guest_fail "redis MainPID is $mainpid, the restored pid is $(cat "$W/redis.pid")"
}
