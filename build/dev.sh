#!/usr/bin/env bash
# The README's two commands end here (`npm test`, `npm run demo`). A fresh Debian machine
# with Node and npm has nothing else, so this installs what the tests need first: Debian
# packages (idempotent), then Bun and the dependencies from npm (pinned by package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  # criu, network namespaces and the guest's image build all need root.
  exec sudo -E "$0" "$@"
fi

# Everything the build and test scripts run that a minimal Debian lacks (its Essential and
# required packages are there). --no-install-recommends below means a tool's Recommends are not
# pulled in: list what the scripts rely on explicitly. test/unit/dev-deps.test.ts reads the
# scripts and fails when one runs something no package here (or Debian's base) provides.
APT_PACKAGES=(
  mmdebstrap          # builds the guest image and the trixie criu used on this host
  arch-test           # mmdebstrap --architectures=arm64 (a foreign arch) refuses to start without it
  dpkg-dev            # dpkg-architecture, run on the host by mmdebstrap's eatmydata hook
  debian-archive-keyring  # the bookworm/trixie keys mmdebstrap and fetch.sh verify against
  qemu-system-x86     # the x86_64 guest
  qemu-system-arm     # the arm64 guest
  qemu-user-static    # builds the arm64 guest image here: its package scripts run via binfmt_misc
  qemu-efi-aarch64    # EDK2 firmware for the arm64 guest's UEFI boots (run-guest.sh --uefi)
  qemu-utils          # qcow2 overlays
  e2fsprogs           # mkfs.ext4 -d and debugfs: images without loop mounts
  iproute2            # tests compare netlink state with `ip -j` (nvwa itself never runs ip)
  rpm createrepo-c dnf gnupg rpmlint xorriso  # packaging, its ISO and its install test
  systemd             # systemd-analyze verify, for the packaged unit file
  dbus-daemon         # a real D-Bus peer for the wire-format tests
  python3             # the host tests' workloads (test/host/helpers/workload.py) and socket peers
  file                # build-image.sh notes what each kernel image is
  procps              # pkill: a guest test ends its QEMU early when the host side failed
  ansible-core openssh-client  # the fleet test: ansible-playbook drives the guest over SSH
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "dev.sh: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/bun ] || ! node_modules/.bin/bun --version >/dev/null 2>&1 \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "dev.sh: installing Bun and dependencies from npm"
  npm ci --no-audit --no-fund --loglevel=error
  # npm may skip bun's postinstall (install scripts need approval); the package then still
  # carries a working binary on most versions, and its install script fixes the rest.
  node_modules/.bin/bun --version >/dev/null 2>&1 || (cd node_modules/bun && node install.js)
fi

# `npm test` → dev.sh test [stages...]; `npm run demo` → dev.sh demo.
mode=${1:-test}
shift || true
case $mode in
test) exec node_modules/.bin/bun test/run.ts "$@" ;;
demo) exec node_modules/.bin/bun test/run.ts demo ;;
*) echo "dev.sh: unknown mode '$mode' (test or demo)" >&2; exit 2 ;;
esac
