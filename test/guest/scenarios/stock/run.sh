#!/bin/bash
# Scenario "stock": services exactly as Debian ships them, across a real kernel upgrade (#13).
# Boot 1 (old kernel): nginx.service (Type=forking, PIDFile=/run/nginx.pid, a master and its
# workers) serving a page, and mosquitto.service (Type=notify, the MQTT broker) holding a retained
# message in memory; lighttpd.service (Type=simple, the small web server of embedded and edge
# devices; its port moved to 8080 in its own config, the unit untouched) serving the same page; all
# unmodified, their output going to the journal (no output setting).
# `nvwa update <new kernel>` (the orderly jump). Boot 2 (new kernel): all three active under
# systemd with their old pids, nginx's workers the same processes, the pages served, the retained
# message there; no drop-in left.
set -euo pipefail
. "$NVWA_GUEST_LIB"
. /usr/local/lib/nvwa-test/common.sh
boot=$1

# http_get: the page nginx serves on 127.0.0.1:80, its first line.
http_get() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=5).read().decode().splitlines()[0])' "${1:-80}"; }
UNITS=(nginx mosquitto lighttpd)
workers() { pgrep -P "$(systemctl show -p MainPID --value nginx.service)" | sort -n | tr '\n' ' '; }
retained() { timeout 10 mosquitto_sub -h 127.0.0.1 -t edge/state -C 1 -W 5; }

case $boot in
1)
	[[ $(uname -r) == "$KVER_OLD" ]] || guest_fail "boot 1 runs $(uname -r), expected $KVER_OLD"
	guest_result kernel_before "$(uname -r)"
	mkdir -p "$W"
	echo "<h1>kept across the jump $(cat /proc/sys/kernel/random/uuid)</h1>" >/var/www/html/index.html
	high_pids 35000
	systemctl start nginx.service || guest_fail "nginx did not start: $(systemctl status --no-pager nginx 2>&1 | tail -5)"
	high_pids 35500
	systemctl start mosquitto.service || guest_fail "mosquitto did not start: $(systemctl status --no-pager mosquitto 2>&1 | tail -5)"
	sed -i 's/^server.port .*/server.port = 8080/' /etc/lighttpd/lighttpd.conf
	high_pids 36000
	systemctl start lighttpd.service || guest_fail "lighttpd did not start: $(systemctl status --no-pager lighttpd 2>&1 | tail -5)"
	guest_wait 30 http_get >/dev/null || guest_fail "nginx does not serve"
	guest_wait 30 http_get 8080 >/dev/null || guest_fail "lighttpd does not serve on 8080"
	http_get >"$W/page"
	[[ $(http_get 8080) == "$(cat "$W/page")" ]] || guest_fail "lighttpd serves another page than nginx"
	systemctl show -p MainPID --value lighttpd.service >"$W/lighttpd.pid"
	systemctl show -p MainPID --value nginx.service >"$W/nginx.pid"
	workers >"$W/nginx.workers"
	[[ -n $(cat "$W/nginx.workers") ]] || guest_fail "nginx has no workers"
	systemctl show -p MainPID --value mosquitto.service >"$W/mosquitto.pid"
	# A retained message, in the broker's memory only (persistence writes it at shutdown or every
	# autosave_interval, 30 min: it is on disk only if the broker was restarted).
	msg="retained-$(cat /proc/sys/kernel/random/uuid)"
	guest_wait 30 mosquitto_pub -h 127.0.0.1 -t edge/state -r -m "$msg" || guest_fail "mosquitto_pub failed"
	echo "$msg" >"$W/retained"
	[[ $(retained) == "$msg" ]] || guest_fail "the retained message does not come back before the jump"
	for u in "${UNITS[@]}"; do guest_result "${u}_pid_before" "$(cat "$W/$u.pid")"; done
	guest_result nginx_workers_before "$(cat "$W/nginx.workers")"
	write_services_config nginx.service mosquitto.service lighttpd.service
	nvwa check "$KVER_NEW" >"$NVWA_RESULTS/check.txt" 2>&1 || guest_fail "nvwa check failed: $(cat "$NVWA_RESULTS/check.txt")"
	guest_update "$KVER_NEW"
	;;
2)
	ON_ARRIVED=save_criu_logs guest_arrived "$KVER_NEW"
	fails=()
	for u in "${UNITS[@]}"; do
		state=$(systemctl show -p ActiveState --value "$u.service")/$(systemctl show -p SubState --value "$u.service")
		main=$(systemctl show -p MainPID --value "$u.service")
		guest_result "${u}_state" "$state"
		guest_result "${u}_mainpid" "$main"
		[[ $state == active/running ]] || fails+=("$u is $state")
		[[ $main == "$(cat "$W/$u.pid")" ]] || fails+=("$u: MainPID is $main, before the jump $(cat "$W/$u.pid")")
	done
	guest_result nginx_workers_after "$(workers)"
	[[ $(workers) == "$(cat "$W/nginx.workers")" ]] || fails+=("nginx's workers are '$(workers)', before '$(cat "$W/nginx.workers")'")
	page=$(http_get 2>&1) || true
	guest_result page "$page"
	[[ $page == "$(cat "$W/page")" ]] || fails+=("nginx serves '$page'")
	page8080=$(http_get 8080 2>&1) || true
	guest_result page_lighttpd "$page8080"
	[[ $page8080 == "$(cat "$W/page")" ]] || fails+=("lighttpd serves '$page8080'")
	got=$(retained 2>&1) || true
	guest_result retained "$got"
	[[ $got == "$(cat "$W/retained")" ]] || fails+=("mosquitto's retained message is '$got', not '$(cat "$W/retained")'")
	((${#fails[@]} == 0)) || guest_fail "$(printf '%s; ' "${fails[@]}")"
	assert_no_dropins
	guest_mark scenario-passed
	exit 0
	;;
*)
	guest_fail "unexpected boot $boot"
	;;
esac
