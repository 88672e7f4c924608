#!/usr/bin/env bash
# The venv for bench/python-stack/app.py (the Python stack bench/int8.sh and bench/peers.sh compare against), at
# $ROOT/.venv-bench: Debian's python3 with its torch (--system-site-packages), the model tooling's
# pins (models/requirements.txt: grad-cam, onnx, numpy < 2 ...) and FastAPI + Uvicorn pins. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV:-$root/.venv-bench}"
stamp="$VENV/.stamp"
want="$(cat "$root/models/requirements.txt" "$root/bench/python-stack/requirements.txt" | sha256sum | cut -d' ' -f1)"
[[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && { echo "$VENV/bin/python"; exit 0; }
bash "$root/models/setup-venv.sh" >/dev/null   # the Debian packages (python3-venv, python3-torch, ...)
[[ -x "$VENV/bin/python" ]] || /usr/bin/python3 -m venv --system-site-packages "$VENV" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    -r "$root/models/requirements.txt" -r "$root/bench/python-stack/requirements.txt" >&2
echo "$want" > "$stamp"
echo "$VENV/bin/python"
