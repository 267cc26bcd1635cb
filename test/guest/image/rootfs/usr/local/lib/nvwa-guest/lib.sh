# Helpers for scenario scripts running inside the nvwa test guest: `. "$NVWA_GUEST_LIB"`.
# The runner exports NVWA_BOOT, NVWA_RESULTS, NVWA_STATE, KVER_OLD, KVER_NEW (see runner).

# guest_mark TEXT: a timestamped marker on the serial console; run-guest.sh puts host time on it and
# turns "NVWA-GUEST boot=N <name> ..." lines into timings. Also logged with the guest's uptime.
guest_mark() {
	local up
	read -r up _ </proc/uptime
	echo "NVWA-GUEST boot=$NVWA_BOOT $* uptime=$up" >/dev/console
	echo "boot=$NVWA_BOOT uptime=$up $*" >>"$NVWA_RESULTS/marks.txt"
}

# guest_result KEY VALUE: one line KEY=VALUE in results/result.env, for the host-side check.
guest_result() {
	echo "$1=$2" >>"$NVWA_RESULTS/result.env"
}

# guest_fail MESSAGE: say why and exit non-zero (the runner records it and powers off).
guest_fail() {
	echo "FAIL: $*" | tee -a "$NVWA_RESULTS/failures.txt" >&2
	exit 1
}

# guest_initrd VERSION: the initramfs nvwa would pick (/boot/initramfs-V.img first, Debian's second).
guest_initrd() {
	local f
	for f in "/boot/initramfs-$1.img" "/boot/initrd.img-$1"; do
		[[ -e $f ]] && { echo "$f"; return 0; }
	done
	return 1
}

# guest_kexec_load VERSION: load /boot/vmlinuz-VERSION + its initrd with kexec_file_load (kexec -s),
# reusing the running cmdline, and check the kernel reports it as loaded.
guest_kexec_load() {
	local initrd
	initrd=$(guest_initrd "$1") || guest_fail "no initrd for $1"
	kexec -s -l "/boot/vmlinuz-$1" --initrd="$initrd" --reuse-cmdline || guest_fail "kexec -s -l $1 failed"
	[[ $(cat /sys/kernel/kexec_loaded) == 1 ]] || guest_fail "kexec_loaded is not 1 after loading $1"
}

# guest_wait SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds; non-zero on timeout.
guest_wait() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}
