#!/usr/bin/env bash
# A swap file for spikes on a small box (a reload briefly runs two worker generations), made and
# enabled only when the machine has no swap at all: existing swap (a partition, a zram device, an
# admin's own file) is left alone, and nothing is ever written to /etc/fstab.
#
#   swap.sh start [--dry-run]   make SWAP_FILE (SWAP_SIZE) if needed and enable it
#   swap.sh stop                disable it (when it is ours and on)
#   swap.sh remove              disable and delete it (only a file this script made: swap label "mediscope")
#   swap.sh status              say what start would do
#
# Settings (the package reads them from /etc/default/mediscope; mediscope-swap.service runs this
# at boot, before mediscope.service):
#   SWAP_SIZE  e.g. 1G, 512M; 0 or "off": no swap file (default 1G)
#   SWAP_FILE  absolute path (default /var/swap.mediscope)
#   SWAP_PROC_SWAPS  the active-swap table read (default /proc/swaps; tests point it at a copy)
# The sysctl settings that go with it (vm.swappiness 10) are in deploy/sysctl/90-mediscope.conf,
# which the package installs in /usr/lib/sysctl.d/.
#
# --dry-run prints the commands start would run and runs none of them.
# Exit status: 0 done (or nothing to do); 1 it could not (disk space, a file that is not ours); 2 bad settings.
set -euo pipefail

die() { echo "swap: $*" >&2; exit "${2:-1}"; }
action=${1:-start}
dry=0
[ "${2:-}" = --dry-run ] && dry=1
case $action in start|stop|remove|status) ;; *) die "usage: $0 start [--dry-run] | stop | remove | status" 2 ;; esac

size=${SWAP_SIZE:-1G}
file=${SWAP_FILE:-/var/swap.mediscope}
swaps=${SWAP_PROC_SWAPS:-/proc/swaps}
label=mediscope
[[ $file == /* && $file != */ && $file != *[[:space:]]* ]] || die "SWAP_FILE must be an absolute path without spaces, got '$file'" 2

off=0
case $size in
    0|off|OFF|none) off=1; bytes=0 ;;
    *[0-9][KkMmGg]|*[0-9])
        number=${size%[KkMmGg]}
        [[ $number =~ ^[1-9][0-9]{0,6}$ ]] || die "SWAP_SIZE must be like 1G, 512M or 0, got '$size'" 2
        case $size in *[Kk]) bytes=$((number << 10)) ;; *[Mm]) bytes=$((number << 20)) ;; *[Gg]) bytes=$((number << 30)) ;; *) bytes=$number ;; esac
        [ "$bytes" -ge $((40 << 20)) ] || die "SWAP_SIZE must be at least 40M, got '$size'" 2 ;;
    *) die "SWAP_SIZE must be like 1G, 512M or 0, got '$size'" 2 ;;
esac

# Active swap areas, as the kernel lists them (first column; spaces in names are \040).
active() { [ -r "$swaps" ] && awk 'NR > 1 { print $1 }' "$swaps" || true; }
is_on() { active | grep -qxF -- "$file"; }
ours() {  # a regular file (not a link) whose swap label is ours
    [ -f "$file" ] && [ ! -L "$file" ] && [ "$(swaplabel "$file" 2>/dev/null | sed -n 's/^LABEL: //p')" = "$label" ]
}
run() {
    if [ $dry = 1 ]; then echo "would run: $*"; else "$@"; fi
}

case $action in
stop)
    if is_on && ours; then swapoff "$file"; echo "swap: $file off"; fi
    exit 0 ;;
remove)
    if ours; then
        if is_on; then swapoff "$file"; fi
        rm -f -- "$file"
        echo "swap: removed $file"
    fi
    exit 0 ;;
esac

if is_on; then
    echo "swap: $file is already on"; exit 0
fi
others=$(active | paste -sd ' ' -)
if [ -n "$others" ]; then
    echo "swap: the machine already has swap ($others): leaving it alone, no swap file made"; exit 0
fi
if [ $off = 1 ]; then
    echo "swap: SWAP_SIZE=$size: no swap file"; exit 0
fi
[ "$action" = status ] && { echo "swap: no swap on; start would enable $file ($size)"; exit 0; }

create() {  # create fallocate|zeros: a new swap file of $bytes with our label
    run install -m 0600 -o root -g root /dev/null "$file"
    if [ "$1" = fallocate ]; then
        run fallocate -l "$bytes" "$file"
    else
        run dd if=/dev/zero of="$file" bs=1M count=$((bytes >> 20)) status=none
    fi
    if [ $dry = 1 ]; then run mkswap -L "$label" "$file"; else mkswap -L "$label" "$file" >/dev/null; fi
}

made=0
if [ -e "$file" ] || [ -L "$file" ]; then
    # Reuse only our own file of the right size; never format someone else's file.
    ours || die "$file exists and is not a swap file this script made (label '$label'); remove it or set SWAP_FILE"
    [ "$(stat -c %s "$file")" = "$bytes" ] || run rm -f -- "$file"
fi
if [ ! -e "$file" ] || [ $dry = 1 ]; then
    dir=$(dirname "$file")
    [ -d "$dir" ] || die "no folder $dir for SWAP_FILE"
    free=$(( $(stat -f -c '%a * %S' "$dir") ))
    # Keep 1 GiB free besides the swap file: the store is on the same disk more often than not.
    [ "$free" -ge $((bytes + (1 << 30))) ] || die "not enough free disk in $dir for a $size swap file and 1 GiB to spare"
    create fallocate
    made=1
fi
if [ $dry = 1 ]; then
    run swapon "$file"
    exit 0
fi
if ! swapon "$file" 2>/dev/null; then
    # Some file systems refuse fallocate's unwritten extents for swap: write zeros instead.
    [ $made = 1 ] || die "swapon $file failed"
    rm -f -- "$file"
    create zeros
    swapon "$file"
fi
echo "swap: $file ($size) on, vm.swappiness $(cat /proc/sys/vm/swappiness 2>/dev/null || echo '?')"
