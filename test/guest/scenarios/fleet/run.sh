#!/bin/bash
# Scenario "fleet": the Ansible role (ansible/) rolls this node from the old kernel to the newest
# installed one, driven from the host over SSH (test/guest/fleet.test.ts; QEMU forwards a host port
# to the guest's sshd on the restricted user-mode network). The guest prepares and then waits; the
# play does everything else: installs nvwa with apt from the signed repo at /mnt/apt, writes the
# configs, `nvwa check --latest --json`, `nvwa update --latest` through Ansible's reboot module (a
# new boot id), `nvwa status --wait --json`. A second play must change nothing. The host then
# touches /var/lib/nvwa-test/ansible-done and boot 2 checks what the plays left.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1
DONE=/var/lib/nvwa-test/ansible-done

case $boot in
1)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result kernel_before "$(uname -r)"
	! command -v nvwa >/dev/null || guest_fail "nvwa is installed before the play: the play must install it"
	# The NIC to the host. Nothing configures it at boot: after the jump, nvwa's restore_net (set by
	# the play's variables) brings the address and the route back, and with them Ansible's SSH.
	guest_wait 60 test -e /sys/class/net/eth0 || guest_fail "no eth0 (run-guest.sh --hostfwd): $(ls /sys/class/net)"
	ip addr add 10.0.2.15/24 dev eth0
	ip link set eth0 up
	ip route add default via 10.0.2.2 dev eth0
	systemctl enable -q --now ssh.service
	guest_wait 60 sh -c 'ss -ltn | grep -q ":22 "' || guest_fail "sshd does not listen: $(systemctl status ssh.service --no-pager | tail -5)"
	# The service the play keeps: Redis, Type=notify, 10 000 keys.
	mkdir -p "${DONE%/*}"
	start_redis_test 10000 "before-$(uname -r)"
	cat /proc/sys/kernel/random/boot_id >"$W/boot_id"
	sync
	guest_mark ansible-go
	# The play jumps this machine; this script ends with it (status 75). The host stops QEMU itself
	# when a play fails, so this wait is only a guard.
	sleep 2000
	guest_fail "no jump within 2000 s of ansible-go"
	;;
2)
	guest_result kernel_after "$(uname -r)"
	[[ $(uname -r) == "$KVER_NEW" ]] || guest_fail "boot 2 runs $(uname -r), expected $KVER_NEW"
	[[ $(cat /proc/sys/kernel/random/boot_id) != "$(cat "$W/boot_id")" ]] || guest_fail "the boot id did not change"
	guest_mark waiting-for-plays
	guest_wait 1800 test -e "$DONE" || guest_fail "the host never finished its plays"
	nvwa status --json >"$NVWA_RESULTS/status.json" 2>&1 || true
	nvwa status >"$NVWA_RESULTS/status.txt" 2>&1 || true
	guest_result phase "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["phase"])' "$NVWA_RESULTS/status.json")"
	# Installed by apt from the signed repo, dependency resolved: criu is Debian's.
	guest_result nvwa_package "$(dpkg-query -W -f='${Package} ${Version} ${Status}' nvwa)"
	apt-cache policy nvwa >"$NVWA_RESULTS/apt-policy.txt" 2>&1 || true
	grep -q "file:/mnt/apt" "$NVWA_RESULTS/apt-policy.txt" || guest_fail "nvwa's apt candidate is not from file:/mnt/apt: $(cat "$NVWA_RESULTS/apt-policy.txt")"
	# Redis: the same process, its keys and the marker from the old kernel.
	[[ $(systemctl is-active redis-test.service) == active ]] || guest_fail "redis-test is $(systemctl is-active redis-test.service)"
	[[ $(systemctl show -p MainPID --value redis-test.service) == "$(cat "$W/redis.pid")" ]] || guest_fail "redis-test's MainPID changed"
	guest_result redis_keys "$(redis-cli DBSIZE)"
	[[ $(redis-cli GET marker) == "before-$KVER_OLD" ]] || guest_fail "redis marker is '$(redis-cli GET marker)'"
	assert_no_dropins
	# A kernel loaded by hand, not by nvwa, turns the next `systemctl kexec` (or reboot, on newer
	# systemd) into a jump with nothing checkpointed: `nvwa check` must warn about it.
	kexec -s -l "/boot/vmlinuz-$KVER_OLD" --initrd="$(guest_initrd "$KVER_OLD")" --reuse-cmdline || guest_fail "kexec -l by hand failed"
	nvwa check --json >"$NVWA_RESULTS/check-foreign.json" 2>&1 || true
	kexec -u
	guest_result foreign_kernel "$(python3 -c 'import json,sys
r = [c for c in json.load(open(sys.argv[1]))["checks"] if c["id"] == "kexec.support"][0]
print(r["status"], r["detail"])' "$NVWA_RESULTS/check-foreign.json" 2>&1 | head -1)"
	save_criu_logs
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
