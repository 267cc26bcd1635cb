#!/bin/bash
# Scenario "arm64": nvwa's arm64 build moves a counter (a pids target) from Debian's arm64 6.1 kernel
# to 6.12 inside `qemu-system-aarch64 -M virt -cpu max` (run on an arm64 image: build-image.sh arm64).
#
# What it proves, beyond the x86_64 scenarios:
#   - the aarch64 RPM installs and its executable (ELF machine AArch64) runs;
#   - its syscall numbers: strace (which decodes numbers with the aarch64 table) shows `nvwa check`
#     probing kexec_file_load (294) and getting ENOSYS, and `nvwa update --fast` ends the boot with
#     reboot(LINUX_REBOOT_CMD_KEXEC) (142): nothing else would jump without an orderly shutdown;
#   - the fallback loader: Debian's arm64 kernels are raw arm64 Images built without
#     CONFIG_KEXEC_FILE, so nvwa loads the new one with `kexec_exe -c` (kexec-tools, kexec_load), and
#     says so in `nvwa check`, in the daemon's log and in `nvwa status` (loader);
#   - after the jump: uname -r is the 6.12 one, the counter counts on at its old pid without a reset,
#     the update's phase is restored and no drop-in is left.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1

# json_get FILE EXPR: a field of a JSON file, EXPR in Python over `j`; empty when missing.
json_get() {
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"j": j})
print("" if v is None else v)' "$1" "$2" 2>/dev/null || true
}

case $boot in
1)
	[[ $(uname -m) == aarch64 ]] || guest_fail "this scenario needs the arm64 image (build-image.sh arm64); running on $(uname -m)"
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result arch "$(uname -m)"
	guest_result kernel_before "$(uname -r)"

	# The kernels as Debian ships them: raw arm64 Images ("ARM\x64" at offset 56), no kexec_file_load.
	for v in "$KVER_OLD" "$KVER_NEW"; do
		magic=$(od -An -c -j56 -N4 "/boot/vmlinuz-$v" | tr -d ' ')
		[[ $magic == 'ARMd' ]] || guest_fail "/boot/vmlinuz-$v is not a raw arm64 Image (bytes 56..59: $magic)"
		grep -qx '# CONFIG_KEXEC_FILE is not set' "/boot/config-$v" ||
			guest_fail "$v has CONFIG_KEXEC_FILE: $(grep KEXEC_FILE "/boot/config-$v")"
	done
	guest_result kernel_format "raw arm64 Image, CONFIG_KEXEC_FILE not set"

	install_nvwa
	elf=$(od -An -tu2 -j18 -N2 /usr/bin/nvwa | tr -d ' ')
	guest_result nvwa_elf_machine "$elf"
	((elf == 183)) || guest_fail "/usr/bin/nvwa has ELF machine $elf, not 183 (AArch64)"
	guest_result nvwa_version "$(nvwa --version 2>&1 | head -1)"
	guest_mark nvwa-runs

	mkdir -p "$W"
	rm -f "$W"/*.log
	high_pids 31000
	start_detached counter python3 "$T/counter.py" "$W/counter.log"
	guest_wait 20 test -s "$W/counter.log" || guest_fail "counter did not start: $(cat "$W/counter.out")"
	pid=$(cat "$W/counter.pid")
	guest_result counter_pid "$pid"

	write_restore_config "[$pid]" "[]"

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
	guest_result check_loader "$(echo "$loader_row" | tr -s ' ' | cut -c1-200)"
	[[ $loader_row == *"kexec_exe -c"* ]] || guest_fail "nvwa check does not choose kexec_exe -c: $loader_row"

	# A refused update first, to a gzip'd copy of the new kernel (the form many distributions ship
	# arm64 kernels in): nvwa unwraps it into a memfd (memfd_create, 279 on arm64) that kexec -c
	# loads from /proc/<pid>/fd/N; then criu cannot dump the blocker (a perf_event fd), so the update
	# rolls back: the kernel is unloaded again with `kexec -u` and the frozen counter resumes.
	gzv=$KVER_NEW-gz
	gzip -1 -c "/boot/vmlinuz-$KVER_NEW" >"/boot/vmlinuz-$gzv"
	ln -sf "initrd.img-$KVER_NEW" "/boot/initrd.img-$gzv"
	high_pids 32000
	start_detached blocker python3 "$T/blocker.py" "$W/blocker.log"
	guest_wait 20 test -s "$W/blocker.log" || guest_fail "blocker did not start: $(cat "$W/blocker.out")"
	blocker=$(cat "$W/blocker.pid")
	sed -i "s/^pids: .*/pids: [$pid, $blocker]/" /etc/nvwa/nvwa-restore.yaml
	guest_mark rollback-start
	rc=0
	nvwa update "$gzv" >"$NVWA_RESULTS/update-rollback.txt" 2>&1 || rc=$?
	guest_mark rollback-done
	guest_result rollback_rc "$rc"
	((rc == 1)) || guest_fail "the update to $gzv exited $rc, expected 1 (rolled back): $(tail -5 "$NVWA_RESULTS/update-rollback.txt")"
	unwrap=$(grep -m1 -o "loaded with kexec_exe -c (.*)" "$NVWA_RESULTS/update-rollback.txt") ||
		guest_fail "the refused update did not load $gzv with kexec_exe -c: $(head -8 "$NVWA_RESULTS/update-rollback.txt")"
	guest_result rollback_loaded "$unwrap"
	[[ $unwrap == *gzip*"arm64 Image"* ]] || guest_fail "$gzv was not unwrapped from gzip: $unwrap"
	grep -q "$blocker" "$NVWA_RESULTS/update-rollback.txt" || guest_fail "the refusal does not name the undumpable pid $blocker"
	[[ $(cat /sys/kernel/kexec_loaded) == 0 ]] || guest_fail "a kernel is still loaded after the rollback"
	guest_result rollback_phase "$(nvwa status --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("phase"))')"
	before=$(wc -l <"$W/counter.log")
	sleep 1
	(($(wc -l <"$W/counter.log") > before)) || guest_fail "the counter is not running after the rollback"
	assert_no_dropins
	kill "$blocker"
	rm -f "/boot/vmlinuz-$gzv" "/boot/initrd.img-$gzv"
	sed -i "s/^pids: .*/pids: [$pid]/" /etc/nvwa/nvwa-restore.yaml

	# The fast jump: nvwa's daemon syncs and calls reboot(KEXEC) itself.
	guest_update --fast "$KVER_NEW"
	;;
2)
	guest_arrived "$KVER_NEW"
	guest_result loader "$(json_get "$NVWA_RESULTS/status.json" 'j.get("loader")')"
	guest_result target_phase "$(json_get "$NVWA_RESULTS/status.json" '",".join(t["phase"] for t in j["targets"])')"
	guest_result downtime_ms "$(json_get "$NVWA_RESULTS/status.json" 'j["targets"][0].get("downtimeMs")')"
	guest_result phases "$(json_get "$NVWA_RESULTS/status.json" '" ".join("%s=%s" % (p["name"], p["ms"]) for p in j["phases"])')"

	# The daemon's log of the old boot says which loader it used and that it made the fast jump.
	journalctl -b -1 -o short-monotonic --no-pager _SYSTEMD_UNIT=nvwa.service >"$NVWA_RESULTS/nvwa-boot1.txt" 2>&1 || true
	loaded=$(grep -m1 -o 'loaded with kexec_exe -c.*' "$NVWA_RESULTS/nvwa-boot1.txt" | cut -c1-200) || loaded=""
	guest_result journal_loader "$loaded"
	jump=$(grep -m1 -o 'jumping to .*' "$NVWA_RESULTS/nvwa-boot1.txt" | cut -c1-200) || jump=""
	guest_result journal_jump "$jump"

	# The counter continues from its frozen value, at its old pid.
	pid=$(cat "$W/counter.pid")
	[[ -d /proc/$pid && $(cat "/proc/$pid/comm") == python3 ]] || guest_fail "counter not at its old pid $pid"
	before=$(wc -l <"$W/counter.log")
	sleep 1
	after=$(wc -l <"$W/counter.log")
	((after > before)) || guest_fail "counter is not counting after restore"
	assert_counter_continuous
	guest_result counter_last "$after"
	guest_result counter_pid_after "$pid"

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
