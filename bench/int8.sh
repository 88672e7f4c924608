#!/usr/bin/env bash
# int8 vs fp32 in one run (issue 14) -> the "int8" section of bench/RESULTS.md; raw output in bench/out/int8/.
#   1. pipeline (mediscope-bench, one process per model and thread count, the same 512x512 JPEG):
#      bare forward and whole-analysis medians at 1 and 2 threads; peak RSS at load (models loaded and
#      checked, no analysis yet), RSS right after load and at the end (steady state)
#   2. the whole stack (nginx + master + 1 inference worker at 1 thread + io workers) in a 1 GiB,
#      1-CPU cgroup, CGROUP_CONNECTIONS wrk clients for CGROUP_SECONDS, fp32 then int8: cgroup peak
#      memory, worker / master RSS, requests per second, p50
#   3. against the Python stack this product replaces (bench/python-stack: FastAPI + Uvicorn + eager
#      PyTorch + pytorch-grad-cam, one forward and two Grad-CAMs per request, in .venv-bench made by
#      bench/python-stack/setup.sh from PyPI pins): each server pinned to core 0 at 1 thread, one wrk
#      connection for PY_SECONDS: per-analysis latency (p50) and requests per second. Skipped when
#      .venv-bench is missing.
# Ratios are taken within this run.
#   bash bench/int8.sh            (make bench-int8 builds the release binaries and the models first)
#   RUNS=30 CGROUP_SECONDS=30 bash bench/int8.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMMAND="$(for v in RUNS WARMUP CGROUP_SECONDS CGROUP_CONNECTIONS CGROUP_MEMORY PY_SECONDS PORT; do
             if [ -n "${!v+x}" ]; then printf '%s=%s ' "$v" "${!v}"; fi; done)bash bench/int8.sh"

BIN=${BIN:-$ROOT/.build/release/mediscope}
BENCH_BIN=${BENCH_BIN:-$ROOT/.build/release/mediscope-bench}
PYTHON=${PYTHON:-$ROOT/.venv-models/bin/python}
PORT=${PORT:-18490}
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-5}
CGROUP_SECONDS=${CGROUP_SECONDS:-30}
CGROUP_CONNECTIONS=${CGROUP_CONNECTIONS:-4}
CGROUP_MEMORY=${CGROUP_MEMORY:-1073741824}
PY_SECONDS=${PY_SECONDS:-30}
PY_PORT=$((PORT + 10))
PY_VENV=${PY_VENV:-$ROOT/.venv-bench}
OUT=$ROOT/bench/out/int8
CG_NAME=mediscope-bench-int8
FP32=models/manifest.json
INT8=models/manifest-int8.json
log() { echo "bench-int8: $*" >&2; }
die() { log "$*"; exit 1; }

command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }
for t in wrk nginx curl taskset python3; do command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin; command -v "$t" >/dev/null || die "$t not found"; done
[ -x "$BIN" ] || die "$BIN missing (make build)"
[ -x "$BENCH_BIN" ] || die "$BENCH_BIN missing (swift build -c release --product mediscope-bench)"
[ -f models/brain_tumor_vgg16.pt ] || die "models/brain_tumor_vgg16.pt missing (make model)"
[ -f models/brain_tumor_vgg16_int8.pt ] || die "models/brain_tumor_vgg16_int8.pt missing (make model-int8)"
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then die "127.0.0.1:$PORT is already in use (set PORT=...)"; fi
PY3=$(command -v python3)
rm -rf "$OUT"; mkdir -p "$OUT"

server_pid="" nginx_pid="" wrk_pid="" worker_pids="" CG_DIRS="" py_pid=""
source "$ROOT/bench/stack-stop.sh"
cleanup() {
    local rc=$?
    [ -n "$wrk_pid" ] && kill -TERM "$wrk_pid" 2>/dev/null || true
    [ -n "$py_pid" ] && { kill -TERM "$py_pid" 2>/dev/null; wait "$py_pid" 2>/dev/null; } || true
    stop_stack
    for d in $CG_DIRS; do
        for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        rmdir "$d" 2>/dev/null || true
    done
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
source "$ROOT/bench/stack-lib.sh"

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
FLAGS=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni)$' | xargs)
MACHINE="$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $CPU ($FLAGS), $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine: $MACHINE; load average before: $LOAD_BEFORE"

"$PYTHON" Tests/Reference/make_test_scans.py "$OUT/scans" >/dev/null
IMAGE=$OUT/scans/scan_baseline.jpg
make_body "$IMAGE"

# ------------------------------------------------------------------ 1: pipeline, interleaved fp32 / int8
for t in 1 2; do
    for m in fp32 int8; do
        manifest=$FP32; [ "$m" = int8 ] && manifest=$INT8
        log "pipeline $m, $t thread(s), $RUNS runs"
        "$BENCH_BIN" --image "$IMAGE" --manifest "$manifest" --threads "$t" --runs "$RUNS" --warmup "$WARMUP" > "$OUT/pipeline-$m-t$t.json"
    done
done

# ------------------------------------------------------------------ 2: the stack in the 1 GiB / 1 CPU cgroup
cgroup_peak() {  # -> bytes
    if [ "$CG_VERSION" = 1 ]; then cat "$cg/memory.max_usage_in_bytes"; else cat "$cg/memory.peak" 2>/dev/null || echo nan; fi
}
cgroup_ooms() {
    if [ "$CG_VERSION" = 1 ]; then awk '$1 == "oom_kill" {print $2}' "$cg/memory.oom_control"; else awk '$1 == "oom_kill" {print $2}' "$cg/memory.events"; fi
}
for m in fp32 int8; do
    manifest=$FP32; [ "$m" = int8 ] && manifest=$INT8
    make_cgroup
    STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=1 MEDISCOPE_TORCH_THREADS=1 MEDISCOPE_MANIFEST="$ROOT/$manifest")
    start_stack "cgroup-$m" bench/cgexec.sh "$CG_DIRS"
    run_wrk "cgroup-$m" "$CGROUP_CONNECTIONS" "$CGROUP_SECONDS" taskset -c 1
    {
        echo "peak_bytes=$(cgroup_peak)"
        echo "oom_kills=$(cgroup_ooms)"
        echo "restarts=$(pool_field inference restarts)"
        echo "inference=$(per_pool_rss inference)"
        echo "io=$(per_pool_rss io)"
        echo "master=$(awk '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {printf "%.0f MiB (anon %.0f, file %.0f)", r / 1024, a / 1024, f / 1024}' /proc/$server_pid/status)"
        echo "master_threads=$(awk '/^Threads/ {print $2}' /proc/$server_pid/status)"
    } > "$OUT/cgroup-$m.env"
    stop_stack
    for d in $CG_DIRS; do rmdir "$d" 2>/dev/null || true; done; CG_DIRS=""
done

# ------------------------------------------------------------------ 3: against the Python stack (optional)
if [ -x "$PY_VENV/bin/uvicorn" ]; then
    for m in fp32 int8; do
        manifest=$FP32; [ "$m" = int8 ] && manifest=$INT8
        STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=1 MEDISCOPE_TORCH_THREADS=1 MEDISCOPE_MANIFEST="$ROOT/$manifest")
        start_stack "core0-$m" taskset -c 0
        run_wrk "core0-$m" 1 "$PY_SECONDS" taskset -c 1
        stop_stack
    done
    log "Python stack on 127.0.0.1:$PY_PORT"
    taskset -c 0 env TORCH_THREADS=1 "$PY_VENV/bin/uvicorn" --app-dir bench/python-stack app:app --host 127.0.0.1 \
        --port "$PY_PORT" --workers 1 --log-level warning > "$OUT/python-stack.log" 2>&1 &
    py_pid=$!
    for i in $(seq 1 600); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PY_PORT/docs" && break; sleep 0.1; done
    code=$(curl -s -o "$OUT/python-first.json" -w '%{http_code}' --max-time 120 \
        -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" --data-binary @"$BODY" "http://127.0.0.1:$PY_PORT/api/analyses")
    [ "$code" = 201 ] || die "the Python stack answered $code: $(head -c 300 "$OUT/python-first.json")"
    PORT=$PY_PORT run_wrk python 1 "$PY_SECONDS" taskset -c 1
    kill -TERM "$py_pid"; wait "$py_pid" 2>/dev/null || true; py_pid=""
else
    log "no $PY_VENV: the Python-stack comparison is skipped (bash bench/python-stack/setup.sh makes it)"
fi

# ------------------------------------------------------------------ report
SECTION=$("$PY3" - "$OUT" <<'PY'
import json, re, sys
out = sys.argv[1]
def pipe(m, t): return json.load(open(f"{out}/pipeline-{m}-t{t}.json"))
def env(m): return dict(l.rstrip("\n").split("=", 1) for l in open(f"{out}/cgroup-{m}.env"))
def wrk(label):
    line = [l for l in open(f"{out}/{label}.txt") if l.startswith("RESULT")][0]
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
r = lambda a, b: f"{a / b:.3f}x" if b else "n/a"
rows = ["| threads | model | bare forward | whole analysis | forward stage | Grad-CAM | peak RSS at load | RSS after load | RSS steady | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|"]
ratios = []
for t in (1, 2):
    for m in ("fp32", "int8"):
        p = pipe(m, t)
        s = p["stageMedianMs"]
        rows.append(f"| {t} | {m} | {p['bareForwardLibtorchMedianMs']:.1f} ms | {p['analysisMedianMs']:.1f} ms | {s['forward']:.1f} ms "
                    f"| {s['gradCAM']:.1f} ms | {p['loadPeakRSSMB']:.0f} MiB | {p['afterLoadRSSMB']:.0f} MiB | {p['steadyRSSMB']:.0f} MiB | {p['peakRSSMB']:.0f} MiB |")
    f, q = pipe("fp32", t), pipe("int8", t)
    ratios.append(f"- {t} thread(s): int8 / fp32 bare forward **{r(q['bareForwardLibtorchMedianMs'], f['bareForwardLibtorchMedianMs'])}**, "
                  f"whole analysis **{r(q['analysisMedianMs'], f['analysisMedianMs'])}** (aim: at most 0.7x); "
                  f"peak RSS at load {f['loadPeakRSSMB']:.0f} -> {q['loadPeakRSSMB']:.0f} MiB, steady {f['steadyRSSMB']:.0f} -> {q['steadyRSSMB']:.0f} MiB")
cg = ["| model | cgroup peak | OOM kills | worker restarts | inference worker | io workers | master | requests/s | p50 | non-201 |",
      "|---|---|---|---|---|---|---|---|---|---|"]
for m in ("fp32", "int8"):
    e, w = env(m), wrk("cgroup-" + m)
    peak = e["peak_bytes"]
    peak = f"{int(peak) / 1048576:.0f} MiB" if peak.isdigit() else peak
    non201 = int(w["requests"]) - int(w.get("s201", 0))
    cg.append(f"| {m} | {peak} | {e['oom_kills']} | {e['restarts']} | {e['inference']} | {e['io']} | {e['master']} ({e['master_threads']} thread) "
              f"| {float(w['rps']):.2f} | {float(w['p50_ms']):.0f} ms | {non201} |")
lines = rows + [""] + ratios + ["", "Whole stack in the 1 GiB / 1 CPU cgroup:", ""] + cg
import os
if os.path.exists(f"{out}/python.txt"):
    runs = {m: wrk(m) for m in ("core0-fp32", "core0-int8", "python")}
    p = runs["python"]
    lines += ["", "Against the Python stack (each server on core 0 at 1 thread, 1 connection):", "",
              "| server | requests | requests/s | p50 per analysis | Python p50 / this p50 | this requests/s / Python's |", "|---|---|---|---|---|---|"]
    for m, name in (("core0-fp32", "Mediscope fp32"), ("core0-int8", "Mediscope int8"), ("python", "FastAPI + eager PyTorch + pytorch-grad-cam")):
        w = runs[m]
        lines.append(f"| {name} | {w['requests']} | {float(w['rps']):.2f} | {float(w['p50_ms']):.0f} ms "
                     f"| {float(p['p50_ms']) / float(w['p50_ms']):.2f}x | {float(w['rps']) / float(p['rps']):.2f}x |")
print("\n".join(lines))
PY
)

{
    echo "<!-- begin int8 -->"
    echo "## int8 vs fp32 (\`bench/int8.sh\`, issue 14)"
    echo
    echo "- date: $DATE"
    echo "- machine: $MACHINE; load average before the run: $LOAD_BEFORE (the machine is shared: other figures may move)"
    echo "- command: \`$COMMAND\`; image \`bench/out/int8/scans/scan_baseline.jpg\`; $RUNS runs after $WARMUP warm-up per row"
    echo "- stack: $CGROUP_CONNECTIONS wrk connections for $CGROUP_SECONDS s, 1 inference worker at 1 thread, wrk on core 1, the cgroup on core 0"
    echo
    echo "$SECTION"
    echo
    echo "Pipeline columns: medians of the pipeline's own timers (\"forward stage\" = features + head with"
    echo "autograd); \"bare forward\" = the module's \`forward\` in a loop through the shim; RSS of the"
    echo "mediscope-bench process (peak at load: every model loaded and checked with one blank run, no analysis"
    echo "yet). Worker RSS: /api/status rssKB (after its last request) and VmRSS at the end of the load."
    echo "<!-- end int8 -->"
} > "$OUT/section.md"

write_section int8 "$OUT/section.md"
cat "$OUT/section.md"
