#!/usr/bin/env bash
# Scheduled backups of the embedded store (deploy/systemd/mediscope-backup.timer runs it once a day):
# `mediscope store backup` into BACKUP_DIR/mediscope-<UTC time>, then the oldest complete backups
# beyond BACKUP_KEEP are removed. A failed backup removes nothing. The store a restore set aside
# (var/store.before-restore-*, a full copy of patient data) is removed BACKUP_KEEP days after the
# restore, by the same command once its backup is done and checked.
#
# Backups are authenticated with the key var/backup.key, which the first backup makes and no backup
# holds: keep a copy of it away from the backups (a new machine restores with `--key FILE`).
#
#   BACKUP_DIR   where backups go (required; put it on another disk or a mounted share)
#   BACKUP_KEEP  how many complete backups to keep, newest first (default 14)
#   MEDISCOPE_BIN     the mediscope binary (default /usr/lib/mediscope/mediscope, where the package puts it)
#   MEDISCOPE_CONFIG  its JSON configuration (default none: MEDISCOPE_* variables and defaults)
#
# Exit status: that of `mediscope store backup` (0 done and checked, 1 the copy failed its check,
# 2 nothing copied); 2 also for bad settings here.
set -euo pipefail

die() { echo "backup.sh: $*" >&2; exit 2; }
bin=${MEDISCOPE_BIN:-/usr/lib/mediscope/mediscope}
dir=${BACKUP_DIR:-}
keep=${BACKUP_KEEP:-14}
[ -n "$dir" ] || die "set BACKUP_DIR to the folder backups go to"
[[ "$keep" =~ ^[1-9][0-9]{0,3}$ ]] || die "BACKUP_KEEP must be a whole number from 1 to 9999, got '$keep'"
[ -x "$bin" ] || die "no mediscope binary at $bin (set MEDISCOPE_BIN)"
config=()
if [ -n "${MEDISCOPE_CONFIG:-}" ]; then config=(--config "$MEDISCOPE_CONFIG"); fi

(umask 077 && mkdir -p "$dir")
name="mediscope-$(date -u +%Y%m%dT%H%M%SZ)"
target="$dir/$name"
n=1
while [ -e "$target" ]; do n=$((n + 1)); target="$dir/$name-$n"; done   # two runs in one second

"$bin" store backup "${config[@]}" --remove-restored-after "$keep" "$target"

# Complete backups (with their manifest) by name, which sorts by time; only ours are ever removed.
mapfile -t complete < <(find "$dir" -mindepth 1 -maxdepth 1 -type d -name 'mediscope-*' -exec test -f '{}/BACKUP.json' ';' -print | sort)
excess=$(( ${#complete[@]} - keep ))
for ((i = 0; i < excess; i++)); do
    old=${complete[$i]}
    [ "$old" = "$target" ] && continue
    rm -rf -- "$old"
    echo "removed the old backup $old"
done
