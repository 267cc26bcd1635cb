#!/bin/bash
# build-image.sh [x86_64|arm64] — build (or reuse) the Debian bookworm guest image for nvwa's QEMU tests.
#
# Prints the cache directory on stdout (everything else goes to stderr):
#   <cache>/rootfs.img                 raw ext4 image of the root (/dev/vda); never written by runs
#   <cache>/vmlinuz-<ver>, initrd.img-<ver>   copies for QEMU direct boot (-kernel/-initrd)
#   <cache>/kernels.env                KVER_OLD=<6.1 ...> KVER_NEW=<6.12 ...>
#   <cache>/arch                       x86_64 or arm64: run-guest.sh picks QEMU, machine and console by it
#   <cache>/packages.txt, build.log, build-info.txt
# The cache directory is /var/cache/nvwa-guest/<arch>-<hash of the recipe>, the recipe being this script
# plus everything under image/. An unchanged recipe reuses the cached image in well under a second; a
# changed one rebuilds (~2-3 min, .debs are cached in /var/cache/nvwa-guest/debs).
#
# How: mmdebstrap makes the root tree (no loop mounts; it only mounts /proc, /sys, /dev inside the tree
# for the package scripts), image/customize.sh adds the kernels and our configuration, and
# `mkfs.ext4 -d` turns the tree into an image without mounting anything.
#
# arm64 (`build-image.sh arm64`, alias aarch64): the same recipe for Debian's arm64 port, built on this
# x86_64 host by running the arm64 package scripts under qemu-user-static through binfmt_misc (which
# this script mounts and registers when missing; 10-12 min on two shared cores instead of 1-2). Its
# .debs are cached apart, in <cache>/debs-arm64. No stock units or sshd; strace added; no kexec-tools.
# Its kernels are Debian's cloud-arm64 6.1 and 6.12: raw arm64 Images built without
# CONFIG_KEXEC_FILE, so the guest exercises nvwa's own kexec_load loader (scenarios/arm64*).
#
# Environment: NVWA_GUEST_CACHE (default /var/cache/nvwa-guest), NVWA_GUEST_MIRROR and
# NVWA_GUEST_SECURITY_MIRROR (default: the host's Debian mirrors from /etc/apt, else deb.debian.org),
# NVWA_GUEST_REBUILD=1 to ignore the cache.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

arch=${1:-x86_64}
case $arch in
x86_64 | amd64) arch=x86_64 debarch=amd64 debs=debs ;;
arm64 | aarch64) arch=arm64 debarch=arm64 debs=debs-arm64 ;;
*) die "unsupported architecture '$arch' (x86_64 or arm64)" ;;
esac
((EUID == 0)) || die "must run as root (mmdebstrap root mode, chroot)"
need_cmds mmdebstrap mkfs.ext4 sha256sum flock

# A foreign architecture's package scripts run in the chroot through binfmt_misc + qemu-user-static.
# The F flag of Debian's registration (/usr/lib/binfmt.d) opens the emulator now, so it works inside
# the chroot without a copy there. Nothing to do when the host already has it registered.
ensure_binfmt() { # ensure_binfmt QEMU_NAME (e.g. aarch64)
	local reg=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-$1.conf
	[[ -r $conf ]] || die "$conf missing: run $NVWA_GUEST_DIR/setup-host.sh (qemu-user-static)"
	[[ -e $reg/register ]] || mount -t binfmt_misc binfmt_misc "$reg" ||
		die "cannot mount binfmt_misc on $reg (needed to run $1 package scripts)"
	if [[ ! -e $reg/qemu-$1 ]]; then
		grep -v '^#' "$conf" >"$reg/register" || die "registering $conf with binfmt_misc failed"
		log "registered qemu-$1 with binfmt_misc"
	fi
	[[ $(head -1 "$reg/qemu-$1") == enabled ]] || die "binfmt_misc handler qemu-$1 is disabled"
}

# --- Which recipe: the hash covers this script and image/ (paths, modes, contents). ----------------
recipe_hash() {
	cd "$NVWA_GUEST_DIR"
	{
		echo "arch=$arch"
		find build-image.sh image -type f -print0 | sort -z |
			xargs -0 stat -c '%n %a' # names and modes (an executable bit matters)
		find build-image.sh image -type f -print0 | sort -z | xargs -0 sha256sum
	} | sha256sum | cut -c1-16
}
hash=$(recipe_hash)
key=$arch-$hash
dest=$NVWA_GUEST_CACHE/$key

if [[ -e $dest/.complete && ${NVWA_GUEST_REBUILD:-0} != 1 ]]; then
	log "cached: $dest"
	echo "$dest"
	exit 0
fi

mkdir -p "$NVWA_GUEST_CACHE/$debs"
# One build per architecture at a time (parallel scenario runs would otherwise build the same image
# twice); a slow arm64 build does not hold up an x86_64 one.
lock=.build.lock
[[ $arch == x86_64 ]] || lock=.build-$arch.lock
exec 9>"$NVWA_GUEST_CACHE/$lock"
flock 9
if [[ -e $dest/.complete && ${NVWA_GUEST_REBUILD:-0} != 1 ]]; then
	log "cached (built meanwhile): $dest"
	echo "$dest"
	exit 0
fi
[[ $arch == x86_64 ]] || ensure_binfmt aarch64 # only for a build: a cached image needs no emulator

# --- Mirrors: the host's own Debian mirror if it has one (CI machines may only reach that one). ----
host_uri() { # host_uri SUFFIX: first URI in the host's apt sources whose path ends in SUFFIX
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		grep -hE '^[[:space:]]*(deb|URIs:)[[:space:]]' "$f" || true
	done | grep -oE 'https?://[^][[:space:]]+' | sed 's:/*$::' | grep -m1 -E "$1\$" || true
}
mirror=${NVWA_GUEST_MIRROR:-$(host_uri /debian)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${NVWA_GUEST_SECURITY_MIRROR:-$(host_uri /debian-security)}
security=${security:-http://deb.debian.org/debian-security}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || die "$keyring missing: run $NVWA_GUEST_DIR/setup-host.sh"
# bookworm-backports is given to mmdebstrap only (it ends up in the guest's sources.list, never the
# host's); it has priority 100 there, so only the explicit `-t bookworm-backports` in customize.sh
# takes anything from it.
sources=(
	"deb [signed-by=$keyring] $mirror bookworm main"
	"deb [signed-by=$keyring] $mirror bookworm-updates main"
	"deb [signed-by=$keyring] $security bookworm-security main"
	"deb [signed-by=$keyring] $mirror bookworm-backports main"
)

# systemd as init (+udev for /dev/disk/by-label, dbus for logind, as on a real machine); the workloads
# and tools of the scenarios; initramfs-tools + zstd installed *before* the kernels (customize.sh) so
# our MODULES=list config is used for their first and only initrd build. debconf: customize.sh
# preseeds kexec-tools with it. The kernels and kexec-tools themselves come from customize.sh.
# rpm: the scenarios install nvwa from its signed RPM repo, as the README's Install section says
# (rpm --import, rpm -K, rpm -i --nodeps: Debian's rpm database does not know criu is installed).
# openssh-server: the fleet scenario's Ansible play reaches the guest over SSH (disabled until then).
# nginx, mosquitto, lighttpd: the stock-units scenario keeps them as Debian ships them (disabled
# until then).
# podman, runc, netavark, iptables: the containers scenario (issue #15). runc because bookworm's
# crun is built without CRIU; netavark and iptables for podman's default bridge network.
include=(
	systemd systemd-sysv udev dbus kmod procps iproute2 e2fsprogs
	initramfs-tools zstd debconf
	criu redis-server python3
	rpm
	openssh-server
	nginx mosquitto mosquitto-clients lighttpd
	podman runc netavark iptables
)
# arm64: the scenarios' own workloads (a counter, Redis) but not the stock units, sshd and Ansible's
# (every package costs build time under qemu-user), and strace, which shows by name the syscalls
# nvwa's arm64 build makes (its syscall-number table, kexec_load).
if [[ $arch != x86_64 ]]; then
	mapfile -t include < <(printf '%s\n' "${include[@]}" strace | grep -vx -e openssh-server -e nginx -e mosquitto -e mosquitto-clients -e lighttpd -e podman -e runc -e netavark -e iptables)
fi

work=$(mktemp -d "$NVWA_GUEST_CACHE/.build-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/tree out=$work/out
mkdir -p "$out"
buildlog=$out/build.log
start=$(now_us)
log "building $key from $mirror (log: $buildlog)"

# Why each option:
#   --variant=apt                 Essential:yes + apt, then only what we include: a small, fast image
#   Install-Recommends false      no recommends (busybox, man-db, ...): smaller and deterministic
#   dpkg.cfg.d/01nodoc (setup)    no docs/man/locales: less to unpack and to copy into the image.
#                                 Not --dpkgopt=path-exclude: with that, mmdebstrap pipes every
#                                 essential package through its Python tar filter (+70 s); dpkg
#                                 itself applies the file to everything but the essential set.
#   force-unsafe-io               no fsync per package: the tree is thrown away on failure anyway
#   --skip=essential/unlink + sync-in/sync-out   keep downloaded .debs in <cache>/debs for rebuilds
# shellcheck disable=SC2016 # "$1" in the hooks is expanded by mmdebstrap's hook shell, not here
mm=(
	mmdebstrap --mode=root --variant=apt --architectures="$debarch"
	--aptopt='APT::Install-Recommends "false"'
	--aptopt='Acquire::Languages "none"'
	--dpkgopt='force-unsafe-io'
	--setup-hook='mkdir -p "$1/etc/dpkg/dpkg.cfg.d"'
	--setup-hook="copy-in $NVWA_GUEST_DIR/image/rootfs/etc/dpkg/dpkg.cfg.d/01nodoc /etc/dpkg/dpkg.cfg.d/"
	--include="$(IFS=,; echo "${include[*]}")"
	--skip=essential/unlink
	--setup-hook='mkdir -p "$1/var/cache/apt/archives"'
	--setup-hook="sync-in $NVWA_GUEST_CACHE/$debs /var/cache/apt/archives"
	--customize-hook="$NVWA_GUEST_DIR/image/customize.sh"
	--customize-hook="sync-out /var/cache/apt/archives $NVWA_GUEST_CACHE/$debs"
	--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata
	bookworm "$tree" "${sources[@]}"
)
if ! "${mm[@]}" 2>&1 | stamp_lines "$start" >"$buildlog"; then # (pipefail: mmdebstrap's status)
	cp "$buildlog" "$NVWA_GUEST_CACHE/failed-build.log"
	tail -n 40 "$buildlog" >&2
	die "mmdebstrap failed (full log: $NVWA_GUEST_CACHE/failed-build.log)"
fi
t_mm=$(now_us)

# mmdebstrap empties /etc/machine-id for reproducibility; systemd would then treat every boot as a
# first boot. A fixed id per recipe keeps boots ordinary (and journals comparable).
echo "$hash$hash" >"$tree/etc/machine-id"

# shellcheck source=/dev/null
. "$tree/etc/nvwa-guest/kernels.env"
for v in "$KVER_OLD" "$KVER_NEW"; do
	cp "$tree/boot/vmlinuz-$v" "$out/"
	cp -L "$tree/boot/initrd.img-$v" "$out/"
done
cp "$tree/etc/nvwa-guest/kernels.env" "$out/"
echo "$arch" >"$out/arch"
dpkg-query --admindir="$tree/var/lib/dpkg" -W -f='${Package} ${Version}\n' >"$out/packages.txt"

# The image: the tree plus room for what scenarios write (criu images of Redis & co., journals).
# Sparse, so the unused space costs nothing on the host. lazy_*_init=0: mkfs initialises the inode
# tables and journal now, so the guest kernel does not start zeroing them in the background (slow
# under TCG) in every single run.
used_mib=$(du -sm --apparent-size "$tree" | cut -f1)
size_mib=$((used_mib * 12 / 10 + 1536))
mkfs.ext4 -q -F -L nvwa-root -m 0 -d "$tree" \
	-E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
	"$out/rootfs.img" "${size_mib}M" >>"$buildlog" 2>&1 || {
	cp "$buildlog" "$NVWA_GUEST_CACHE/failed-build.log"
	die "mkfs.ext4 failed (log: $NVWA_GUEST_CACHE/failed-build.log)"
}
t_mkfs=$(now_us)

{
	echo "key=$key"
	echo "built=$(date -u +%FT%TZ)"
	echo "mirror=$mirror security=$security"
	echo "kernel_old=$KVER_OLD kernel_new=$KVER_NEW"
	echo "tree_mib=$used_mib image_mib=$size_mib"
	echo "seconds_mmdebstrap=$(fmt_us $((t_mm - start))) seconds_mkfs=$(fmt_us $((t_mkfs - t_mm)))"
	for v in "$KVER_OLD" "$KVER_NEW"; do
		echo "initrd.img-$v bytes=$(stat -c %s "$out/initrd.img-$v")"
		# What the package really ships (arm64: raw Image, gzip or EFI zboot decides nvwa's unwrap).
		! command -v file >/dev/null || echo "vmlinuz-$v: $(file -b "$out/vmlinuz-$v")"
	done
} >"$out/build-info.txt"
touch "$out/.complete"

rm -rf "$tree"
rm -rf "$dest"
mv "$out" "$dest"

# Keep the two most recent other builds (handy when switching branches), drop older ones.
mapfile -t builds < <(ls -1dt "$NVWA_GUEST_CACHE/$arch"-*/) # newest first
kept=0
for d in "${builds[@]}"; do
	[[ $d != */$key/ ]] || continue
	((++kept <= 2)) || rm -rf "$d"
done

log "built $key in $(fmt_us $(($(now_us) - start))) s: kernels $KVER_OLD, $KVER_NEW"
sed 's/^/  /' "$dest/build-info.txt" >&2
echo "$dest"
