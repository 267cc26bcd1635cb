#!/bin/bash
# Scenario "dbus-stress" (issue 12): nvwa's D-Bus client against PID 1 under load. One boot, no
# nvwa install, no jump. nvwa-dbus-stress (test/guest/dbus-stress.ts, added by dbus-stress.test.ts)
# makes at least 2000 calls on /run/systemd/private, alternating fresh connections and one reused
# connection, with StartUnit jobs on a unit that does nothing, while alongside two CPU busy loops
# run and `systemctl daemon-reload` goes on in a loop. Fails if any call was left unanswered.
set -euo pipefail
. "$NVWA_GUEST_LIB"

[[ $1 == 1 ]] || guest_fail "the dbus-stress scenario has a single boot (this is boot $1)"
STRESS=/usr/local/bin/nvwa-dbus-stress
[[ -x $STRESS ]] || guest_fail "$STRESS is missing (dbus-stress.test.ts adds it)"
CALLS=2000

cat >/etc/systemd/system/nvwa-stress-noop.service <<'UNIT'
[Unit]
Description=nvwa dbus-stress: a start job that does nothing

[Service]
Type=oneshot
ExecStart=/bin/true
UNIT
systemctl daemon-reload

# The load: two busy loops (one per vCPU) and a daemon-reload 1 s after the previous one ended
# (each one's duration in reload-ms.txt).
load=()
for _ in 1 2; do
	sh -c 'while :; do :; done' &
	load+=($!)
done
reload_ms=$NVWA_RESULTS/reload-ms.txt
: >"$reload_ms"
(
	while :; do
		t=$(date +%s%N)
		systemctl daemon-reload || echo "daemon-reload failed ($?)" >&2
		echo $((($(date +%s%N) - t) / 1000000)) >>"$reload_ms"
		sleep 1
	done
) &
load+=($!)
stop_load() { kill "${load[@]}" 2>/dev/null || true; }
trap stop_load EXIT

guest_mark stress-start
t0=$(date +%s%N)
set +e
"$STRESS" --calls "$CALLS" --timeout-ms 25000 --job-unit nvwa-stress-noop.service --job-every 5 \
	>"$NVWA_RESULTS/dbus-stress.json" 2>"$NVWA_RESULTS/dbus-stress.err"
rc=$?
set -e
wall_ms=$((($(date +%s%N) - t0) / 1000000))
guest_result loadavg "$(cut -d' ' -f1-3 </proc/loadavg)"
stop_load
wait 2>/dev/null || true
guest_mark stress-end
guest_result stress_rc "$rc"
guest_result stress_wall_ms "$wall_ms"
guest_result reloads "$(wc -l <"$reload_ms")"
guest_result reload_ms_median "$(sort -n "$reload_ms" | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)] + 0}')"
guest_result reload_ms_max "$(sort -n "$reload_ms" | tail -1)"
((rc == 0)) || guest_fail "nvwa-dbus-stress exited $rc: $(tail -5 "$NVWA_RESULTS/dbus-stress.err")"

# One KEY=VALUE per figure (see Figures in dbus-stress.ts).
python3 - "$NVWA_RESULTS/dbus-stress.json" >>"$NVWA_RESULTS/result.env" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
for k in ("calls", "fresh", "reused", "ok", "unanswered", "errors", "connects", "connectFailures"):
    print(f"{k}={f[k]}")
for k, v in f["latencyMs"].items():
    print(f"latency_{k}_ms={v}")
print(f"jobs_started={f['jobs']['started']}")
print("jobs_results=" + ",".join(f"{k}:{v}" for k, v in sorted(f["jobs"]["results"].items())))
print("error_codes=" + ",".join(f"{k}:{v}" for k, v in sorted(f["errorCodes"].items())))
PY
. <(grep -E '^(calls|unanswered|connectFailures)=' "$NVWA_RESULTS/result.env")
((calls >= CALLS)) || guest_fail "only $calls calls were made"
((unanswered == 0)) || guest_fail "$unanswered of $calls calls to PID 1 got no reply: $(python3 -c 'import json,sys; print("; ".join(json.load(open(sys.argv[1]))["failures"][:5]))' "$NVWA_RESULTS/dbus-stress.json")"
((connectFailures == 0)) || guest_fail "$connectFailures fresh connections failed to authenticate"
guest_mark scenario-passed
exit 0
