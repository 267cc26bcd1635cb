#!/bin/bash
# setup-host.sh — install the host packages the QEMU guest harness needs (Debian/Ubuntu host, as root).
#
# Idempotent and non-interactive: when everything is already installed it does nothing (no apt-get
# update, no network). Safe to call at the start of every CI run.
#
#   mmdebstrap       builds the guest root tree (build-image.sh)
#   arch-test        mmdebstrap refuses a foreign architecture (the arm64 image) without it
#   e2fsprogs        mkfs.ext4 -d (image without loop mounts) and debugfs (read results back, no mount)
#   qemu-system-x86  qemu-system-x86_64 (TCG; KVM is not usable on these machines)
#   qemu-system-arm  qemu-system-aarch64, for the arm64 guest (build-image.sh arm64)
#   qemu-user-static runs the arm64 image's package scripts at build time (binfmt_misc)
#   qemu-efi-aarch64 EDK2 (QEMU_EFI.fd) for the arm64 guest's UEFI boots (run-guest.sh --uefi)
#   qemu-utils       qemu-img (per-run qcow2 overlay on the cached raw image)
#   debian-archive-keyring  lets mmdebstrap verify bookworm + bookworm-backports on a non-Debian host
#   mount            mmdebstrap (root mode) mounts /proc, /sys, /dev inside the tree it builds
set -euo pipefail

packages=(mmdebstrap arch-test e2fsprogs qemu-system-x86 qemu-system-arm qemu-user-static qemu-efi-aarch64 qemu-utils debian-archive-keyring mount)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "setup-host: all present: ${packages[*]}"
	exit 0
fi

if ((EUID != 0)); then
	echo "setup-host: need root to install: ${missing[*]}" >&2
	exit 1
fi

echo "setup-host: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
