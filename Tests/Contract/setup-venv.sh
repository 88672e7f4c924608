#!/usr/bin/env bash
# Creates the contract tests' venv (.venv-contract, or CONTRACT_VENV): the pinned OpenAPI validator and schemathesis
# from PyPI (requirements.txt). Idempotent; prints the venv's python on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
exec bash "$root/Tests/Support/pinned-venv.sh" "${CONTRACT_VENV:-$root/.venv-contract}" "$here/requirements.txt" "${BASH_SOURCE[0]}"
