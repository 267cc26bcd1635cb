#!/bin/bash
# Scenario "upgrade": a live kernel upgrade with nvwa. Boot 1 (old kernel): a counter (pid) and Redis
# as a Type=notify service with 100 000 keys; `nvwa update --latest`, run the way kured runs it. Boot 2 (new kernel): every
# target is back, in the state it had.
#
# TCP, two connections to Redis: one from a peer on the host (tcp-peer.ts via QEMU's restricted
# user-mode network, see scenario.conf), which outlives the jump as a client machine would and sends
# one INCR per boot on the same socket; and one over loopback from the tcp client, itself a target,
# so both of its ends are restored. nvwa holds both connections' packets back after the jump until
# every target is back (criu's dump-time lock dies with the old kernel).
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1

case $boot in
1)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result kernel_before "$(uname -r)"
	eth0_up
	start_workloads
	host_peer_first
	# restore_net: configuration nvwa must carry over the jump (a dummy link is not recreated by
	# anything on the new boot; only nvwa's saved snapshot brings it back).
	ip link add nd0 type dummy
	ip link set nd0 up
	ip addr add 10.123.0.1/24 dev nd0
	ip -6 addr add fd00:123::1/64 dev nd0 nodad
	ip route add 10.124.0.0/16 via 10.123.0.254 dev nd0
	NVWA_TEST_RESTORE_NET=true write_config "$(cat "$W/counter.pid")" "$(cat "$W/tcp.pid")"
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check.txt" 2>&1 || guest_fail "nvwa check failed: $(cat "$NVWA_RESULTS/check.txt")"
	# The orderly jump: systemd stops the units, then kexecs. Started as kured starts its
	# --reboot-command: from another mount namespace (kured's pod), entering the host's with nsenter;
	# --latest picks $KVER_NEW, the newest kernel in /boot.
	NVWA_UPDATE="unshare -m --propagation private -- nsenter -m/proc/1/ns/mnt -- /usr/bin/nvwa update" guest_update --latest
	;;
2)
	guest_arrived "$KVER_NEW"

	counter_kept
	# Redis: every key, the marker, active under systemd with the restored pid.
	redis_kept 100000
	host_peer_kept
	# The loopback connection: both ends restored (client at its old pid), it carries another INCR.
	[[ $(cat /proc/"$(cat "$W/tcp.pid")"/comm) == python3 ]] || guest_fail "the tcp client is not at its old pid"
	kill -USR1 "$(cat "$W/tcp.pid")"
	guest_wait 30 grep -q "INCR -> 2 " "$W/tcp.log" || guest_fail "the loopback connection does not carry data after the jump: $(tail -3 "$W/tcp.log")"
	guest_result tcp_loopback "$(tail -1 "$W/tcp.log")"
	# The daemon held the connections' packets back from before the network came back until the
	# targets were restored (criu's own lock died with the old kernel).
	journalctl -b -u nvwa --no-pager -o cat >"$NVWA_RESULTS/nvwa-journal.txt" 2>&1 || true
	grep -Eq "holding back the packets of [0-9]+ TCP connection" "$NVWA_RESULTS/nvwa-journal.txt" || guest_fail "nvwa did not lock the TCP connections after the jump: $(grep -i tcp "$NVWA_RESULTS/nvwa-journal.txt" | tail -3)"
	grep -q "TCP lock removed" "$NVWA_RESULTS/nvwa-journal.txt" || guest_fail "nvwa did not remove its TCP lock: $(grep -i tcp "$NVWA_RESULTS/nvwa-journal.txt" | tail -3)"
	guest_result tcp_lock "$(grep -Eo "holding back the packets of [0-9]+ TCP connection" "$NVWA_RESULTS/nvwa-journal.txt" | head -1)"

	# restore_net: the dummy link, both addresses and the route are back; the snapshot is consumed.
	ip -o addr show dev eth0 >"$NVWA_RESULTS/eth0.txt" 2>&1 || true
	ip -o addr show dev nd0 >"$NVWA_RESULTS/nd0.txt" 2>&1 || guest_fail "link nd0 was not restored: $(journalctl -u nvwa --no-pager | grep -i network | tail -3)"
	grep -q "10.123.0.1/24" "$NVWA_RESULTS/nd0.txt" || guest_fail "10.123.0.1/24 missing on nd0: $(cat "$NVWA_RESULTS/nd0.txt")"
	grep -q "fd00:123::1/64" "$NVWA_RESULTS/nd0.txt" || guest_fail "fd00:123::1/64 missing on nd0: $(cat "$NVWA_RESULTS/nd0.txt")"
	ip route show 10.124.0.0/16 | grep -q "via 10.123.0.254" || guest_fail "route 10.124.0.0/16 via 10.123.0.254 missing: $(ip route)"
	[[ ! -e /var/nvwa/running/net.json && -e /var/nvwa/running/net.json.consumed ]] || guest_fail "the network snapshot was not consumed"
	guest_result net "nd0 $(tr '\n' ' ' <"$NVWA_RESULTS/nd0.txt" | tr -s ' ' | cut -c1-200)"

	assert_no_dropins
	cp "$W"/*.log "$NVWA_RESULTS/" 2>/dev/null || true
	cp -r /var/log/nvwa "$NVWA_RESULTS/nvwa-logs" 2>/dev/null || true
	guest_mark scenario-passed
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
