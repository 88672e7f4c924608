#!/usr/bin/env bash
# Creates the venv of the DICOM reference: pinned pydicom, pylibjpeg and pydicom-data from PyPI.
# Idempotent (a stamp holds the requirements' sha256). Prints the venv's python on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
exec bash "$root/Tests/Support/pinned-venv.sh" "${DICOM_VENV:-$root/.venv-dicom}" "$here/dicom-requirements.txt" "${BASH_SOURCE[0]}"
