#!/bin/bash
# run-guest.sh — boot the nvwa test guest once under QEMU (TCG) with a payload disk; return its verdict.
#
#   run-guest.sh --image DIR [--payload DIR] [--kernel old|new|VERSION] [--timeout SEC]
#                [--out DIR] [--serial FILE] [--append "ARGS"] [--mem SIZE] [--smp N] [--cpu MODEL]
#                [--keep-disk] [--hostfwd HOSTPORT:GUESTPORT] [--allow-reboot] [--uefi]
#                [--disk-grow MIB]
#
#   --image DIR     a cache directory printed by build-image.sh (default: run build-image.sh)
#   --payload DIR   (alias --inject) a tree that becomes the second disk, LABEL=NVWAPAYLOAD, mounted on
#                   /payload in the guest: run.sh, rootfs/ ... (contract: image/rootfs/usr/local/lib/
#                   nvwa-guest/runner). Without it the guest just boots and idles until the timeout.
#   --kernel K      kernel for the cold boot: old (default, the 6.1), new (the 6.12) or a `uname -r`
#   --timeout SEC   QEMU is killed after SEC seconds (default 600): exit status 124
#   --out DIR       run directory (default /tmp/nvwa-guest-runs/<time>-XXXX), which receives:
#                     serial.log   the console, each line stamped with seconds since QEMU started
#                     results/     /payload/results read back from the payload disk (debugfs, no mount)
#                     timings.txt  boot and kexec timings derived from serial.log
#                     qemu.stderr, qemu.cmdline; payload.img and root.qcow2 only with --keep-disk
#   --serial FILE   also copy the stamped serial log to FILE
#   --append ARGS   extra kernel command line (kept across kexec by `--reuse-cmdline`/nvwa)
#   --hostfwd H:G   give the guest a NIC (eth0, virtio) on QEMU's user-mode network with restrict=on:
#                   nothing in the guest can reach the host or beyond, and the only way in is the
#                   host's 127.0.0.1:H forwarded to the guest's port G. A peer on the host reached this
#                   way lives in QEMU, so its connection survives the guest's kernel jumps. The guest
#                   configures the address itself (10.0.2.15/24, gateway 10.0.2.2); without this
#                   option the guest has no NIC at all (-nic none).
#   --disk-grow MIB the root disk (an overlay) is MIB larger than the image; the filesystem is not:
#                   a scenario that needs the room runs resize2fs on / itself (the benchmark's 3 GiB
#                   pre-dumps; the cached image stays small for everyone else)
#   --allow-reboot  a firmware reboot boots -kernel (the old kernel) again instead of ending QEMU:
#                   for the benchmark's cold path only; scenarios keep -no-reboot (see below)
#   --uefi          arm64 images only: boot through UEFI firmware (EDK2's ArmVirtQemu from Debian's
#                   qemu-efi-aarch64, /usr/share/qemu-efi-aarch64/QEMU_EFI.fd, given with -bios); the
#                   kernel and initrd still come from -kernel/-initrd, and EDK2 starts the kernel
#                   through its EFI stub: /sys/firmware/efi exists and /sys/firmware/fdt is the tree
#                   the stub passed (/chosen with linux,uefi-* properties; the initrd is found through
#                   an EFI table, not linux,initrd-*). EDK2 adds "initrd=initrd" to the command line.
#                   QEMU's virt board gives EDK2 ACPI tables by default, and EDK2 then offers the OS
#                   ACPI only: the kernel runs on ACPI, its fdt is the stub's empty tree (/chosen
#                   only, ~500 bytes) and /proc/device-tree does not exist. NVWA_GUEST_QEMU_ARGS=
#                   "-M acpi=off" (merged into -M) makes EDK2 pass QEMU's device tree instead (6.1's
#                   stub keeps its /memory node; the kernel takes memory from the EFI memory map).
#                   The firmware adds ~1 s before the kernel under TCG. x86_64 images: exit 125.
#   --cpu MODEL     QEMU -cpu (default max,-erms; arm64 images: max,pauth-impdef=on; env NVWA_GUEST_CPU);
#                   NVWA_GUEST_QEMU and NVWA_GUEST_QEMU_ARGS replace the QEMU binary (default by the
#                   image's arch: qemu-system-x86_64 or qemu-system-aarch64) / add arguments (e.g. -L DIR)
#
# Exit status: the scenario's (results/status, 0 = passed), 124 on timeout, 125 on harness errors,
# 1 when the guest stopped without a verdict (e.g. panic, or a reboot instead of a kexec).
#
# Disks: the root is a qcow2 overlay backed by the cached raw image (created in ~20 ms and only as
# large as what the guest writes; the cached image is never modified, so parallel runs are safe). The
# payload is a fresh ext4 image made with `mkfs.ext4 -d` (no mount): cleaner than writing files into
# the root image with debugfs one by one, and results come back on the same small disk.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
# Harness errors exit 125 (the scenario's own statuses are 0..123, timeouts 124).
trap 'echo "${0##*/}: line $LINENO: command failed (status $?): $BASH_COMMAND" >&2; exit 125' ERR

image='' payload='' kernel=old timeout=600 out='' serial_copy='' append='' mem=2G smp=2 keep_disk=0 hostfwd='' no_reboot=(-no-reboot) uefi=0
cpu=${NVWA_GUEST_CPU:-} # default per architecture, below
while (($#)); do
	case $1 in
	--image) image=$2; shift ;;
	--payload | --inject) payload=$2; shift ;;
	--kernel) kernel=$2; shift ;;
	--timeout) timeout=$2; shift ;;
	--out) out=$2; shift ;;
	--serial) serial_copy=$2; shift ;;
	--append) append=$2; shift ;;
	--mem) mem=$2; shift ;;
	--smp) smp=$2; shift ;;
	--cpu) cpu=$2; shift ;;
	--keep-disk) keep_disk=1 ;;
	--hostfwd) hostfwd=$2; shift ;;
	--allow-reboot) no_reboot=() ;;
	--uefi) uefi=1 ;;
	--disk-grow) disk_grow=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "run-guest.sh: unknown argument '$1' (see --help)" >&2; exit 125 ;;
	esac
	shift
done

need_cmds qemu-img mkfs.ext4 debugfs e2fsck timeout
[[ -n $image ]] || image=$("$NVWA_GUEST_DIR/build-image.sh")
[[ -e $image/.complete ]] || { echo "run-guest.sh: $image is not a complete image (build-image.sh)" >&2; exit 125; }
# shellcheck source=/dev/null
. "$image/kernels.env"
# The image's architecture (build-image.sh writes <image>/arch; images without it are x86_64) picks
# the QEMU binary, machine, default CPU, console and the kernel parameters only one arch has.
guest_arch=x86_64
[[ ! -f $image/arch ]] || guest_arch=$(<"$image/arch")
case $guest_arch in
x86_64) qemu_default=qemu-system-x86_64 machine=() cpu_default=max,-erms console=ttyS0 arch_append=' clearcpuid=cx16' ;;
arm64) qemu_default=qemu-system-aarch64 machine=(-M "virt,gic-version=2") cpu_default=max,pauth-impdef=on console=ttyAMA0 arch_append='' ;;
*) echo "run-guest.sh: $image/arch says '$guest_arch' (x86_64 or arm64)" >&2; exit 125 ;;
esac
cpu=${cpu:-$cpu_default}
firmware=()
if ((uefi)); then
	[[ $guest_arch == arm64 ]] || { echo "run-guest.sh: --uefi is for arm64 images only; $image is $guest_arch (its guest boots -kernel directly)" >&2; exit 125; }
	efi_fd=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd
	[[ -r $efi_fd ]] || { echo "run-guest.sh: --uefi needs $efi_fd: apt-get install qemu-efi-aarch64 (build/dev.sh, setup-host.sh)" >&2; exit 125; }
	firmware=(-bios "$efi_fd")
fi
need_cmds "${NVWA_GUEST_QEMU:-$qemu_default}"
case $kernel in
old) kernel=$KVER_OLD ;;
new) kernel=$KVER_NEW ;;
esac
[[ -e $image/vmlinuz-$kernel ]] || { echo "run-guest.sh: no kernel $kernel in $image" >&2; exit 125; }
[[ -z $payload || -f $payload/run.sh ]] || { echo "run-guest.sh: $payload/run.sh missing" >&2; exit 125; }

if [[ -z $out ]]; then
	mkdir -p /tmp/nvwa-guest-runs
	out=$(mktemp -d "/tmp/nvwa-guest-runs/$(date +%Y%m%d-%H%M%S)-XXXX")
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/results" "$out/serial.log" "$out/timings.txt"

t_prep=$(now_us)
root_size=()
if [[ -n ${disk_grow:-} ]]; then root_size=("$(($(stat -c %s "$image/rootfs.img") + disk_grow * 1024 * 1024))"); fi
qemu-img create -q -f qcow2 -F raw -b "$image/rootfs.img" "$out/root.qcow2" "${root_size[@]}"
qarg() { echo "${1//,/,,}"; } # a path inside a QEMU -drive option: commas are doubled
drives=(-drive "file=$(qarg "$out/root.qcow2"),format=qcow2,if=virtio,cache=unsafe")
if [[ -n $payload ]]; then
	# Room for results (journals, logs); the scenario's own big files belong on the root disk.
	size_mib=$(($(du -sm --apparent-size "$payload" | cut -f1) + 256))
	rm -f "$out/payload.img"
	truncate -s "${size_mib}M" "$out/payload.img"
	mkfs.ext4 -q -F -L NVWAPAYLOAD -m 0 -E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
		-d "$payload" "$out/payload.img" "${size_mib}M"
	drives+=(-drive "file=$(qarg "$out/payload.img"),format=raw,if=virtio,cache=unsafe")
fi
nic=(-nic none)
if [[ -n $hostfwd ]]; then
	[[ $hostfwd =~ ^[0-9]+:[0-9]+$ ]] || { echo "run-guest.sh: --hostfwd wants HOSTPORT:GUESTPORT, got '$hostfwd'" >&2; exit 125; }
	nic=(-nic "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:${hostfwd%%:*}-:${hostfwd#*:}")
fi
t_boot=$(now_us)

# Why these options:
#   -accel tcg          KVM is not usable on these machines (see DESIGN.md §5)
#   -cpu max,-erms      without ERMS the kexec'd kernel clears pages without `rep stosb`, which TCG
#                       emulates slowly: post-kexec boots go from 3-5x to ~1.5x a cold boot
#   -nodefaults -display none -nic none   no VGA, no NIC, nothing but what we add (--hostfwd: one
#                       restricted user-mode NIC, see above)
#   -no-reboot          a firmware reboot (e.g. systemd falling back from a kexec with nothing
#                       loaded) ends QEMU instead of silently booting -kernel again
#   -kernel/-initrd     direct boot: no boot loader in the image; kexec goes /boot -> /boot
#   panic=-1            a panic reboots at once, which -no-reboot turns into a QEMU exit
#   fsck.mode=skip      every run starts from the same clean image
#   net.ifnames=0       the NIC stays eth0 on every boot: nvwa's restore_net matches links by name,
#                       and a udev rename racing the early restore would only add noise to the test
#   clearcpuid=cx16     the kernels must not use CMPXCHG16B: under TCG (QEMU 7.2 and 10.0 alike) it
#                       leaves garbage in EFLAGS now and then, and the 6.12 kernel's SLUB fast path
#                       (cmpxchg16b %gs:..; jne) then dies in kmem_cache_alloc with a double fault or a
#                       stray #DB within seconds of boot. Hiding CX16 from the CPU (-cpu max,-cx16)
#                       fixes the kernel too but breaks user space that needs x86-64-v2 (bun-compiled
#                       binaries such as nvwa die with SIGILL); clearcpuid only changes the kernel's view.
# arm64 (image/arch = arm64), instead:
#   -M virt,gic-version=2   QEMU's generic board, described to the kernel by a device tree (direct boot,
#                       no firmware: kexec-tools hands the next kernel /sys/firmware/fdt); GICv2 + v2m
#                       MSIs: GICv3's LPI tables could not be handed over a kexec without EFI.
#   -cpu max,pauth-impdef=on  every feature TCG has; pointer authentication with QEMU's cheap
#                       implementation-defined hash instead of QARMA, which TCG computes slowly
#   console=ttyAMA0     the board's PL011 UART; no clearcpuid (an x86 parameter)
#   -bios QEMU_EFI.fd   (--uefi) EDK2 loaded into the board's first flash bank, the second (variable
#                       store) left blank: no 64 MiB pflash copies to make per run, nothing kept between
#                       runs. EDK2 finds -kernel/-initrd/-append in fw_cfg and starts the kernel as an
#                       EFI application (its EFI stub), so the kernel sees an EFI boot.
qemu_bin=${NVWA_GUEST_QEMU:-$qemu_default}
read -r -a qemu_data <<<"${NVWA_GUEST_QEMU_ARGS:-}"
qemu=(
	"$qemu_bin" "${qemu_data[@]}" "${machine[@]}" "${firmware[@]}" -accel tcg -cpu "$cpu" -m "$mem" -smp "$smp"
	-nodefaults -display none "${nic[@]}" "${no_reboot[@]}"
	-kernel "$image/vmlinuz-$kernel" -initrd "$image/initrd.img-$kernel"
	-append "console=$console root=/dev/vda rw fsck.mode=skip net.ifnames=0 panic=-1$arch_append${append:+ $append}"
	"${drives[@]}"
	-chardev "stdio,id=console,signal=off" -serial chardev:console
)
printf '%q ' "${qemu[@]}" >"$out/qemu.cmdline"
echo >>"$out/qemu.cmdline"
log "booting $kernel (timeout ${timeout}s) -> $out"

exec {serial_fd}> >(stamp_lines "$t_boot" >"$out/serial.log")
stamper=$!
qemu_rc=0
timeout -k 10 "$timeout" "${qemu[@]}" </dev/null 1>&"$serial_fd" 2>"$out/qemu.stderr" || qemu_rc=$?
exec {serial_fd}>&-
wait "$stamper" || true # let the stamper drain what QEMU wrote last
t_end=$(now_us)
[[ -z $serial_copy ]] || cp "$out/serial.log" "$serial_copy"

# --- Results back from the payload disk, without mounting it. ---------------------------------------
status='' reason=''
if [[ -n $payload ]]; then
	# After a timeout the file system may not have been unmounted: replay its journal first.
	e2fsck -p "$out/payload.img" >/dev/null 2>&1 || true
	debugfs -R "rdump /results $out" "$out/payload.img" >/dev/null 2>"$out/debugfs.stderr" || true
	[[ -f $out/results/status ]] && status=$(<"$out/results/status")
	[[ -f $out/results/status.reason ]] && reason=$(<"$out/results/status.reason")
fi
((keep_disk)) || rm -f "$out/root.qcow2" "$out/payload.img"

# --- Timings, from the host-side stamps on the serial console. --------------------------------------
# boot N starts at the N-th "Linux version" banner; a kexec at "kexec_core: Starting new kernel";
# userspace is the runner's "NVWA-GUEST boot=N userspace" marker; other NVWA-GUEST markers (e.g. the
# scenario's guest_mark) are listed as they are.
awk -v prep="$(fmt_us $((t_boot - t_prep)))" -v total="$(fmt_us $((t_end - t_boot)))" '
	function t(line) { return substr(line, 2, index(line, "]") - 2) + 0 }
	/\] Linux version / { nk++; kernel[nk] = t($0); split($0, w, "Linux version "); split(w[2], v, " "); ver[nk] = v[1] }
	/Starting new kernel/ { jump[nk] = t($0) }
	/NVWA-GUEST boot=[0-9]+ / {
		n = $0; sub(/.*NVWA-GUEST boot=/, "", n); b = n + 0
		m = $0; sub(/.*NVWA-GUEST boot=[0-9]+ /, "", m)
		if (m ~ /^userspace /) user[b] = t($0)
		else { split(m, f, " "); marks = marks sprintf("mark_boot%d_%s=%.3f\n", b, f[1], t($0)) }
	}
	END {
		printf "disk_prep_s=%s\nqemu_total_s=%s\n", prep, total
		for (i = 1; i <= nk; i++) {
			printf "boot%d_kernel=%s\nboot%d_kernel_start_s=%.3f\n", i, ver[i], i, kernel[i]
			if (user[i] != "") printf "boot%d_userspace_s=%.3f\n", i, user[i]
			if (i == 1 && user[i] != "") printf "boot1_to_userspace_s=%.3f\n", user[i]
			if (i > 1 && jump[i-1] != "" && user[i] != "")
				printf "kexec%d_jump_to_userspace_s=%.3f\n", i - 1, user[i] - jump[i-1]
			if (jump[i] != "") printf "kexec%d_jump_s=%.3f\n", i, jump[i]
		}
		printf "%s", marks
	}' "$out/serial.log" >"$out/timings.txt"

summary=$(tr '\n' ' ' <"$out/timings.txt")
if [[ -n $status ]]; then
	log "guest verdict: status $status ($reason); $summary"
	exit "$status"
elif ((qemu_rc == 124 || qemu_rc == 137)); then
	log "TIMEOUT after ${timeout}s without a verdict; see $out/serial.log; $summary"
	exit 124
else
	why="qemu status $qemu_rc"
	grep -q 'Kernel panic' "$out/serial.log" && why="kernel panic"
	# -no-reboot: a firmware reboot (e.g. `systemctl kexec` with no kernel loaded) ends QEMU.
	grep -q 'reboot: Restarting system' "$out/serial.log" && why="the guest rebooted through the firmware (no kexec)"
	log "guest stopped ($why) without a verdict; see $out/serial.log; $summary"
	exit 1
fi
