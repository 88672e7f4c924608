#!/usr/bin/env bash
# The Firestore benchmark (`make bench-firestore`): MEDISCOPE_STORE=firestore against the real Firestore
# emulator on loopback, beside the SQLite default, in one invocation.
#   1. upload latency through nginx: a SQLite stack and a Firestore stack (emulator direct), both up at
#      once, same settings (WORKERS inference workers at 1 torch thread, stacks on core 0, wrk, emulator
#      and proxy on core 1), RUNS runs of DURATION s each, alternating SQLite / Firestore so that load
#      from other processes hits both alike; the fixed multipart POST of bench/server.sh (bench/post.lua).
#      After each Firestore run: how far the outbox was behind and how long it took to catch up.
#   2. requests per upload sent to Firestore: a third stack whose FIRESTORE_EMULATOR_HOST is a counting
#      proxy (bench/firestore.py proxy) that logs every request with the pid that sent it, so requests
#      are split into those made while handling the upload (inference worker: token and user lookups)
#      and those of the outbox delivery process (record + images commit, audit entry commit, probes);
#      back-to-back uploads, then isolated ones (one every ISOLATED_GAP s, longer than the 2 s caches).
#   3. outage and drain: the proxy refuses connections, OUTAGE_UPLOADS uploads (all must be 201 and the
#      outbox must hold them), then it listens again: time from the heal to an empty outbox, entries/s
#      and records/s; finally the emulator is read directly: each uploaded record exactly once.
# Writes the "firestore" section of bench/RESULTS.md; raw output in bench/out/firestore/. Everything it
# starts (nginx, mediscope, the emulator's process group, the proxy) is stopped on exit, also on error.
#   bash bench/firestore.sh
#   RUNS=3 DURATION=20 OUTAGE_UPLOADS=200 WORKERS=1 bash bench/firestore.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMMAND="$(for v in RUNS DURATION WORKERS STEADY_UPLOADS ISOLATED_UPLOADS ISOLATED_GAP OUTAGE_UPLOADS PORT; do
             if [ -n "${!v+x}" ]; then printf '%s=%s ' "$v" "${!v}"; fi; done)bash bench/firestore.sh"

BIN=${BIN:-$ROOT/.build/release/mediscope}
PYTHON=${PYTHON:-$ROOT/.venv-models/bin/python}
EMULATOR=${EMULATOR:-/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator}
PORT=${PORT:-18520}             # SQLite stack; PORT+1 Firestore stack; PORT+2 the stack behind the proxy
EMULATOR_PORT=$((PORT + 10))
PROXY_PORT=$((PORT + 11))
RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
WORKERS=${WORKERS:-1}
STEADY_UPLOADS=${STEADY_UPLOADS:-60}
ISOLATED_UPLOADS=${ISOLATED_UPLOADS:-5}
ISOLATED_GAP=${ISOLATED_GAP:-3}
OUTAGE_UPLOADS=${OUTAGE_UPLOADS:-200}
OUT=$ROOT/bench/out/firestore
log() { echo "bench-firestore: $(date +%H:%M:%S) $*" >&2; }
die() { log "$*"; exit 1; }

for t in wrk nginx curl taskset setsid java; do command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin; command -v "$t" >/dev/null || die "$t not found"; done
[ -x "$BIN" ] || die "$BIN missing (make build)"
[ -f models/brain_tumor_vgg16.pt ] || die "models/brain_tumor_vgg16.pt missing (make model)"
[ -x "$EMULATOR" ] || die "$EMULATOR missing (deploy/install-deps.sh installs google-cloud-cli-firestore-emulator)"
# Debian's python3 for the tooling: it starts in 0.1 s (a pyenv shim on PATH can take seconds).
PY3=/usr/bin/python3; [ -x "$PY3" ] || PY3=$(command -v python3)
TOOL=$ROOT/bench/firestore.py
for p in $PORT $((PORT + 1)) $((PORT + 2)) $EMULATOR_PORT $PROXY_PORT; do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/"; then die "127.0.0.1:$p is already in use (set PORT=...)"; fi
done
rm -rf "$OUT"; mkdir -p "$OUT"

# ------------------------------------------------------------------ cleanup
# Several stacks are up at once: stack-lib.sh's globals (server_pid, nginx_pid, worker_pids, VAR, PORT,
# TOKEN) are saved per stack name and restored by use_stack.
server_pid="" nginx_pid="" wrk_pid="" worker_pids="" emulator_pgid="" proxy_pid="" upload_pid="" STACKS=""
declare -A S_SERVER S_NGINX S_WORKERS S_VAR S_PORT S_TOKEN
source "$ROOT/bench/stack-stop.sh"
save_stack() { S_SERVER[$1]=$server_pid; S_NGINX[$1]=$nginx_pid; S_WORKERS[$1]=$worker_pids; S_VAR[$1]=$VAR; S_PORT[$1]=$PORT; S_TOKEN[$1]=$TOKEN; STACKS="$STACKS $1"; }
use_stack() { server_pid=${S_SERVER[$1]}; nginx_pid=${S_NGINX[$1]}; worker_pids=${S_WORKERS[$1]}; VAR=${S_VAR[$1]}; PORT=${S_PORT[$1]}; TOKEN=${S_TOKEN[$1]}; export TOKEN; }
stop_named() { use_stack "$1"; stop_stack; S_SERVER[$1]=""; S_NGINX[$1]=""; S_WORKERS[$1]=""; }
cleanup() {
    local rc=$? s
    trap - EXIT INT TERM
    [ -n "$wrk_pid" ] && kill -TERM "$wrk_pid" 2>/dev/null || true
    [ -n "$upload_pid" ] && { kill -TERM "$upload_pid" 2>/dev/null; wait "$upload_pid" 2>/dev/null; } || true
    stop_stack
    for s in $STACKS; do [ -n "${S_SERVER[$s]}${S_NGINX[$s]}" ] && stop_named "$s"; done
    [ -n "$proxy_pid" ] && { kill -TERM "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; } || true
    if [ -n "$emulator_pgid" ]; then
        kill -TERM -- "-$emulator_pgid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 -- "-$emulator_pgid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$emulator_pgid" 2>/dev/null || true
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
source "$ROOT/bench/stack-lib.sh"

# ------------------------------------------------------------------ machine and inputs
emulator_bench_context

"$PYTHON" Tests/Reference/make_test_scans.py "$OUT/scans" >/dev/null
IMAGE=$OUT/scans/scan_baseline.jpg
[ -f "$IMAGE" ] || die "no $IMAGE"
make_body "$IMAGE"

# ------------------------------------------------------------------ the emulator (own process group, core 1)
log "Firestore emulator on 127.0.0.1:$EMULATOR_PORT"
# Not a job-control shell: setsid makes the emulator the leader of a new process group without forking.
setsid taskset -c 1 "$EMULATOR" start --host=127.0.0.1 --port="$EMULATOR_PORT" > "$OUT/emulator.log" 2>&1 &
emulator_pgid=$(ps -o pgid= -p $! | tr -d ' ')
[ "$emulator_pgid" = "$!" ] || log "note: emulator pgid $emulator_pgid, pid $!"
t0=$(date +%s.%N)
for i in $(seq 1 600); do
    [ "$(curl -s --max-time 1 "http://127.0.0.1:$EMULATOR_PORT/" || true)" = Ok ] && break
    kill -0 -- "-$emulator_pgid" 2>/dev/null || die "the emulator exited: $(tail -5 "$OUT/emulator.log")"
    sleep 0.1
done
[ "$(curl -s --max-time 1 "http://127.0.0.1:$EMULATOR_PORT/" || true)" = Ok ] || die "the emulator did not answer in 60 s"
EMU_START=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
log "emulator ready after $EMU_START s"

# ------------------------------------------------------------------ helpers
outbox_field() { status_json | "$PY3" -c 'import json,sys; o=json.load(sys.stdin)["outbox"]; print(o[sys.argv[1]])' "$1"; }
# wait_drain TIMEOUT: until the outbox of the current stack has no waiting entry; prints the seconds waited.
wait_drain() {
    local t0 d i
    t0=$(date +%s.%N)
    for i in $(seq 1 $(( $1 * 20 ))); do
        d=$(outbox_field depth 2>/dev/null || echo x)
        [ "$d" = 0 ] && break
        sleep 0.05
    done
    [ "$d" = 0 ] || die "the outbox of $VAR did not drain in $1 s (depth $d)"
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f\n", b - a}'
}
# start_firestore_stack NAME PROJECT HOST:PORT [LAUNCHER...]: the Firestore settings go to serve and to
# `mediscope user add` (make_token) through the environment, only while this stack starts.
start_firestore_stack() {
    local name=$1 project=$2 host=$3; shift 3
    export MEDISCOPE_STORE=firestore MEDISCOPE_FIRESTORE_PROJECT_ID=$project FIRESTORE_EMULATOR_HOST=$host
    start_stack "$name" "$@"
    unset MEDISCOPE_STORE MEDISCOPE_FIRESTORE_PROJECT_ID FIRESTORE_EMULATOR_HOST
}
log_summary() {  # mediscope log -> "event xN; ..." of its warning and error lines
    "$PY3" -c 'import json, sys, collections
c = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("level") in ("warning", "error", "critical"): c["%s %s" % (e["level"], e.get("event"))] += 1
print("; ".join("%s x%d" % kv for kv in sorted(c.items())) or "none")' "$1"
}
first_id() { "$PY3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$VAR/log/first-response.json"; }

# ------------------------------------------------------------------ 1. upload latency: SQLite vs Firestore
STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=$WORKERS MEDISCOPE_TORCH_THREADS=1)
BASE_PORT=$PORT
PORT=$BASE_PORT
start_stack sqlite taskset -c 0
save_stack sqlite
PORT=$((BASE_PORT + 1))
start_firestore_stack firestore bench-latency "127.0.0.1:$EMULATOR_PORT" taskset -c 0
save_stack firestore
wait_drain 60 >/dev/null

for s in sqlite firestore; do use_stack "$s"; run_wrk "$s-warmup" "$WORKERS" 5 taskset -c 1; done
use_stack firestore; wait_drain 120 > /dev/null
# Stage timings of the measured runs only: /api/metrics (cumulative histograms) before and after.
metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT/api/metrics" > "$OUT/metrics-$1.txt"; }
for s in sqlite firestore; do use_stack "$s"; metrics "$s-before"; done
: > "$OUT/firestore-runs.txt"
for r in $(seq 1 "$RUNS"); do
    for s in sqlite firestore; do
        use_stack "$s"
        if [ "$s" = firestore ]; then before=$(outbox_field deliveries); fi
        run_wrk "$s-run$r" "$WORKERS" "$DURATION" taskset -c 1
        if [ "$s" = firestore ]; then
            depth=$(outbox_field depth) during=$(( $(outbox_field deliveries) - before ))
            catchup=$(wait_drain 300)
            echo "run=$r depth_at_end=$depth delivered_during=$during catchup_s=$catchup" >> "$OUT/firestore-runs.txt"
            log "firestore run $r: outbox depth at the end $depth, delivered during the run $during, empty $catchup s later"
        fi
    done
done
for s in sqlite firestore; do use_stack "$s"; metrics "$s-after"; done
use_stack firestore
status_json > "$OUT/firestore-status.json"
FS_ACCESS=$(upstream_statuses "$VAR/log/nginx-access.log" 1)
FS_LOG=$(log_summary "$VAR/log/mediscope.log")
use_stack sqlite
SQ_ACCESS=$(upstream_statuses "$VAR/log/nginx-access.log" 1)
stop_named sqlite
stop_named firestore
"$PY3" "$TOOL" verify --emulator "127.0.0.1:$EMULATOR_PORT" --project bench-latency --ids /dev/null > "$OUT/verify-latency.json" || true

# ------------------------------------------------------------------ 2 + 3: behind the counting proxy
log "counting proxy on 127.0.0.1:$PROXY_PORT"
PROXY_LOG=$OUT/proxy.jsonl
taskset -c 1 "$PY3" "$TOOL" proxy --port "$PROXY_PORT" --upstream "127.0.0.1:$EMULATOR_PORT" --log "$PROXY_LOG" --binary "$BIN" \
    > "$OUT/proxy.stderr" 2>&1 &
proxy_pid=$!
for i in $(seq 1 100); do grep -q '"event":"pass"' "$PROXY_LOG" 2>/dev/null && break; sleep 0.1; done
grep -q '"event":"pass"' "$PROXY_LOG" || die "the proxy did not start: $(cat "$OUT/proxy.stderr")"

# Workers never recycle here, so each pid keeps one role for the whole count.
STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=$WORKERS MEDISCOPE_TORCH_THREADS=1 MEDISCOPE_POOLS_INFERENCE_MAX_REQUESTS=0 MEDISCOPE_POOLS_IO_MAX_REQUESTS=0)
PORT=$((BASE_PORT + 2))
start_firestore_stack proxied bench-outage "127.0.0.1:$PROXY_PORT" taskset -c 0
save_stack proxied
first_id > "$OUT/ids-first.txt"
wait_drain 60 >/dev/null
URL="http://127.0.0.1:$PORT/api/analyses"
upload() {  # upload LABEL COUNT CONCURRENCY INTERVAL
    # In the background and waited for, so that a TERM / INT stops the script at once (see cleanup).
    taskset -c 1 "$PY3" "$TOOL" upload --url "$URL" --token "$TOKEN" --body "$BODY" --boundary "$BOUNDARY" \
        --count "$2" --concurrency "$3" --interval "$4" --out "$OUT/uploads-$1.jsonl" &
    upload_pid=$!
    wait "$upload_pid"; upload_pid=""
    local bad
    bad=$(grep -vc '"status": 201' "$OUT/uploads-$1.jsonl" || true)
    [ "$bad" = 0 ] || die "$1: $bad uploads not 201: $(grep -v '"status": 201' "$OUT/uploads-$1.jsonl" | head -2)"
}
count_requests() {  # count_requests LABEL SINCE UNTIL UPLOADS
    status_json > "$OUT/status-$1.json"
    "$PY3" "$TOOL" requests --log "$PROXY_LOG" --since "$2" --until "$3" --status "$OUT/status-$1.json" --uploads "$4" > "$OUT/requests-$1.json"
}

log "steady: $STEADY_UPLOADS uploads back to back ($WORKERS at a time)"
sleep 1
T0=$(date +%s.%N)
upload steady "$STEADY_UPLOADS" "$WORKERS" 0
wait_drain 120 >/dev/null
T1=$(date +%s.%N)
count_requests steady "$T0" "$T1" "$STEADY_UPLOADS"

log "isolated: $ISOLATED_UPLOADS uploads, one every $ISOLATED_GAP s"
sleep "$ISOLATED_GAP"
T2=$(date +%s.%N)
upload isolated "$ISOLATED_UPLOADS" 1 "$ISOLATED_GAP"
wait_drain 120 >/dev/null
T3=$(date +%s.%N)
count_requests isolated "$T2" "$T3" "$ISOLATED_UPLOADS"

log "outage: the proxy refuses connections; $OUTAGE_UPLOADS uploads ($WORKERS at a time)"
OUT_STATS_BEFORE=$(status_json | "$PY3" -c 'import json,sys; o=json.load(sys.stdin)["outbox"]; print(o["deliveries"], o["retries"], o["parkedTotal"])')
kill -USR1 "$proxy_pid"
for i in $(seq 1 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PROXY_PORT/" || break; sleep 0.05; done
curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PROXY_PORT/" && die "the proxy still accepts connections"
T4=$(date +%s.%N)
upload outage "$OUTAGE_UPLOADS" "$WORKERS" 0
T5=$(date +%s.%N)
status_json > "$OUT/status-outage.json"
read -r O_DEPTH O_RETRIES O_REACH O_PARKED O_AGE < <("$PY3" -c 'import json,sys; o=json.load(open(sys.argv[1]))["outbox"]
print(o["depth"], o["retries"], o["firestore"], o["parked"], round(o["oldestAgeSeconds"] or 0, 1))' "$OUT/status-outage.json")
log "outage: depth $O_DEPTH, retries so far $O_RETRIES, firestore $O_REACH"
[ "$O_DEPTH" -ge "$OUTAGE_UPLOADS" ] || die "the outbox holds $O_DEPTH entries after $OUTAGE_UPLOADS uploads"
"$PY3" "$TOOL" requests --log "$PROXY_LOG" --since "$T4" --until "$T5" --status "$OUT/status-outage.json" --uploads "$OUTAGE_UPLOADS" > "$OUT/requests-outage.json"

kill -USR2 "$proxy_pid"
HEAL=""
for i in $(seq 1 100); do
    HEAL=$("$PY3" -c 'import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"event\"")]
print(ev[-1]["t"] if ev and ev[-1]["event"] == "pass" and len(ev) > 1 else "")' "$PROXY_LOG")
    [ -n "$HEAL" ] && break; sleep 0.02
done
[ -n "$HEAL" ] || die "the proxy did not reopen"
log "healed; waiting for the outbox to drain"
EMPTY_AFTER=$(wait_drain 300)
T6=$(date +%s.%N)
status_json > "$OUT/status-drained.json"
"$PY3" "$TOOL" drain --log "$PROXY_LOG" --heal "$HEAL" > "$OUT/drain.json"
# From the heal to the empty outbox: what the status page showed (polled every 50 ms).
DRAIN_S=$(awk -v h="$HEAL" -v e="$T6" 'BEGIN {printf "%.2f", e - h}')
count_requests drain "$HEAL" "$T6" "$OUTAGE_UPLOADS"
cat "$OUT"/uploads-{steady,isolated,outage}.jsonl "$OUT/ids-first.txt" > "$OUT/ids-proxied.txt"
"$PY3" "$TOOL" verify --emulator "127.0.0.1:$EMULATOR_PORT" --project bench-outage --ids "$OUT/ids-proxied.txt" > "$OUT/verify-outage.json"
PX_LOG=$(log_summary "$VAR/log/mediscope.log")
stop_named proxied
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ report
{
    echo "date=$DATE"; echo "machine=$MACHINE"; echo "command=$COMMAND"; echo "nice=$NICE"; echo "versions=$VERSIONS"
    echo "emulator_start_s=$EMU_START"; echo "busy_before=$BUSY_BEFORE"; echo "load_before=$LOAD_BEFORE"; echo "load_after=$LOAD_AFTER"
    echo "body_bytes=$(stat -c %s "$BODY")"; echo "runs=$RUNS"; echo "duration=$DURATION"; echo "workers=$WORKERS"
    echo "isolated_gap=$ISOLATED_GAP"; echo "outage_uploads=$OUTAGE_UPLOADS"
    echo "outage_depth=$O_DEPTH"; echo "outage_retries=$O_RETRIES"; echo "outage_firestore=$O_REACH"; echo "outage_parked=$O_PARKED"
    echo "outage_oldest_s=$O_AGE"; echo "before_outage=$OUT_STATS_BEFORE"; echo "heal_t=$HEAL"; echo "drain_s=$DRAIN_S"
    echo "sqlite_access=$SQ_ACCESS"; echo "firestore_access=$FS_ACCESS"
    echo "firestore_log=$FS_LOG"; echo "proxied_log=$PX_LOG"
} > "$OUT/meta.txt"
"$PY3" "$TOOL" report --out "$OUT" > "$OUT/section.md"

write_section firestore "$OUT/section.md"
cat "$OUT/section.md"
