#!/bin/bash
# smoke-kexec, host side: run by run-scenario.sh after the guest powered off, with the results dir as
# $1 and KVER_OLD/KVER_NEW in the environment. The guest already failed on anything it could see;
# this checks the evidence independently of the guest's own verdict.
set -euo pipefail
results=$1
declare -A r
while IFS='=' read -r k v; do r[$k]=$v; done <"$results/result.env"

fail() { echo "smoke-kexec: FAIL: $*" >&2; exit 1; }
[[ ${r[boot1_kernel]:-} == "$KVER_OLD" ]] || fail "boot 1 kernel '${r[boot1_kernel]:-}' != $KVER_OLD"
[[ ${r[boot2_kernel]:-} == "$KVER_NEW" ]] || fail "boot 2 kernel '${r[boot2_kernel]:-}' != $KVER_NEW"
[[ ${r[boot1_kernel]} != "${r[boot2_kernel]}" ]] || fail "uname -r did not change across the kexec"
[[ ${r[kexec_loaded]:-} == 1 ]] || fail "kexec_loaded was '${r[kexec_loaded]:-}'"
# Two boots, and the second one is a new boot (different boot_id), not the old one carrying on.
mapfile -t ids < <(sed -n 's/.* boot_id=//p' "$results/boots.txt")
((${#ids[@]} == 2)) || fail "expected 2 boots, saw ${#ids[@]}"
[[ ${ids[0]} != "${ids[1]}" ]] || fail "same boot_id in both boots"
((r[counter_after_restore] > r[counter_at_dump])) ||
	fail "counter after restore (${r[counter_after_restore]:-}) not past ${r[counter_at_dump]:-}"
[[ ${r[counter_pid]} == "${r[counter_pid_after_restore]}" ]] || fail "restored counter has another pid"
echo "smoke-kexec: ok: ${r[boot1_kernel]} -> ${r[boot2_kernel]}, counter ${r[counter_at_dump]} -> ${r[counter_after_restore]} (pid ${r[counter_pid]})"
