#!/usr/bin/env bash
# Creates the venv of the DICOM reference: pinned pydicom, pylibjpeg and pydicom-data from PyPI.
# Idempotent (a stamp holds the requirements' sha256). Prints the venv's python on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
VENV="${DICOM_VENV:-$root/.venv-dicom}"
req="$here/dicom-requirements.txt"
stamp="$VENV/.mediscope-dicom-stamp"
want="$(cat "$req" "$here/setup-dicom-venv.sh" | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi
rm -f "$stamp"
[[ -x "$VENV/bin/python" ]] || /usr/bin/python3 -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req" >&2
echo "$want" > "$stamp"
echo "$VENV/bin/python"
