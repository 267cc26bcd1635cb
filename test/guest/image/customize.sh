#!/bin/bash
# mmdebstrap --customize-hook for the nvwa test guest (called by build-image.sh).
# Runs on the host as root with $1 = the guest root tree; mmdebstrap has mounted /proc, /sys and /dev in
# it and disabled service starts (policy-rc.d), so `chroot "$1" apt-get/systemctl` work offline.
set -euo pipefail

root=$1
here=$(dirname "$(readlink -f "$0")")
in_guest() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
# amd64 or arm64 (build-image.sh x86_64|arm64); on arm64 every command in the chroot runs under
# qemu-user-static (binfmt_misc).
debarch=$(in_guest dpkg --print-architecture)

# 1. Our files first: the initramfs-tools config (MODULES=list) must be in place before a kernel's
#    postinst builds its initrd, or every initrd is built twice, the first time with MODULES=most.
#    tar --no-overwrite-dir: existing directories keep the owner and mode the packages gave them.
tar -C "$here/rootfs" --owner=0 --group=0 -cf - . | tar -C "$root" -xf - --no-overwrite-dir

# 2. Two kernels with different `uname -r`, the cloud flavour (virtio, no hardware drivers: small).
#    6.1 from bookworm(-security); then the same metapackage from bookworm-backports pulls in 6.12.
#    Upgrading the metapackage leaves the 6.1 image package installed; mark it manual so that nothing
#    autoremoves it. arm64: the same pair of cloud-arm64 kernels (raw arm64 Images, no kexec_file_load).
in_guest apt-get install -y -q "linux-image-cloud-$debarch"
in_guest apt-get install -y -q -t bookworm-backports "linux-image-cloud-$debarch"
# shellcheck disable=SC2016 # expanded by the guest's sh
in_guest sh -c 'apt-mark manual $(dpkg-query -W -f="\${Package}\n" "linux-image-*-cloud-$1")' sh "$debarch" >/dev/null

mapfile -t versions < <(for f in "$root"/boot/vmlinuz-*; do echo "${f##*/vmlinuz-}"; done | sort -V)
if ((${#versions[@]} != 2)); then
	echo "customize: expected 2 kernels in /boot, found: ${versions[*]}" >&2
	exit 1
fi
kold=${versions[0]} knew=${versions[1]}

for v in "$kold" "$knew"; do
	[[ -s $root/boot/initrd.img-$v ]] || { echo "customize: no initrd for $v" >&2; exit 1; }
	# nvwa looks for /boot/initramfs-<ver>.img first (RPM distros), Debian's initrd.img-<ver> second;
	# offer both names, as a real machine might.
	ln -sf "initrd.img-$v" "$root/boot/initramfs-$v.img"
done

mkdir -p "$root/etc/nvwa-guest"
printf 'KVER_OLD=%s\nKVER_NEW=%s\n' "$kold" "$knew" >"$root/etc/nvwa-guest/kernels.env"

# 3. kexec-tools (amd64 only), preseeded so that Debian's kexec-load script (run at shutdown) does NOT
#    load the default kernel over the one nvwa (or a test) loaded: LOAD_KEXEC=false in
#    /etc/default/kexec. The arm64 image has none: nvwa loads arm64 kernels itself (kexec_load), and
#    the arm64 scenarios prove it with no kexec-tools to fall back on.
if [[ $debarch == amd64 ]]; then
	echo "kexec-tools kexec-tools/load_kexec boolean false" | in_guest debconf-set-selections
	in_guest apt-get install -y -q kexec-tools
	if ! grep -qx 'LOAD_KEXEC=false' "$root/etc/default/kexec"; then
		echo "customize: /etc/default/kexec does not say LOAD_KEXEC=false:" >&2
		cat "$root/etc/default/kexec" >&2
		exit 1
	fi
elif [[ -e $root/usr/sbin/kexec ]]; then
	echo "customize: kexec-tools is in the $debarch image; it must not be" >&2
	exit 1
fi

# 4. Fast, quiet boots. Nothing periodic may run in the middle of a scenario (all timers masked); no
#    login prompts (nobody logs in; the serial console is the harness's log); Redis is installed for
#    scenarios but only runs when a scenario starts it.
#    e2scrub_reap cleans up after e2scrub, which never runs here (2+ s of every boot under TCG).
#    The modprobe@ units preload modules for loop devices, device mapper, DRM, FUSE, pstore and
#    configfs, and binfmt_misc is set up for foreign binaries: none of it is used by the scenarios,
#    and each costs 1-3 s of boot on the 6.12 kernel (xz-compressed modules) under TCG.
#    (Modules udev would autoload for nothing: image/rootfs/etc/modprobe.d/nvwa-guest.conf.)
masked=(
	getty.target e2scrub_reap.service
	modprobe@loop.service modprobe@dm_mod.service modprobe@drm.service modprobe@fuse.service
	modprobe@efi_pstore.service modprobe@configfs.service
	systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
)
timers=()
for f in "$root"/lib/systemd/system/*.timer; do timers+=("${f##*/}"); done
in_guest systemctl mask -q "${masked[@]}" "${timers[@]}"
in_guest systemctl disable -q redis-server.service
# sshd (the fleet scenario's Ansible), nginx, mosquitto and lighttpd (the stock-units scenario): x86_64 only,
# started only where a scenario starts them.
for u in ssh nginx mosquitto lighttpd; do
	[[ ! -e "$root/lib/systemd/system/$u.service" ]] || in_guest systemctl disable -q "$u.service"
done
# podman (x86_64, the containers scenario): its socket, podman-restart.service and
# podman-auto-update.service (each a podman run at every boot, seconds under TCG) are enabled by
# the package; the scenario enables the first two itself.
for u in podman.socket podman-restart.service podman-auto-update.service; do
	[[ ! -e "$root/lib/systemd/system/$u" ]] || in_guest systemctl disable -q "$u"
done
in_guest systemctl enable -q nvwa-guest-runner.service

# Persistent journal, so the runner can hand the host the logs of every boot of a scenario.
mkdir -p "$root/var/log/journal"
mkdir -p "$root/payload"

echo "customize: kernels $kold (old) and $knew (new); masked: ${masked[*]} ${timers[*]}"
