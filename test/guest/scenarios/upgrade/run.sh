#!/bin/bash
# Scenario "upgrade": a live kernel upgrade with nvwa. Boot 1 (old kernel): a counter (pid) and Redis
# as a Type=notify service with 100 000 keys; `nvwa update <new kernel>`. Boot 2 (new kernel): every
# target is back, in the state it had.
#
# No TCP connection is carried here: both ends would be on this machine, and criu keeps a restored
# socket safe from resets only with the netfilter lock it set at dump time, which the jump erases,
# so the first end restored is reset by the second end's absent port. A peer that survives the
# jump (off the machine) is the real case; see the closing note of the guest issue.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1

case $boot in
1)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result kernel_before "$(uname -r)"
	start_workloads
	# restore_net: configuration nvwa must carry over the jump (a dummy link is not recreated by
	# anything on the new boot; only nvwa's saved snapshot brings it back).
	ip link add nd0 type dummy
	ip link set nd0 up
	ip addr add 10.123.0.1/24 dev nd0
	ip -6 addr add fd00:123::1/64 dev nd0 nodad
	ip route add 10.124.0.0/16 via 10.123.0.254 dev nd0
	NVWA_TEST_RESTORE_NET=true write_config "$(cat "$W/counter.pid")"
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check.txt" 2>&1 || guest_fail "nvwa check failed: $(cat "$NVWA_RESULTS/check.txt")"
	guest_mark update-start
	if ! nvwa update "$KVER_NEW" >"$NVWA_RESULTS/update.txt" 2>&1; then
		guest_fail "nvwa update failed: $(tail -5 "$NVWA_RESULTS/update.txt")"
	fi
	guest_mark update-returned
	# The orderly jump is under way (systemd is stopping units); the runner is next.
	exit 75
	;;
2)
	guest_mark after-jump
	guest_result kernel_after "$(uname -r)"
	[[ $(uname -r) == "$KVER_NEW" ]] || guest_fail "boot 2 runs $(uname -r), expected $KVER_NEW"
	phase=$(wait_for_restore)
	guest_result phase "$phase"
	[[ $phase == restored ]] || guest_fail "nvwa status says '$phase', not restored: $(cat "$NVWA_RESULTS/status.txt")"

	# The counter continues from its frozen value.
	before=$(wc -l <"$W/counter.log")
	sleep 1
	after=$(wc -l <"$W/counter.log")
	((after > before)) || guest_fail "counter is not counting after restore"
	assert_counter_continuous
	guest_result counter_last "$after"
	[[ $(cat /proc/"$(cat "$W/counter.pid")"/comm) == python3 ]] || guest_fail "counter not at its old pid"

	# Redis: every key, the marker from the old kernel, active under systemd with the restored pid.
	keys=$(redis-cli DBSIZE)
	guest_result redis_keys "$keys"
	((keys >= 100000)) || guest_fail "redis has $keys keys after restore"
	[[ $(redis-cli GET marker) == "before-$KVER_OLD" ]] || guest_fail "redis marker lost"
	[[ $(systemctl is-active redis-test.service) == active ]] || guest_fail "redis-test is not active: $(systemctl status redis-test --no-pager | tail -5)"
	mainpid=$(systemctl show -p MainPID --value redis-test.service)
	guest_result redis_mainpid "$mainpid"
	[[ $mainpid == "$(cat "$W/redis.pid")" ]] || guest_fail "redis MainPID is $mainpid, the restored pid is $(cat "$W/redis.pid")"


	# restore_net: the dummy link, both addresses and the route are back; the snapshot is consumed.
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
