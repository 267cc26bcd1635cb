#!/bin/bash
# Builds Debian trixie's criu into a private directory tree and prints the path of a wrapper that
# runs it with its own libraries. Bookworm's criu 3.17 cannot dump on this host's 6.18 kernel
# ("vdso: Failed to fill self vdso symtable"); trixie's 4.1.1 can. Nothing on the system is
# changed: the tree is a chroot-shaped cache that is never chrooted into, only loaded from.
#
# Idempotent: a second run only checks the wrapper and prints its path.
# Env: NVWA_CRIU_SUITE (default trixie), NVWA_CRIU_CACHE (default /var/cache/nvwa-test/criu-<suite>).
# Output: stdout is exactly one line, the wrapper's path; progress goes to stderr.
set -euo pipefail

SUITE="${NVWA_CRIU_SUITE:-trixie}"
CACHE="${NVWA_CRIU_CACHE:-/var/cache/nvwa-test/criu-$SUITE}"
ROOT="$CACHE/root"
WRAPPER="$CACHE/criu"

say() { echo "setup-criu: $*" >&2; }
die() { echo "setup-criu: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap and criu need it)"

case "$(uname -m)" in
  x86_64) LD="lib64/ld-linux-x86-64.so.2"; TRIPLET="x86_64-linux-gnu" ;;
  aarch64) LD="lib/ld-linux-aarch64.so.1"; TRIPLET="aarch64-linux-gnu" ;;
  *) die "unsupported machine $(uname -m)" ;;
esac

# The mirror this machine already uses for Debian proper (not -security, not third-party repos),
# read from deb822 .sources files or one-line .list entries.
mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" | grep -E '/debian/?$' | head -n1 || true)
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' "$f" \
      | grep -E '/debian/?$' | head -n1 || true)
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  echo "http://deb.debian.org/debian"
}

works() { [ -x "$WRAPPER" ] && "$WRAPPER" --version >/dev/null 2>&1; }

if works; then
  echo "$WRAPPER"
  exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
  say "mmdebstrap missing; installing it with apt-get"
  apt-get install -y mmdebstrap >&2 || die "cannot install mmdebstrap"
fi

MIRROR="$(mirror)"
mkdir -p "$CACHE"
chmod 0700 "$CACHE"
rm -rf "$ROOT.tmp"
say "building $SUITE criu into $ROOT from $MIRROR (about 20 s, 170 MB)"
mmdebstrap --variant=essential --include=criu --aptopt='Acquire::Check-Valid-Until "false"' "$SUITE" "$ROOT.tmp" "deb $MIRROR $SUITE main" >&2 \
  || { rm -rf "$ROOT.tmp"; die "mmdebstrap failed (is $MIRROR reachable?)"; }
[ -x "$ROOT.tmp/usr/sbin/criu" ] || { rm -rf "$ROOT.tmp"; die "the tree has no usr/sbin/criu"; }
rm -rf "$ROOT"
mv "$ROOT.tmp" "$ROOT"

# Written to a temp name and renamed so a half-written wrapper is never picked up.
cat >"$WRAPPER.tmp" <<WRAP
#!/bin/sh
# $SUITE criu from $ROOT, run with its own loader and libraries (see test/host/setup-criu.sh)
exec "$ROOT/$LD" --library-path "$ROOT/lib/$TRIPLET:$ROOT/usr/lib/$TRIPLET" "$ROOT/usr/sbin/criu" "\$@"
WRAP
chmod 0755 "$WRAPPER.tmp"
mv "$WRAPPER.tmp" "$WRAPPER"

works || die "the wrapper $WRAPPER does not run: $("$WRAPPER" --version 2>&1 | tail -n1)"
say "ready: $("$WRAPPER" --version 2>&1 | head -n1)"
echo "$WRAPPER"
