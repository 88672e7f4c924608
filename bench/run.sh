#!/usr/bin/env bash
# Pipeline benchmark: one 512x512 JPEG, warm-up, then RUNS analyses at 1 and at 2 threads,
# beside the bare forward pass of the same frozen module in Python. Writes bench/RESULTS.md.
#   bash bench/run.sh            (make bench builds and prepares the model first)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}
THREADS=${THREADS:-"1 2"}
PYTHON=${PYTHON:-.venv-models/bin/python}
OUT=bench/out
BIN=.build/release
mkdir -p "$OUT"

"$PYTHON" Tests/Reference/make_test_scans.py "$OUT/scans" >/dev/null
IMAGE="$OUT/scans/scan_baseline.jpg"   # 512x512 baseline JPEG (bench/server.sh posts the same file)
echo "bench: image $IMAGE"

for t in $THREADS; do
  echo "bench: Python bare forward, $t thread(s)"
  "$PYTHON" models/bench_forward.py --threads "$t" --runs "$RUNS" > "$OUT/python-t$t.json"
  echo "bench: Swift pipeline, $t thread(s)"
  "$BIN/mediscope-bench" --image "$IMAGE" --threads "$t" --runs "$RUNS" --warmup "$WARMUP" > "$OUT/pipeline-t$t.json"
done
"$PYTHON" models/bench_forward.py --threads 1 --runs 20 --all-variants > "$OUT/python-variants-t1.json"

# Cold start of the real command: process start, model load, first analysis (median of 5).
cold=()
for i in 1 2 3 4 5; do
  t0=$(date +%s%N)
  "$BIN/mediscope" analyze --no-images --threads 1 "$IMAGE" >/dev/null
  cold+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
cold_median=$(printf '%s\n' "${cold[@]}" | sort -n | sed -n 3p)

{
  echo "# Benchmark results"
  echo
  echo "Written by \`bench/run.sh\` (\`make bench\`). Medians of one run; ratios are taken within that run."
  echo
  echo "## Pipeline (CLI, one 512x512 JPEG, both results, two Grad-CAMs, overlays encoded)"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "- command: \`RUNS=$RUNS WARMUP=$WARMUP bash bench/run.sh\`; image \`$IMAGE\`"
  echo "- cold start of \`mediscope analyze --no-images --threads 1\` (new process, model load, first analysis), median of 5: ${cold_median} ms"
  echo
  "$BIN/mediscope-bench" report "$OUT" $THREADS
  echo
  echo "Columns: stage medians from the pipeline's own timers; \"forward\" is the frozen \`features\` pass plus"
  echo "\`head\` with autograd; \"bare forward, libtorch\" is the frozen module's \`forward\` called in a loop"
  echo "through the shim; \"bare forward, Python\" is models/bench_forward.py on the same frozen + optimised module."
  echo "Peak RSS is the benchmark process's (model loaded, all runs done)."
} > bench/RESULTS.md.pipeline

# Keep sections that other benchmarks (server, browser) add to RESULTS.md.
if [ -f bench/RESULTS.md ] && grep -q '^<!-- end pipeline -->' bench/RESULTS.md; then
  { cat bench/RESULTS.md.pipeline; echo; echo '<!-- end pipeline -->'; sed '1,/^<!-- end pipeline -->/d' bench/RESULTS.md; } > bench/RESULTS.md.new
else
  { cat bench/RESULTS.md.pipeline; echo; echo '<!-- end pipeline -->'; } > bench/RESULTS.md.new
fi
mv bench/RESULTS.md.new bench/RESULTS.md
rm bench/RESULTS.md.pipeline
cat bench/RESULTS.md
