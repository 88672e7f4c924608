#!/usr/bin/env bash
# Contract fuzzing: schemathesis (pinned in requirements.txt) over every operation of public/openapi.json, against a
# running stack, as one caller. Tests/IntegrationTests/ContractFuzzTests.swift runs it on a stack of its own, once as
# a clinician and once as an admin; by hand, against `make run`:
#
#   Tests/Contract/schemathesis.sh BASE_URL CREDENTIAL [PROTECTED_IDS] [MAX_SECONDS]
#
# CREDENTIAL is the caller's API token (msk_...), or `session=TOKEN,csrf=CSRF` for a signed-in browser session (sent
# as the session cookie with X-CSRF-Token and this site's Origin; sign-out, which would end it, is not called).
# PROTECTED_IDS (comma separated) are ids no destructive call may name
# (the caller's own user and token: hooks.py sends a path that names nobody instead). Positive and negative data,
# every phase (examples, coverage, fuzzing, stateful via the document's links), checks: no 5xx, documented status,
# documented content type, body conforms to its schema. Bounded: FUZZ_EXAMPLES cases per operation and phase
# (default 25) and MAX_SECONDS for the whole run (default 90). Exits non-zero on any failure or error; the report
# lists each with a curl command that reproduces it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ $# -ge 2 ] || { echo "usage: $0 BASE_URL CREDENTIAL [PROTECTED_IDS] [MAX_SECONDS]" >&2; exit 2; }
base=$1 credential=$2 protected=${3:-} max_seconds=${4:-90}
case $credential in
    session=*,csrf=*)
        session=${credential#session=}; session=${session%%,csrf=*}
        auth=(-H "Cookie: mediscope_session=$session" -H "X-CSRF-Token: ${credential#*,csrf=}" -H "Origin: $base"
              --exclude-operation-id signOut) ;;
    *) auth=(-H "Authorization: Bearer $credential") ;;
esac
python=$(bash "$here/setup-venv.sh" | tail -n 1)
st="$(dirname "$python")/st"

# The document as the stack serves it (GET /api/openapi.json): what integrators get is what is tested.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"   # schemathesis may leave files in its working folder
export SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export MEDISCOPE_FUZZ_PROTECTED_IDS="$protected" MEDISCOPE_FUZZ_SEED="${FUZZ_SEED:-1}"
# --no-color and a wide terminal: the report is read in a test log.
COLUMNS=160 "$st" --no-color run "$base/api/openapi.json" --url "$base" \
    "${auth[@]}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --mode all --max-examples "${FUZZ_EXAMPLES:-25}" --max-time "$max_seconds" --workers 1 \
    --seed "${FUZZ_SEED:-1}" --generation-database none --generation-with-security-parameters false \
    --request-timeout 70 --suppress-health-check all --warnings off \
    --output-truncate false
