#!/usr/bin/env bash
# When the dashboard can paint an upload's heatmaps (issue 23): a release stack on 127.0.0.1:$PORT
# (int8 model, 1 inference worker at 1 thread), RUNS uploads of distinct copies of the baseline scan,
# each followed by fetching its heatmaps and scan at once (heatmap-first-paint.py). One RESULT line.
# Compare builds by copying each build's mediscope and libMediscopeTorch.so into a folder of its own
# and running this with BIN=that/mediscope, in turns (the machine's other load drifts).
#   LABEL=after RUNS=15 bash Tests/Support/heatmap-first-paint.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN=${BIN:-$ROOT/.build/release/mediscope}
PORT=${PORT:-18570}
RUNS=${RUNS:-15}
LABEL=${LABEL:-run}
OUT=${OUT:-$ROOT/.build/first-paint/$LABEL}
PY3=python3
PYTHON=${PYTHON:-$ROOT/.venv-models/bin/python}
log() { echo "first-paint: $*" >&2; }
die() { log "$*"; exit 1; }
server_pid="" nginx_pid="" worker_pids=""
source bench/stack-stop.sh
source bench/stack-lib.sh
trap stop_stack EXIT
rm -rf "$OUT"; mkdir -p "$OUT/variants"
"$PYTHON" Tests/Reference/make_test_scans.py "$OUT/scans" >/dev/null
# Distinct scans: 30 white pixels at seeded places, so every upload draws its own heatmaps.
"$PYTHON" - "$OUT/scans/scan_baseline.jpg" "$OUT/variants" <<'PY'
import random, sys
from PIL import Image
scan = Image.open(sys.argv[1]).convert("RGB")
random.seed(7)
for n in range(40):
    copy = scan.copy(); px = copy.load()
    for _ in range(30): px[random.randrange(copy.width), random.randrange(copy.height)] = (255, 255, 255)
    copy.save(f"{sys.argv[2]}/v{n:02d}.jpg", quality=92)
PY
make_body "$OUT/scans/scan_baseline.jpg"
STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=1 MEDISCOPE_TORCH_THREADS=1 MEDISCOPE_MANIFEST="$ROOT/models/manifest-int8.json")
start_stack "$LABEL"
"$PY3" Tests/Support/heatmap-first-paint.py "$PORT" "$TOKEN" "$OUT/variants" "$RUNS" | sed "s/^RESULT/RESULT label=$LABEL/"
