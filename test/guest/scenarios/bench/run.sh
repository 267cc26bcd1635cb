#!/bin/bash
# Scenario "bench" (test/bench/guest.ts): one workload moved across the kernel three ways in one
# guest session, so that the machine's drift cancels out of the ratios.
#   boots 1, 2    warm-up: kexec -e to the new kernel and back, nothing measured     (see below)
#   boot 3 (old)  start the workload; a warm-up criu dump (--leave-running, thrown
#                 away); `nvwa update --fast <new>`                                    (A: nvwa)
#   boot 4 (new)  nvwa has restored it; `nvwa update --fast <old>`                     (A2: nvwa back)
#   boot 5 (old)  nvwa has restored it; by hand: load the new kernel, criu dump, sync,
#                 kexec -e                                                             (B: by hand)
#   boot 6 (new)  an early unit has run criu restore; then the cold path: save Redis's
#                 RDB / enable the workload's unit, `systemctl reboot` (firmware)      (C: cold)
#   boot 7 (old)  systemd started the workload from scratch; wait until it is ready.
# A and B both go old -> new, so they compare like for like (the two kernels boot at different
# speeds); A2 is the same nvwa the other way. The warm-up exists because of TCG: the first time
# the guest runs a kernel's decompressor and early boot from a kexec, QEMU translates all of that
# code, which made whichever jump came first seconds slower than the same jump later.
# The workload is /etc/nvwa-bench.env: WORKLOAD=mem SIZE=<MiB> (a pid target) or
# WORKLOAD=redis SIZE=<keys> (the redis-test service); ORDER=ba runs B before A (boot 3: B,
# boot 4: by-hand restore checked, then A2 back; boot 5: A; boot 6: C), so that sessions ab and ba
# make A B B A sequences (memory workload only); LAZY=1 sets enable_lazy_restore for A and gives B
# its twin (criu lazy-pages -d, then criu restore --lazy-pages); PREDUMP=1 sets enable_pre_dump for A
# and gives B one criu pre-dump round before its final dump (--track-mem --prev-images-dir); GROW_FS=1
# (sizes beyond 1 GiB, with run-guest.sh --disk-grow) grows the root filesystem first. Timings come from console markers (the
# host stamps them with its own clock) and from nvwa's manifest; each "bench" marker also carries
# the guest's wall clock, so the host can map every boot's clock onto its own.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
# shellcheck source=/dev/null
. /etc/nvwa-bench.env
ORDER=${ORDER:-ab}
LAZY=${LAZY:-0}
PREDUMP=${PREDUMP:-0}
boot=$1
WARM=2 # warm-up boots before the measured stages
HAND=/var/nvwa-hand # the by-hand images, on the same disk as nvwa's criu_dir
# With pre-dump, B's restore reads its final dump, whose `parent` link names the round beside it.
if ((PREDUMP)); then HAND_D=$HAND/final; else HAND_D=$HAND; fi
CRIU_SHARED=(--tcp-established --network-lock nftables --ext-unix-sk --file-locks)

bench_mark() {
	local rt
	rt=$(date +%s.%N)
	echo "NVWA-GUEST boot=$NVWA_BOOT bench $1 rt=$rt" >/dev/console
	echo "boot=$NVWA_BOOT $1 rt=$rt" >>"$NVWA_RESULTS/bench-marks.txt"
}

target_pid() {
	if [[ $WORKLOAD == mem ]]; then cat "$W/memhog.pid"; else systemctl show -p MainPID --value redis-test.service; fi
}

# guest_wait re-runs these until they hold.
verified_more_than() { (($(grep -c '^verify' "$W/memhog.log" || true) > $1)); }
redis_test_active() { [[ $(systemctl show -p ActiveState --value redis-test.service) == active ]]; }

# settle_disk: write everything back and checkpoint the root filesystem's journal (a freeze does
# both), so that A, A2 and B start from the same disk state and the next boot replays only what
# the measured dump wrote (boot 3 also holds the RPM install and the warm-up dump). Measured
# afterwards: the replay itself takes < 0.1 s either way; the slower boots after A are spent in
# the initramfs's udev (see BENCHMARKS.md).
settle_disk() {
	sync
	fsfreeze -f / && fsfreeze -u /
}

# nvwa_update VERSION MODE: `nvwa check` first (outside the timed window), then the fast update,
# whose jump ends this boot; MODE (a, a2) names the markers and files.
nvwa_update() {
	nvwa check "$1" >"$NVWA_RESULTS/check-$2.txt" 2>&1 || guest_fail "nvwa check failed: $(cat "$NVWA_RESULTS/check-$2.txt")"
	settle_disk
	bench_mark "$2-update"
	if ! nvwa update --fast "$1" >"$NVWA_RESULTS/update-$2.txt" 2>&1; then
		guest_fail "nvwa update to $1 failed: $(tail -5 "$NVWA_RESULTS/update-$2.txt")"
	fi
	exit 75
}

# nvwa_restored N: wait for the boot-side restore of update N, keep its status, check the workload.
nvwa_restored() {
	local phase
	phase=$(wait_for_restore)
	[[ $phase == restored ]] || guest_fail "nvwa status says '$phase', not restored: $(cat "$NVWA_RESULTS/status.txt")"
	cp "$NVWA_RESULTS/status.json" "$NVWA_RESULTS/nvwa-status-$1.json"
	verify_workload "a$1"
	guest_result "pid_a" "$(target_pid)"
}

# verify_workload WHEN: the memory or the keys are intact (outside every timed window).
verify_workload() {
	if [[ $WORKLOAD == mem ]]; then
		local n
		n=$(grep -c '^verify' "$W/memhog.log" || true)
		kill -USR1 "$(cat "$W/memhog.pid")"
		guest_wait $((600 + SIZE / 4)) verified_more_than "$n" || guest_fail "$1: memhog did not verify"
		[[ $(grep '^verify' "$W/memhog.log" | tail -1) == "verify ok"* ]] || guest_fail "$1: memhog's memory is wrong: $(tail -1 "$W/memhog.log")"
	else
		[[ $(redis-cli DBSIZE) -ge $SIZE ]] || guest_fail "$1: redis holds $(redis-cli DBSIZE) keys, not $SIZE"
	fi
	guest_result "verified_$1" ok
}

# setup: the workload, the warm-up dump, nvwa installed and configured (the same in both orders).
setup() {
	mkdir -p "$W" /var/lib/redis
	if [[ -n ${GROW_FS:-} ]]; then resize2fs "$(findmnt -no SOURCE /)" >"$NVWA_RESULTS/resize2fs.txt" 2>&1 || guest_fail "resize2fs failed: $(cat "$NVWA_RESULTS/resize2fs.txt")"; fi
	high_pids 31000
	if [[ $WORKLOAD == mem ]]; then
		start_detached memhog python3 "$T/memhog.py" "$SIZE" "$W/memhog.log"
		guest_wait $((900 + SIZE / 4)) grep -q '^ready' "$W/memhog.log" || guest_fail "memhog did not get ready"
		pids="[$(cat "$W/memhog.pid")]" services="[]"
	else
		[[ $ORDER == ab ]] || guest_fail "ORDER=$ORDER needs WORKLOAD=mem"
		systemctl mask -q --now redis-server.service 2>/dev/null || true
		high_pids 30000
		systemctl start redis-test.service
		guest_wait 30 redis-cli ping >/dev/null || guest_fail "redis-test did not answer"
		redis-cli DEBUG POPULATE "$SIZE" key 16 >/dev/null
		pids="[]" services="[redis-test]"
	fi
	target_pid >"$W/target.pid"
	guest_result workload "$WORKLOAD $SIZE"
	guest_result order "$ORDER"
	guest_result lazy "$LAZY"
	guest_result predump "$PREDUMP"
	guest_result rss_kib "$(awk '/VmRSS/ {print $2}' "/proc/$(target_pid)/status")"
	# Warm-up dump, not measured: the first dump of a session used to take several times longer
	# than the same dump later (1 GiB: 23.8 s against 5-7 s), which would have charged whichever
	# mode came first for QEMU translating criu's and the kernel's paths and for the disk's first writes.
	rm -rf /var/nvwa-warm && mkdir -p /var/nvwa-warm
	bench_mark warm-dump-start
	CRIU_FAULT=130 criu dump -t "$(target_pid)" -D /var/nvwa-warm -o dump.log --leave-running "${CRIU_SHARED[@]}" ||
		guest_fail "warm-up criu dump failed: $(tail -5 /var/nvwa-warm/dump.log)"
	bench_mark warm-dump-end
	rm -rf /var/nvwa-warm
	sync
	write_restore_config "$pids" "$services"
	if ((LAZY)); then echo "enable_lazy_restore: true" >>/etc/nvwa/nvwa-restore.yaml; fi
	if ((PREDUMP)); then echo "enable_pre_dump: true" >>/etc/nvwa/nvwa-restore.yaml; fi
}

# by_hand: B, what an operator would type, with the kernel loaded first (out of the outage, as
# nvwa does) and the same criu options nvwa uses; ends the boot in kexec -e. Redis must not be
# restarted by systemd when criu's dump kills it.
by_hand() {
	local pid lazy_start="" lazy_opt=""
	pid=$(cat "$W/target.pid")
	if [[ $WORKLOAD == redis ]]; then
		mkdir -p /run/systemd/system/redis-test.service.d
		printf '[Service]\nRestart=no\n' >/run/systemd/system/redis-test.service.d/bench.conf
		systemctl daemon-reload
	fi
	if ((LAZY)); then
		# criu lazy-pages -d returns once it listens; the restore then connects to it.
		lazy_start="/usr/sbin/criu lazy-pages -D $HAND_D -o lazy-pages.log -d; "
		lazy_opt=" --lazy-pages"
	fi
	guest_kexec_load "$KVER_NEW"
	rm -rf "$HAND" && mkdir -p "$HAND"
	cat >/etc/systemd/system/bench-hand-restore.service <<UNIT
[Unit]
Description=benchmark: the by-hand restore, as early as nvwa.service starts
DefaultDependencies=no
After=local-fs.target systemd-journald.socket systemd-sysctl.service systemd-udev-trigger.service
Before=sysinit.target
ConditionPathExists=$HAND_D/inventory.img

[Service]
Type=oneshot
RemainAfterExit=yes
KillMode=none
Environment=CRIU_FAULT=130
ExecStart=/bin/sh -c 'echo "NVWA-GUEST boot=$((NVWA_BOOT + 1)) bench b-restore-start rt=\$\$(date +%%s.%%N)" >/dev/console; ${lazy_start}/usr/sbin/criu restore -D $HAND_D -o restore.log --restore-detached ${CRIU_SHARED[*]} --manage-cgroups=ignore${lazy_opt}; rc=\$\$?; echo "NVWA-GUEST boot=$((NVWA_BOOT + 1)) bench b-restore-end rc=\$\$rc rt=\$\$(date +%%s.%%N)" >/dev/console'

[Install]
WantedBy=sysinit.target
UNIT
	systemctl enable -q bench-hand-restore.service
	local chain=()
	if ((PREDUMP)); then
		# One round while it runs (the workload is idle after writing: a second would write nothing),
		# in nvwa's mode; then the final dump writes only what changed since, against it.
		mkdir -p "$HAND/pre" "$HAND_D"
		bench_mark b-predump-start
		CRIU_FAULT=130 criu pre-dump -t "$pid" -D "$HAND/pre" -o pre-dump.log --track-mem --pre-dump-mode=read ||
			guest_fail "by-hand criu pre-dump failed: $(tail -5 "$HAND/pre/pre-dump.log")"
		sync # on disk before the freeze, as nvwa flushes each round
		bench_mark b-predump-end
		chain=(--track-mem --prev-images-dir ../pre)
	fi
	settle_disk
	bench_mark b-dump-start
	CRIU_FAULT=130 criu dump -t "$pid" -D "$HAND_D" -o dump.log "${CRIU_SHARED[@]}" "${chain[@]}" ||
		guest_fail "by-hand criu dump failed: $(tail -5 "$HAND_D/dump.log")"
	bench_mark b-dump-end
	sync
	bench_mark b-synced
	guest_result image_bytes_b "$(du -sb "$HAND" | cut -f1)"
	kexec -e
	guest_fail "kexec -e returned"
}

# by_hand_restored: B's restore unit ran and brought the workload back, intact.
by_hand_restored() {
	local pid
	cp "$HAND_D/restore.log" "$NVWA_RESULTS/hand-restore.log" 2>/dev/null || true
	[[ $(systemctl show -p ActiveState --value bench-hand-restore.service) == active ]] ||
		guest_fail "the by-hand restore unit did not run: $(systemctl status bench-hand-restore --no-pager | tail -5)"
	pid=$(cat "$W/target.pid")
	[[ -d /proc/$pid ]] || guest_fail "the by-hand restore did not bring pid $pid back: $(tail -5 "$NVWA_RESULTS/hand-restore.log")"
	if [[ $WORKLOAD == redis ]]; then guest_wait 30 redis-cli ping >/dev/null || guest_fail "by-hand restored redis does not answer"; fi
	verify_workload b
	if ((LAZY)); then
		# Its lazy-pages daemon must have finished before its images go (else the pages not yet copied read as zeros).
		# (Anchored: the waiting shell's own command line holds the words too.)
		guest_wait 600 sh -c '! pgrep -f "^/usr/sbin/criu lazy-pages" >/dev/null' || guest_fail "the by-hand lazy-pages daemon did not finish"
	fi
	systemctl disable -q bench-hand-restore.service
	rm -rf "$HAND"
}

# cold: C, a normal reboot, the workload started from scratch by systemd at boot. Redis gets its
# keys back from an RDB saved here (not timed: a graceful stop of a persistent Redis would write
# it at shutdown, which only lengthens the cold path).
cold() {
	if [[ $WORKLOAD == mem ]]; then
		cat >/etc/systemd/system/bench-memhog.service <<UNIT
[Unit]
Description=benchmark: the memory workload started from scratch

[Service]
ExecStart=/usr/bin/python3 $T/memhog.py $SIZE $W/memhog-cold.log

[Install]
WantedBy=multi-user.target
UNIT
		systemctl enable -q bench-memhog.service
	else
		redis-cli SAVE >/dev/null || guest_fail "redis SAVE failed"
		systemctl unmask -q redis-test.service 2>/dev/null || true
		systemctl enable -q redis-test.service
	fi
	sync
	bench_mark c-reboot
	systemctl reboot
	exit 75
}

expect_kernel() { [[ $(uname -r) == "$1" ]] || guest_fail "boot $boot runs $(uname -r), expected $1"; }

stage=$((boot - WARM))
if ((stage <= 0)); then
	# Warm-up: to the new kernel, then back to the old one.
	bench_mark "warm-$boot"
	if ((boot == 1)); then guest_kexec_load "$KVER_NEW"; else guest_kexec_load "$KVER_OLD"; fi
	sync
	kexec -e
	guest_fail "kexec -e returned"
fi
case $ORDER:$stage in
ab:1)
	setup
	# criu's first run after boot probes the kernel (seconds under TCG); nvwa's preflight runs
	# it before anything is frozen, and so does this check, for both A and B alike.
	nvwa_update "$KVER_NEW" a
	;;
ab:2)
	bench_mark a-boot2-runner
	expect_kernel "$KVER_NEW"
	nvwa_restored 1
	nvwa_update "$KVER_OLD" a2
	;;
ab:3)
	bench_mark a2-boot3-runner
	expect_kernel "$KVER_OLD"
	nvwa_restored 2
	by_hand
	;;
ab:4)
	bench_mark b-boot4-runner
	expect_kernel "$KVER_NEW"
	by_hand_restored
	cold
	;;
ba:1)
	setup
	by_hand
	;;
ba:2)
	bench_mark b-boot2-runner
	expect_kernel "$KVER_NEW"
	by_hand_restored
	nvwa_update "$KVER_OLD" a2
	;;
ba:3)
	bench_mark a2-boot3-runner
	expect_kernel "$KVER_OLD"
	nvwa_restored 1
	nvwa_update "$KVER_NEW" a
	;;
ba:4)
	bench_mark a-boot4-runner
	expect_kernel "$KVER_NEW"
	nvwa_restored 2
	cold
	;;
*:5)
	bench_mark c-boot5-runner
	if [[ $WORKLOAD == mem ]]; then
		guest_wait $((900 + SIZE / 4)) grep -q '^ready' "$W/memhog-cold.log" || guest_fail "memhog did not start from scratch"
		ready=$(awk '/^ready/ {print $2; exit}' "$W/memhog-cold.log")
	else
		guest_wait 600 redis_test_active || guest_fail "redis-test did not start"
		[[ $(redis-cli DBSIZE) -ge $SIZE ]] || guest_fail "cold redis holds $(redis-cli DBSIZE) keys, not $SIZE"
		ready=$(date -d "$(systemctl show -P ActiveEnterTimestamp --timestamp=us+utc redis-test.service)" +%s.%N)
	fi
	guest_result c_ready_rt "$ready"
	bench_mark c-done
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot (order $ORDER)"
	;;
esac
