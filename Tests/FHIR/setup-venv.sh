#!/usr/bin/env bash
# Creates the FHIR tests' venv (.venv-fhir, or FHIR_VENV): the pinned fhir.resources from PyPI (requirements.txt).
# Idempotent; prints the venv's python on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
exec bash "$root/Tests/Support/pinned-venv.sh" "${FHIR_VENV:-$root/.venv-fhir}" "$here/requirements.txt" "${BASH_SOURCE[0]}"
