#!/bin/bash
# run-scenario.sh — run one guest scenario end to end: image (cached), payload, boot(s), host check.
#
#   run-scenario.sh NAME|DIR [--add SRC:DEST]... [--add-dir SRC:DEST]... [--kernel K]
#                   [--timeout SEC] [--out DIR] [--image DIR] [--keep-disk] [--hostfwd H:G]
#                   [--mem SIZE] [--disk-grow MIB] [--allow-reboot] [--uefi]
#
#   NAME            a directory under test/guest/scenarios/ (or a path to one), holding:
#                     run.sh         guest side, run at every boot with the boot number (required)
#                     check.sh       host side, run after the guest powered off with the results
#                                    dir as $1 and KVER_OLD/KVER_NEW exported (optional)
#                     scenario.conf  KERNEL=old|new|<uname -r>, TIMEOUT=<s> (optional)
#                     rootfs/        files installed onto the guest's / at boot 1 (optional)
#                     anything else  available to run.sh under /payload
#   --add SRC:DEST  install the host file SRC at DEST in the guest (via the payload's rootfs/), e.g.
#                   --add dist/nvwa-linux-x64:/usr/bin/nvwa --add my.yaml:/etc/nvwa/nvwa.yaml
#   --add-dir SRC:DEST  the same for the host directory SRC and everything in it, e.g. the signed
#                   RPM repo: --add-dir dist/guest-repo:/mnt (as if the repo's ISO were mounted there)
#   --kernel, --timeout override scenario.conf; --out, --image, --keep-disk, --hostfwd, --mem, --disk-grow,
#                   --allow-reboot, --uefi go to run-guest.sh
#
# Exit status: 0 when the guest passed and check.sh agreed; otherwise the guest's status (see
# run-guest.sh) or check.sh's. The run directory (printed) keeps serial.log, results/, timings.txt.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

(($#)) || die "usage: run-scenario.sh NAME|DIR [--add SRC:DEST]... [--kernel K] [--timeout SEC] ..."
scenario=$1
shift
[[ -d $scenario ]] || scenario=$NVWA_GUEST_DIR/scenarios/$scenario
[[ -f $scenario/run.sh ]] || die "no scenario at $scenario (run.sh missing)"
scenario=$(cd "$scenario" && pwd)
name=${scenario##*/}

KERNEL=old TIMEOUT=600
# shellcheck source=/dev/null
[[ ! -f $scenario/scenario.conf ]] || . "$scenario/scenario.conf"

adds=() add_dirs=() image='' out='' guest_args=() keep=0
while (($#)); do
	case $1 in
	--add) adds+=("$2"); shift ;;
	--add-dir) add_dirs+=("$2"); shift ;;
	--kernel) KERNEL=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--image) image=$2; shift ;;
	--out) out=$2; shift ;;
	--keep-disk) guest_args+=(--keep-disk) keep=1 ;;
	--hostfwd | --mem | --disk-grow) guest_args+=("$1" "$2"); shift ;;
	--allow-reboot | --uefi) guest_args+=("$1") ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

t0=$(now_us)
[[ -n $image ]] || image=$("$NVWA_GUEST_DIR/build-image.sh")
t_image=$(now_us)
if [[ -z $out ]]; then
	mkdir -p /tmp/nvwa-guest-runs
	out=$(mktemp -d "/tmp/nvwa-guest-runs/$name-$(date +%Y%m%d-%H%M%S)-XXXX")
fi
mkdir -p "$out"

# The payload tree: the scenario directory as is, plus the --add files under rootfs/.
payload=$out/payload
rm -rf "$payload"
cp -a "$scenario/." "$payload/"
chmod 0755 "$payload"
for a in "${adds[@]}"; do
	src=${a%%:*} dest=${a#*:}
	[[ -f $src && $dest == /* && $a == *:* ]] || die "--add wants SRC:DEST with an existing file and an absolute DEST: '$a'"
	# Directories 0755 and root-owned: the runner unpacks rootfs/ over / without touching existing
	# directories, but new ones are created as they are here.
	install -d -m 0755 "$payload/rootfs$(dirname "$dest")"
	cp -p "$src" "$payload/rootfs$dest"
done
for a in "${add_dirs[@]}"; do
	src=${a%%:*} dest=${a#*:}
	[[ -d $src && $dest == /* && $a == *:* ]] || die "--add-dir wants SRC:DEST with an existing directory and an absolute DEST: '$a'"
	install -d -m 0755 "$payload/rootfs$dest"
	cp -a "$src/." "$payload/rootfs$dest/"
done
rm -f "$payload/check.sh" "$payload/scenario.conf" # host-side only

# shellcheck source=/dev/null
. "$image/kernels.env"
export KVER_OLD KVER_NEW
log "scenario $name: kernel $KERNEL, timeout ${TIMEOUT}s, image $image"
status=0
"$NVWA_GUEST_DIR/run-guest.sh" --image "$image" --payload "$payload" --kernel "$KERNEL" \
	--timeout "$TIMEOUT" --out "$out" "${guest_args[@]}" || status=$?

((keep)) || rm -rf "$payload" # a copy; it may hold a 100 MB nvwa binary or a 30 MB RPM

if ((status == 0)) && [[ -x $scenario/check.sh ]]; then
	"$scenario/check.sh" "$out/results" || status=$?
fi

{
	echo "image_s=$(fmt_us $((t_image - t0)))"
	cat "$out/timings.txt" 2>/dev/null || true
	echo "scenario_total_s=$(fmt_us $(($(now_us) - t0)))"
} >"$out/scenario-timings.txt"
if ((status == 0)); then
	log "scenario $name PASSED ($out)"
else
	log "scenario $name FAILED with status $status; serial log: $out/serial.log; results: $out/results"
	[[ ! -f $out/results/run.log ]] || tail -n 20 "$out/results/run.log" | sed 's/^/  guest| /' >&2
fi
sed 's/^/  /' "$out/scenario-timings.txt" >&2
exit "$status"
