#!/usr/bin/env bash
# Create the Python venv used by models/*.py and Tests/Reference/*.py.
#
#   models/setup-venv.sh            # -> /work/main/.venv-models (repo-root/.venv-models)
#   VENV=/some/dir models/setup-venv.sh
#
# Uses Debian's /usr/bin/python3 (NOT a pyenv python on PATH) with
# --system-site-packages so that Debian's torch / torchvision / Pillow
# (/usr/lib/python3/dist-packages) are used. Idempotent: does nothing when the
# venv's stamp file holds the sha256 of requirements.txt + this script.
# Prints the venv's python path on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
VENV="${VENV:-$root/.venv-models}"
SYS_PY="${SYS_PY:-/usr/bin/python3}"
req="$here/requirements.txt"
stamp="$VENV/.mediscope-models-stamp"

want="$(cat "$req" "$here/setup-venv.sh" | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
    echo "setup-venv: $VENV is up to date" >&2
    echo "$VENV/bin/python"
    exit 0
fi

# Debian packages the venv relies on (python3-venv for ensurepip, torch from apt).
missing=()
"$SYS_PY" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
"$SYS_PY" -c 'import torch' 2>/dev/null || missing+=(python3-torch)
"$SYS_PY" -c 'import torchvision' 2>/dev/null || missing+=(python3-torchvision)
"$SYS_PY" -c 'import PIL' 2>/dev/null || missing+=(python3-pil)
if ((${#missing[@]})); then
    echo "setup-venv: installing Debian packages: ${missing[*]}" >&2
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    else
        echo "setup-venv: please 'apt-get install ${missing[*]}' as root" >&2
        exit 1
    fi
fi

rm -f "$stamp"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup-venv: creating $VENV" >&2
    "$SYS_PY" -m venv --system-site-packages "$VENV" >&2
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req" >&2

# pip must not have brought its own torch / torchvision / Pillow.
if "$VENV/bin/python" -m pip freeze --local 2>/dev/null | grep -iE '^(torch|torchvision|pillow)=='; then
    echo "setup-venv: ERROR: pip installed torch/torchvision/Pillow into the venv" >&2
    exit 1
fi
"$VENV/bin/python" - <<'PY' >&2
import torch, torchvision, PIL, numpy, cv2, onnx, onnxruntime, pytorch_grad_cam
for m in (torch, torchvision, PIL):
    assert m.__file__.startswith("/usr/lib/python3/dist-packages/"), (m.__name__, m.__file__)
assert int(numpy.__version__.split(".")[0]) < 2, numpy.__version__
torch.from_numpy(numpy.zeros(3, dtype=numpy.float32)).numpy()
print("setup-venv: torch", torch.__version__, torch.__file__)
print("setup-venv: numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__,
      "onnx", onnx.__version__, "cv2", cv2.__version__, "Pillow", PIL.__version__)
PY
echo "$want" > "$stamp"
echo "$VENV/bin/python"
