#!/usr/bin/env bash
# Creates and enables a swap file (default 1 GiB at /swapfile) once; a no-op when swap is on.
#   SWAP_SIZE=1G SWAP_FILE=/swapfile deploy/swap.sh
set -euo pipefail
size=${SWAP_SIZE:-1G}
file=${SWAP_FILE:-/swapfile}
if swapon --show=NAME --noheadings | grep -qx "$file"; then
  echo "swap: $file already on"; exit 0
fi
[ -f "$file" ] || { fallocate -l "$size" "$file" || dd if=/dev/zero of="$file" bs=1M count=$(( ${size%G} * 1024 )); }
chmod 600 "$file"
mkswap "$file" >/dev/null
swapon "$file"
grep -q "^$file " /etc/fstab || echo "$file none swap sw 0 0" >> /etc/fstab
install -m 0644 "$(dirname "$0")/sysctl/90-mediscope.conf" /etc/sysctl.d/90-mediscope.conf
sysctl -q --system
echo "swap: $file ($size) on, swappiness $(cat /proc/sys/vm/swappiness)"
