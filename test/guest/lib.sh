# shellcheck shell=bash
# Shared helpers for the host-side scripts of the nvwa guest harness (sourced, not run).

NVWA_GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NVWA_GUEST_CACHE=${NVWA_GUEST_CACHE:-/var/cache/nvwa-guest}

# Under `set -e`, say which command failed instead of exiting silently.
trap 'echo "${0##*/}: line $LINENO: command failed (status $?): $BASH_COMMAND" >&2' ERR

log() { echo "[$(date +%T)] ${0##*/}: $*" >&2; }
die() { echo "${0##*/}: error: $*" >&2; exit 1; }

need_cmds() { # need_cmds CMD...: fail early, pointing at setup-host.sh
	local c missing=()
	for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
	((${#missing[@]} == 0)) || die "missing ${missing[*]}: run $NVWA_GUEST_DIR/setup-host.sh"
}

# now_us: microseconds since the epoch, without forking (bash 5 EPOCHREALTIME).
now_us() { local t=${EPOCHREALTIME/./}; echo "$((10#$t))"; }
# fmt_us MICROSECONDS: "12.345" seconds.
fmt_us() { printf '%d.%03d' $(($1 / 1000000)) $(($1 / 1000 % 1000)); }

# stamp_lines [START_US]: copy stdin to stdout, each line prefixed with "[   s.mmm] ", the seconds since
# START_US (default: now). Pure bash (no fork per line); carriage returns are dropped.
stamp_lines() {
	local start=${1:-$(now_us)} line t
	while IFS= read -r line || [[ -n $line ]]; do
		t=${EPOCHREALTIME/./}
		t=$((10#$t - start))
		printf '[%4d.%03d] %s\n' $((t / 1000000)) $((t / 1000 % 1000)) "${line//$'\r'/}"
	done
}
