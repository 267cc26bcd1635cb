#!/bin/bash
# Scenario "arm64-uefi": the arm64 guest booted through UEFI firmware (EDK2, run-guest.sh --uefi), as
# edge boards boot through UEFI or U-Boot's EFI, rather than by QEMU's -kernel. The firmware offers
# ACPI, so the kernel runs on ACPI and /sys/firmware/fdt is the EFI stub's tree: /chosen with the
# firmware's linux,uefi-* properties and nothing else (no /memory: RAM comes from the EFI memory map,
# no linux,initrd-*: the stub found the initrd through an EFI table). nvwa's native loader must hand
# the new kernel that tree with linux,uefi-* intact, or it would boot without the memory map, ACPI and
# runtime services. A counter (pids) is kept; the jump is the fast one (reboot(KEXEC) by the daemon).
# enable_pre_dump is on: arm64 has no soft-dirty, so nvwa check warns and the update says the
# counter is dumped in full.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1

# fdt_has NAME: the running kernel's boot tree holds a property NAME (property names are NUL-terminated
# strings in the blob's strings block).
fdt_has() { grep -qaF -- "$1" /sys/firmware/fdt; }

# firmware_facts PREFIX: what says this boot is a UEFI+ACPI one.
firmware_facts() {
	[[ -d /sys/firmware/efi ]] || guest_fail "$1: /sys/firmware/efi is missing: not an EFI boot"
	[[ -d /sys/firmware/acpi/tables ]] || guest_fail "$1: no ACPI tables"
	fdt_has linux,uefi-system-table || guest_fail "$1: /sys/firmware/fdt has no linux,uefi-system-table"
	fdt_has linux,uefi-mmap-start || guest_fail "$1: /sys/firmware/fdt has no linux,uefi-mmap-start"
	local log
	log=$(dmesg) # not `dmesg | grep -m1`: see kaslr_state in common.sh
	guest_result "$1_efi" "$(grep -m1 -o 'efi: EFI v[^ ]* by .*' <<<"$log" || echo '?')"
	guest_result "$1_fdt_bytes" "$(stat -c %s /sys/firmware/fdt)"
	guest_result "$1_runtime" "$(cat /sys/firmware/efi/runtime 2>/dev/null || ls /sys/firmware/efi | tr '\n' ' ')"
}

case $boot in
1)
	[[ $(uname -m) == aarch64 ]] || guest_fail "this scenario needs the arm64 image; running on $(uname -m)"
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result kernel_before "$(uname -r)"
	guest_result kaslr_before "$(kaslr_state)"
	firmware_facts before
	[[ ! -e /proc/device-tree ]] || guest_fail "/proc/device-tree exists: the kernel runs on a device tree, not ACPI"
	fdt_has linux,initrd-start && guest_fail "the stub's tree names an initrd (expected the EFI table)"
	install_nvwa
	mkdir -p "$W"
	rm -f "$W"/*.log
	high_pids 31000
	start_detached counter python3 "$T/counter.py" "$W/counter.log"
	guest_wait 20 test -s "$W/counter.log" || guest_fail "counter did not start: $(cat "$W/counter.out")"
	write_restore_config "[$(cat "$W/counter.pid")]" "[]"
	echo "enable_pre_dump: true" >>/etc/nvwa/nvwa-restore.yaml
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check.txt" 2>&1 || guest_fail "nvwa check failed: $(cat "$NVWA_RESULTS/check.txt")"
	guest_result check_loader "$(grep -m1 'kexec loader' "$NVWA_RESULTS/check.txt" | tr -s ' ' | cut -c1-200)"
	guest_result check_pre_dump "$(grep -m1 'pre-dump' "$NVWA_RESULTS/check.txt" | tr -s ' ' | cut -c1-240)"
	ON_UPDATE_FAIL=save_criu_logs guest_update --fast "$KVER_NEW"
	;;
2)
	guest_arrived "$KVER_NEW"
	guest_result loader "$(json_get "$NVWA_RESULTS/status.json" 'j.get("loader")')"
	guest_result update_pre_dump "$(grep -o 'no pre-dump: .*' "$NVWA_RESULTS/update.txt" | head -1 | cut -c1-240)"
	guest_result downtime_ms "$(json_get "$NVWA_RESULTS/status.json" 'j["targets"][0].get("downtimeMs")')"
	journalctl -b -1 -o cat --no-pager _SYSTEMD_UNIT=nvwa.service >"$NVWA_RESULTS/nvwa-boot1.txt" 2>&1 || true
	guest_result journal_segments "$(grep -o 'kexec_load segments: .*' "$NVWA_RESULTS/nvwa-boot1.txt" | tail -1 | cut -c1-500)"
	# Still a UEFI+ACPI machine after the jump: the firmware's tables reached the new kernel.
	firmware_facts after
	fdt_has linux,booted-from-kexec || guest_fail "/sys/firmware/fdt has no linux,booted-from-kexec: not nvwa's tree"
	fdt_has linux,initrd-start || guest_fail "nvwa's tree names no initrd"
	guest_result kaslr_after "$(kaslr_state)"
	[[ $(kaslr_state) == "KASLR enabled" ]] || guest_fail "KASLR is off after the jump ($(kaslr_state))"
	fdt_has kaslr-seed || guest_fail "nvwa's tree has no kaslr-seed"
	counter_kept
	assert_no_dropins
	guest_mark scenario-passed
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
