#!/usr/bin/env bash
# A venv of Debian's python3 with pinned PyPI packages, for a test tool (Tests/Reference, Tests/Contract).
#
#   Tests/Support/pinned-venv.sh VENV REQUIREMENTS [STAMP_INPUT...]
#
# Idempotent: a stamp in VENV holds the sha256 of REQUIREMENTS and the STAMP_INPUTs (the calling script), so a
# change to either reinstalls. Prints the venv's python on the last line of standard output.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 VENV REQUIREMENTS [STAMP_INPUT...]" >&2; exit 2; }
VENV=$1 req=$2
shift 2
stamp="$VENV/.mediscope-stamp"
want="$(cat "$req" "$@" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi
rm -f "$stamp"
[[ -x "$VENV/bin/python" ]] || /usr/bin/python3 -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req" >&2
echo "$want" > "$stamp"
echo "$VENV/bin/python"
