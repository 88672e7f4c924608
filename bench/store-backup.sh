#!/usr/bin/env bash
# Store backup: writes the "Store backup" section of bench/RESULTS.md (make bench-store-backup).
# Usage: bench/store-backup.sh [RECORDS ...]   (default 1000 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
PY3=python3
source bench/stack-lib.sh
mkdir -p bench/out
.build/release/mediscope-bench store-backup "$@" > bench/out/store-backup.raw.md
command="make bench-store-backup${*:+ RECORDS='$*'}"
awk -v date="$(date -u +%Y-%m-%dT%H:%MZ)" -v machine="$(machine_summary), $(findmnt -no FSTYPE -T /tmp) for the store" \
    -v commit="$(git rev-parse --short HEAD)" -v command="$command" '
    { print }
    $0 == "## Store backup" { print ""; print "- date: " date; print "- machine: " machine; print "- commit: " commit; print "- command: `" command "`" }
' bench/out/store-backup.raw.md > bench/out/store-backup.md
write_section store-backup bench/out/store-backup.md
cat bench/out/store-backup.md
