#!/bin/bash
# Scenario "arm64": nvwa's arm64 build moves a counter (a pids target) and Redis (a Type=notify
# service with its keys, serving a TCP peer outside the guest) from Debian's arm64 6.1 kernel to 6.12
# inside `qemu-system-aarch64 -M virt -cpu max`, with the network carried over (restore_net), after a
# refused update has rolled back. The image has no kexec-tools.
#
# What it proves, beyond the x86_64 scenarios:
#   - the aarch64 RPM installs and its executable (ELF machine AArch64) runs;
#   - the native loader: Debian's arm64 kernels are raw arm64 Images built without
#     CONFIG_KEXEC_FILE, so nvwa loads the new one with kexec_load (104) itself, building the device
#     tree, the segment layout and the entry stub (src/kexec/arm64/). strace on the daemon shows the
#     call with its four segments; `nvwa check`, the daemon's log and `nvwa status` name the loader;
#   - the refused update unwraps a gzip'd kernel, loads it natively, and unloads it on rollback
#     (kexec_load with no segments) while every target runs on;
#   - the orderly jump (systemd's kexec) starts the new kernel from nvwa's stub with nvwa's tree: it
#     booted with linux,booted-from-kexec in /chosen, its command line, the fresh kaslr-seed (which
#     the kernel zeroes once read) and KASLR on;
#   - after the jump: the counter counts on at its old pid, Redis has its keys and MainPID, the host
#     peer's connection carries its second INCR on the same socket, nd0 and its addresses are back.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1

# trace_daemon FILE: strace nvwa's daemon (its main thread, where bun:ffi makes the calls; not -f:
# criu, its child, ptraces the targets itself) for the kexec and reboot syscalls.
trace_daemon() {
	local pid
	pid=$(systemctl show -p MainPID --value nvwa.service)
	((pid > 0)) || guest_fail "nvwa.service has no MainPID"
	strace -qq -e trace=kexec_load,kexec_file_load,reboot -o "$1" -p "$pid" &
	guest_wait 10 grep -q 'TracerPid:.*[1-9]' "/proc/$pid/status" || guest_fail "strace did not attach to the daemon ($pid)"
}

case $boot in
1)
	[[ $(uname -m) == aarch64 ]] || guest_fail "this scenario needs the arm64 image (build-image.sh arm64); running on $(uname -m)"
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result arch "$(uname -m)"
	guest_result kernel_before "$(uname -r)"
	guest_result kaslr_before "$(kaslr_state)"

	# The kernels as Debian ships them: raw arm64 Images ("ARM\x64" at offset 56), no kexec_file_load.
	for v in "$KVER_OLD" "$KVER_NEW"; do
		magic=$(od -An -c -j56 -N4 "/boot/vmlinuz-$v" | tr -d ' ')
		[[ $magic == 'ARMd' ]] || guest_fail "/boot/vmlinuz-$v is not a raw arm64 Image (bytes 56..59: $magic)"
		grep -qx '# CONFIG_KEXEC_FILE is not set' "/boot/config-$v" ||
			guest_fail "$v has CONFIG_KEXEC_FILE: $(grep KEXEC_FILE "/boot/config-$v")"
	done
	guest_result kernel_format "raw arm64 Image, CONFIG_KEXEC_FILE not set"
	# No kexec-tools: whatever loads the kernel is nvwa's own.
	if command -v kexec >/dev/null || [[ -e /usr/sbin/kexec ]]; then guest_fail "kexec-tools is installed in the arm64 image"; fi
	guest_result kexec_tools absent

	install_nvwa
	elf=$(od -An -tu2 -j18 -N2 /usr/bin/nvwa | tr -d ' ')
	guest_result nvwa_elf_machine "$elf"
	((elf == 183)) || guest_fail "/usr/bin/nvwa has ELF machine $elf, not 183 (AArch64)"
	guest_result nvwa_version "$(nvwa --version 2>&1 | head -1)"
	guest_mark nvwa-runs

	eth0_up
	mkdir -p "$W"
	rm -f "$W"/*.log
	start_redis_test 20000 "before-$KVER_OLD"
	high_pids 31000
	start_detached counter python3 "$T/counter.py" "$W/counter.log"
	guest_wait 20 test -s "$W/counter.log" || guest_fail "counter did not start: $(cat "$W/counter.out")"
	pid=$(cat "$W/counter.pid")
	guest_result counter_pid "$pid"
	host_peer_first
	ip link add nd0 type dummy
	ip link set nd0 up
	ip addr add 10.123.0.1/24 dev nd0
	ip route add 10.124.0.0/16 via 10.123.0.254 dev nd0

	write_restore_config "[$pid]" "[redis-test]" true

	# nvwa check runs its probes in this process: strace names the syscalls by the aarch64 table.
	# Not -f: criu check (a child) ptraces processes itself, which fails under a tracer.
	guest_mark check-start
	rc=0
	strace -qq -e trace=kexec_file_load,kexec_load,reboot -o "$NVWA_RESULTS/check.strace" \
		nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check.txt" 2>&1 || rc=$?
	guest_mark check-done
	((rc == 0)) || guest_fail "nvwa check failed ($rc): $(cat "$NVWA_RESULTS/check.txt")"
	probe=$(grep -m1 'kexec_file_load(' "$NVWA_RESULTS/check.strace" | sed 's/^[0-9]* *//') ||
		guest_fail "strace saw no kexec_file_load call from nvwa check: $(head -5 "$NVWA_RESULTS/check.strace")"
	guest_result check_probe "$probe"
	[[ $probe == *"= -1 ENOSYS"* ]] || guest_fail "the kexec_file_load probe did not get ENOSYS: $probe"
	loader_row=$(grep -m1 'kexec loader' "$NVWA_RESULTS/check.txt") || guest_fail "nvwa check has no 'kexec loader' row: $(cat "$NVWA_RESULTS/check.txt")"
	guest_result check_loader "$(echo "$loader_row" | tr -s ' ' | cut -c1-240)"
	[[ $loader_row == *"kexec_load: "* ]] || guest_fail "nvwa check does not choose the native kexec_load: $loader_row"

	trace_daemon "$NVWA_RESULTS/daemon.strace"

	# A refused update first, to a gzip'd copy of the new kernel (the form many distributions ship
	# arm64 kernels in): nvwa unwraps it and loads it with kexec_load; then criu cannot dump the
	# blocker (a perf_event fd), so the update rolls back: the kernel is unloaded again (kexec_load
	# with no segments) and the frozen counter and Redis resume.
	gzv=$KVER_NEW-gz
	gzip -1 -c "/boot/vmlinuz-$KVER_NEW" >"/boot/vmlinuz-$gzv"
	ln -sf "initrd.img-$KVER_NEW" "/boot/initrd.img-$gzv"
	high_pids 32000
	start_detached blocker python3 "$T/blocker.py" "$W/blocker.log"
	guest_wait 20 test -s "$W/blocker.log" || guest_fail "blocker did not start: $(cat "$W/blocker.out")"
	blocker=$(cat "$W/blocker.pid")
	sed -i "s/^pids: .*/pids: [$pid, $blocker]/" /etc/nvwa/nvwa-restore.yaml
	redis_pid=$(cat "$W/redis.pid")
	guest_mark rollback-start
	rc=0
	nvwa update "$gzv" >"$NVWA_RESULTS/update-rollback.txt" 2>&1 || rc=$?
	guest_mark rollback-done
	guest_result rollback_rc "$rc"
	((rc == 1)) || guest_fail "the update to $gzv exited $rc, expected 1 (rolled back): $(tail -5 "$NVWA_RESULTS/update-rollback.txt")"
	unwrap=$(grep -m1 -o "loaded with kexec_load (.*)" "$NVWA_RESULTS/update-rollback.txt") ||
		guest_fail "the refused update did not load $gzv with kexec_load: $(head -8 "$NVWA_RESULTS/update-rollback.txt")"
	guest_result rollback_loaded "$unwrap"
	[[ $unwrap == *gzip*"arm64 Image"* ]] || guest_fail "$gzv was not unwrapped from gzip: $unwrap"
	grep -q "$blocker" "$NVWA_RESULTS/update-rollback.txt" || guest_fail "the refusal does not name the undumpable pid $blocker"
	[[ $(cat /sys/kernel/kexec_loaded) == 0 ]] || guest_fail "a kernel is still loaded after the rollback"
	guest_result rollback_phase "$(nvwa status --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("phase"))')"
	before=$(wc -l <"$W/counter.log")
	sleep 1
	(($(wc -l <"$W/counter.log") > before)) || guest_fail "the counter is not running after the rollback"
	[[ $(systemctl is-active redis-test.service) == active && $(systemctl show -p MainPID --value redis-test.service) == "$redis_pid" ]] ||
		guest_fail "redis-test is not running at its pid after the rollback"
	[[ $(redis-cli GET marker) == "before-$KVER_OLD" ]] || guest_fail "redis lost its marker in the rollback"
	assert_no_dropins
	kill "$blocker"
	rm -f "/boot/vmlinuz-$gzv" "/boot/initrd.img-$gzv"
	sed -i "s/^pids: .*/pids: [$pid]/" /etc/nvwa/nvwa-restore.yaml
	# What strace saw of the rollback: the load (segments and the arch flag) and the unload.
	grep -m1 'kexec_load(' "$NVWA_RESULTS/daemon.strace" >/dev/null || guest_fail "strace saw no kexec_load from the daemon: $(head -5 "$NVWA_RESULTS/daemon.strace")"
	guest_result rollback_strace "$(grep 'kexec_load(' "$NVWA_RESULTS/daemon.strace" | sed 's/^[0-9]* *//' | tr '\n' '|' | cut -c1-600)"

	# The orderly jump: systemd stops the units, then kexecs into what nvwa loaded.
	guest_update "$KVER_NEW"
	;;
2)
	guest_arrived "$KVER_NEW"
	guest_result loader "$(json_get "$NVWA_RESULTS/status.json" 'j.get("loader")')"
	guest_result target_phase "$(json_get "$NVWA_RESULTS/status.json" '",".join(t["phase"] for t in j["targets"])')"
	guest_result downtime_ms "$(json_get "$NVWA_RESULTS/status.json" '",".join("%s=%s" % (t["name"], t.get("downtimeMs")) for t in j["targets"])')"
	guest_result phases "$(json_get "$NVWA_RESULTS/status.json" '" ".join("%s=%s" % (p["name"], p["ms"]) for p in j["phases"])')"

	# The old boot's strace of the daemon: the load that made this jump, and no reboot by the daemon
	# (an orderly jump is systemd's).
	guest_result jump_strace "$(grep 'kexec_load(' "$NVWA_RESULTS/daemon.strace" | tail -1 | sed 's/^[0-9]* *//' | cut -c1-600)"
	# The daemon's log of the old boot: loader, why, and where each segment went.
	journalctl -b -1 -o short-monotonic --no-pager _SYSTEMD_UNIT=nvwa.service >"$NVWA_RESULTS/nvwa-boot1.txt" 2>&1 || true
	guest_result journal_loader "$(grep -o 'with kexec_load: .*' "$NVWA_RESULTS/nvwa-boot1.txt" | tail -1 | cut -c1-240)"
	guest_result journal_segments "$(grep -o 'kexec_load segments: .*' "$NVWA_RESULTS/nvwa-boot1.txt" | tail -1 | cut -c1-500)"

	# This kernel was started by nvwa's stub with nvwa's tree.
	[[ -e /proc/device-tree/chosen/linux,booted-from-kexec ]] || guest_fail "/chosen has no linux,booted-from-kexec: not nvwa's device tree"
	guest_result dt_bootargs "$(tr -d '\0' </proc/device-tree/chosen/bootargs)"
	[[ $(tr -d '\0' </proc/device-tree/chosen/bootargs) == "$(cat /proc/cmdline)" ]] || guest_fail "/chosen/bootargs is not the command line"
	# nvwa's kaslr-seed arrived and was used: the kernel zeroes the property once it has read it
	# (arch/arm64/kernel/pi/kaslr_early.c). KASLR itself could also come from the CPU's RNDR.
	seed=$(od -An -tx1 /proc/device-tree/chosen/kaslr-seed 2>/dev/null | tr -d ' \n') || seed=missing
	guest_result kaslr_seed "${seed:-missing}"
	[[ $seed == 0000000000000000 ]] || guest_fail "/chosen/kaslr-seed is '${seed:-missing}', not the 8 zero bytes of a consumed seed"
	guest_result kaslr_after "$(kaslr_state)"
	[[ $(kaslr_state) == "KASLR enabled" ]] || guest_fail "KASLR is off after the jump ($(kaslr_state))"

	counter_kept
	redis_kept 20000
	host_peer_kept

	# restore_net: the dummy link, its address and route are back.
	ip -o addr show dev nd0 >"$NVWA_RESULTS/nd0.txt" 2>&1 || guest_fail "link nd0 was not restored"
	grep -q "10.123.0.1/24" "$NVWA_RESULTS/nd0.txt" || guest_fail "10.123.0.1/24 missing on nd0: $(cat "$NVWA_RESULTS/nd0.txt")"
	ip route show 10.124.0.0/16 | grep -q "via 10.123.0.254" || guest_fail "route 10.124.0.0/16 via 10.123.0.254 missing: $(ip route)"
	guest_result net "nd0 10.123.0.1/24, route 10.124.0.0/16"

	assert_no_dropins
	guest_result dropins none
	cp "$W"/*.log "$NVWA_RESULTS/" 2>/dev/null || true
	cp -r /var/log/nvwa "$NVWA_RESULTS/nvwa-logs" 2>/dev/null || true
	guest_mark scenario-passed
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
