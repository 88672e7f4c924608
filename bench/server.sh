#!/usr/bin/env bash
# Serving benchmarks (`make bench-server`): the whole stack (mediscope serve + nginx on
# 127.0.0.1:$PORT) driven by wrk with a fixed multipart POST /api/analyses (bench/post.lua).
#   1. throughput / latency: (a) 1 inference worker, stack pinned to core 0; (b) 2 workers, 2 cores;
#      connections = workers; median of RUNS runs of DURATION s; p50 at 1 connection vs the CLI
#      pipeline (mediscope-bench, same image, 1 thread, core 0, this run)
#   2. overload: 16 connections on 1 worker (backlog 4) -> 201 / 503 / other counts, 503 latency
#   3. "1 GiB / 1 vCPU box": the stack inside a memory (1 GiB) + cpuset (1 core) cgroup, 4 clients,
#      CGROUP_WORKERS (2) inference workers
#   4. soak: SOAK_SECONDS at capacity (2 workers, 2 connections, max.requests=0), worker RSS every 10 s
# Writes the server section of bench/RESULTS.md (after `<!-- end pipeline -->`); raw output in
# bench/out/server/. Everything it starts is stopped on exit; all traffic goes to 127.0.0.1.
#   bash bench/server.sh                      (SOAK_SECONDS=600 by default)
#   SOAK_SECONDS=300 RUNS=3 DURATION=20 bash bench/server.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# The exact command, with the settings the caller gave (read before the defaults fill them in).
COMMAND="$(for v in RUNS DURATION OVERLOAD_SECONDS OVERLOAD_CONNECTIONS CGROUP_SECONDS CGROUP_CONNECTIONS CGROUP_WORKERS CGROUP_MEMORY SOAK_SECONDS SOAK_WARMUP CLI_RUNS PORT; do
             if [ -n "${!v+x}" ]; then printf '%s=%s ' "$v" "${!v}"; fi; done)bash bench/server.sh"

BIN=${BIN:-$ROOT/.build/release/mediscope}
BENCH_BIN=${BENCH_BIN:-$ROOT/.build/release/mediscope-bench}
PYTHON=${PYTHON:-$ROOT/.venv-models/bin/python}
PORT=${PORT:-18480}
RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
OVERLOAD_SECONDS=${OVERLOAD_SECONDS:-20}
OVERLOAD_CONNECTIONS=${OVERLOAD_CONNECTIONS:-16}
CGROUP_SECONDS=${CGROUP_SECONDS:-60}
CGROUP_CONNECTIONS=${CGROUP_CONNECTIONS:-4}
# Two inference workers in the 1 GiB box: the weights they share from the fork server are paid once.
CGROUP_WORKERS=${CGROUP_WORKERS:-2}
CGROUP_MEMORY=${CGROUP_MEMORY:-1073741824}
SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_WARMUP=${SOAK_WARMUP:-30}
SAMPLE_EVERY=10
CLI_RUNS=${CLI_RUNS:-30}
OUT=$ROOT/bench/out/server
CG_NAME=mediscope-bench
log() { echo "bench-server: $*" >&2; }
die() { log "$*"; exit 1; }

# ------------------------------------------------------------------ tools
command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }
for t in wrk nginx curl taskset python3; do command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin; command -v "$t" >/dev/null || die "$t not found"; done
[ -x "$BIN" ] || die "$BIN missing (make build)"
[ -x "$BENCH_BIN" ] || die "$BENCH_BIN missing (swift build -c release --product mediscope-bench)"
[ -f models/brain_tumor_vgg16.pt ] || die "models/brain_tumor_vgg16.pt missing (make model)"
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then die "127.0.0.1:$PORT is already in use (set PORT=...)"; fi
PY3=$(command -v python3)

rm -rf "$OUT"; mkdir -p "$OUT"

# ------------------------------------------------------------------ cleanup
server_pid="" nginx_pid="" wrk_pid="" worker_pids="" CG_DIRS=""
source "$ROOT/bench/stack-stop.sh"
cleanup() {
    local rc=$?
    [ -n "$wrk_pid" ] && kill -TERM "$wrk_pid" 2>/dev/null || true
    stop_stack
    for d in $CG_DIRS; do
        # Any process still inside (there should be none) would keep the cgroup alive.
        for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        rmdir "$d" 2>/dev/null || true
    done
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$ROOT/bench/stack-lib.sh"
# ------------------------------------------------------------------ machine and inputs
MACHINE=$(machine_summary)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
VERSIONS="$(nginx -v 2>&1 | sed 's/.*: //'), $( (wrk -v 2>&1 || true) | head -1 | awk '{print $1, $2}')"
log "machine: $MACHINE"
# How busy the machine is before anything starts (other processes skew every figure below).
BUSY_BEFORE=$(busy_pct 3)
log "CPU busy before start (3 s, all cores): $BUSY_BEFORE%"

"$PYTHON" Tests/Reference/make_test_scans.py "$OUT/scans" >/dev/null
IMAGE=$OUT/scans/scan_baseline.jpg
[ -f "$IMAGE" ] || die "no $IMAGE"
make_body "$IMAGE"

# ------------------------------------------------------------------ CLI reference (same image, 1 thread, core 0)
log "CLI pipeline reference: mediscope-bench, 1 thread, core 0, $CLI_RUNS runs"
taskset -c 0 "$BENCH_BIN" --image "$IMAGE" --threads 1 --runs "$CLI_RUNS" --warmup 5 > "$OUT/cli-t1.json"
CLI_MS=$("$PY3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["analysisMedianMs"])' "$OUT/cli-t1.json")
log "CLI median per analysis: $CLI_MS ms"

# ------------------------------------------------------------------ 1a + 2: 1 worker on core 0
STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=1 MEDISCOPE_TORCH_THREADS=1)
start_stack a taskset -c 0
run_wrk a-warmup 1 5 taskset -c 1
for r in $(seq 1 "$RUNS"); do
    run_wrk "a-run$r" 1 "$DURATION" taskset -c 1
done
A_RESTARTS=$(pool_field inference restarts)

log "overload: $OVERLOAD_CONNECTIONS connections on 1 worker for $OVERLOAD_SECONDS s"
ACCESS=$VAR/log/nginx-access.log
from=$(( $(wc -l < "$ACCESS") + 1 ))
run_wrk overload "$OVERLOAD_CONNECTIONS" "$OVERLOAD_SECONDS" taskset -c 1
sleep 1
OV_201=$(access_stats "$ACCESS" "$from" 201) OV_503=$(access_stats "$ACCESS" "$from" 503)
OV_UPSTREAM=$(upstream_statuses "$ACCESS" "$from")
OV_MAXQ=$(pool_field inference maxListenQueue) OV_RESTARTS=$(pool_field inference restarts)
# A separate timing of single 503s: one curl while 16 wrk connections keep the worker and backlog full.
run_wrk overload-bg "$OVERLOAD_CONNECTIONS" 12 taskset -c 1 & wrk_pid=$!
sleep 3
: > "$OUT/overload-curl.txt"
for i in $(seq 1 20); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 60 \
        -H "Authorization: Bearer $TOKEN" \
        -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" --data-binary @"$BODY" \
        "http://127.0.0.1:$PORT/api/analyses" >> "$OUT/overload-curl.txt"
    sleep 0.2
done
wait "$wrk_pid" || true; wrk_pid=""
CURL_503=$(awk '$1 == 503 {print $2 * 1000}' "$OUT/overload-curl.txt")
CURL_503_N=$(printf '%s\n' $CURL_503 | grep -c . || true)
CURL_503_MED=$(median $CURL_503) CURL_503_MAX=$(printf '%s\n' $CURL_503 0 | sort -g | tail -1)
CURL_CODES=$(awk '{c[$1]++} END {for (k in c) printf "%s=%d ", k, c[k]}' "$OUT/overload-curl.txt")
A_EVENTS=$(log_events "$VAR/log/mediscope.log") A_NGINX_ERR=$(nginx_errors "$VAR/log/nginx-error.log")
cp "$VAR/log/nginx-error.log" "$OUT/a-nginx-error.log" 2>/dev/null || true
stop_stack

# ------------------------------------------------------------------ 1b: 2 workers on 2 cores
STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=2 MEDISCOPE_TORCH_THREADS=1)
start_stack b
run_wrk b-warmup 2 5
for r in $(seq 1 "$RUNS"); do
    run_wrk "b-run$r" 2 "$DURATION"
done
B_RESTARTS=$(pool_field inference restarts)
B_EVENTS=$(log_events "$VAR/log/mediscope.log") B_NGINX_ERR=$(nginx_errors "$VAR/log/nginx-error.log")
stop_stack

collect() {  # collect PREFIX KEY -> values of KEY over PREFIX-run1..RUNS
    local r; for r in $(seq 1 "$RUNS"); do kv "$OUT/$1-run$r.txt" "$2"; done
}
A_RPS=$(median $(collect a rps)) A_P50=$(median $(collect a p50_ms)) A_P99=$(median $(collect a p99_ms))
B_RPS=$(median $(collect b rps)) B_P50=$(median $(collect b p50_ms)) B_P99=$(median $(collect b p99_ms))
A_NON=$(for r in $(seq 1 "$RUNS"); do f=$OUT/a-run$r.txt; echo $(( $(kv "$f" requests) - $(kv "$f" s201) )); done | awk '{s += $1} END {print s + 0}')
B_NON=$(for r in $(seq 1 "$RUNS"); do f=$OUT/b-run$r.txt; echo $(( $(kv "$f" requests) - $(kv "$f" s201) )); done | awk '{s += $1} END {print s + 0}')
A_REQ=$(collect a requests | awk '{s += $1} END {print s + 0}') B_REQ=$(collect b requests | awk '{s += $1} END {print s + 0}')
HTTP_OVERHEAD=$(awk -v a="$A_P50" -v b="$CLI_MS" 'BEGIN {printf "%+.1f", (a / b - 1) * 100}')

# ------------------------------------------------------------------ 3: the 1 GiB / 1 CPU box
make_cgroup
STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=$CGROUP_WORKERS MEDISCOPE_TORCH_THREADS=1)
start_stack cgroup bench/cgexec.sh "$CG_DIRS"
in_cg=0
for p in $server_pid $nginx_pid $worker_pids; do grep -qx "$p" "$cg/cgroup.procs" && in_cg=$((in_cg + 1)); done
CG_PROCS="$in_cg of $(echo $server_pid $nginx_pid $worker_pids | wc -w) (master, nginx master, workers) in the cgroup"
run_wrk cgroup "$CGROUP_CONNECTIONS" "$CGROUP_SECONDS" taskset -c 1
C_RESTARTS=$(pool_field inference restarts)
# rssKB in /api/status is written by a worker after each request (0 before its first); VmRSS is now.
C_WORKERS=$(per_pool_rss inference) C_IO_RSS=$(per_pool_rss io)
C_MASTER_RSS=$(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/$server_pid/status)
if [ "$CG_VERSION" = 1 ]; then
    C_PEAK=$(cat "$cg/memory.max_usage_in_bytes") C_FAILCNT=$(cat "$cg/memory.failcnt")
    C_OOM=$(awk '$1 == "oom_kill" {print $2}' "$cg/memory.oom_control")
    C_STAT=$(awk '$1 == "total_rss" || $1 == "total_cache" || $1 == "total_shmem" {printf "%s %.0f MiB; ", $1, $2 / 1048576}' "$cg/memory.stat")
    C_PEAK_SRC=memory.max_usage_in_bytes
else
    C_PEAK=$(cat "$cg/memory.peak" 2>/dev/null || echo nan) C_FAILCNT="max=$(awk '$1 == "max" {print $2}' "$cg/memory.events")"
    C_OOM=$(awk '$1 == "oom_kill" {print $2}' "$cg/memory.events")
    C_STAT=$(awk '$1 == "anon" || $1 == "file" || $1 == "shmem" {printf "%s %.0f MiB; ", $1, $2 / 1048576}' "$cg/memory.stat")
    C_PEAK_SRC=memory.peak
fi
C_EVENTS=$(log_events "$VAR/log/mediscope.log") C_NGINX_ERR=$(nginx_errors "$VAR/log/nginx-error.log")
C_UPSTREAM=$(upstream_statuses "$VAR/log/nginx-access.log" 1)
stop_stack
for d in $CG_DIRS; do rmdir "$d" 2>/dev/null || true; done; CG_DIRS=""

# ------------------------------------------------------------------ 4: soak
STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=2 MEDISCOPE_TORCH_THREADS=1 MEDISCOPE_POOLS_INFERENCE_MAX_REQUESTS=0)
start_stack soak
log "soak: ${SOAK_WARMUP} s warm-up + $SOAK_SECONDS s at 2 connections, RSS every $SAMPLE_EVERY s"
run_wrk soak 2 $(( SOAK_WARMUP + SOAK_SECONDS + 5 )) & wrk_pid=$!
t0=$(date +%s)
echo "t_s pid status_rss_kb vmrss_kb requests" > "$OUT/soak-rss.txt"
samples=$(( SOAK_SECONDS / SAMPLE_EVERY ))
for i in $(seq 0 "$samples"); do
    target=$(( t0 + SOAK_WARMUP + i * SAMPLE_EVERY ))
    now=$(date +%s); [ "$target" -gt "$now" ] && sleep $(( target - now ))
    inference_workers | while read -r pid rss req; do
        echo "$(( $(date +%s) - t0 - SOAK_WARMUP )) $pid $rss $(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0) $req"
    done >> "$OUT/soak-rss.txt" || true
done
wait "$wrk_pid" || true; wrk_pid=""
S_RESTARTS=$(pool_field inference restarts)
S_EVENTS=$(log_events "$VAR/log/mediscope.log") S_NGINX_ERR=$(nginx_errors "$VAR/log/nginx-error.log")
S_TABLE=$("$PY3" - "$OUT/soak-rss.txt" <<'PY'
import sys, collections
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:] if l.strip()]
by = collections.OrderedDict()
for t, pid, srss, vm, req in rows:
    by.setdefault(pid, []).append((int(t), int(srss), int(vm), int(req)))
for pid, s in by.items():
    f, l = s[0], s[-1]
    peak = max(x[2] for x in s)
    g = (l[2] / f[2] - 1) * 100 if f[2] else float("nan")
    gs = (l[1] / f[1] - 1) * 100 if f[1] else float("nan")
    print(f"| {pid} | {len(s)} | {f[0]} s -> {l[0]} s | {f[3]} -> {l[3]} | {f[2]/1024:.1f} MiB | {l[2]/1024:.1f} MiB | "
          f"{peak/1024:.1f} MiB | {g:+.2f}% | {f[1]/1024:.1f} -> {l[1]/1024:.1f} MiB ({gs:+.2f}%) |")
PY
)
S_MAXGROWTH=$("$PY3" - "$OUT/soak-rss.txt" <<'PY'
import sys, collections
by = collections.defaultdict(list)
for l in open(sys.argv[1]).read().splitlines()[1:]:
    t, pid, srss, vm, req = l.split(); by[pid].append(int(vm))
print("%.2f" % max((v[-1] / v[0] - 1) * 100 for v in by.values() if v[0]) if by else "nan")
PY
)
stop_stack

# ------------------------------------------------------------------ RESULTS.md
row() {  # row LABEL PREFIX CONNS
    local r f line=""
    for r in $(seq 1 "$RUNS"); do
        f=$OUT/$2-run$r.txt
        line="$line$(fmt "$(kv "$f" rps)" 2) / $(fmt "$(kv "$f" p50_ms)" 0) / $(fmt "$(kv "$f" p99_ms)" 0); "
    done
    echo "| $1 | $3 | $(fmt "${4}" 2) | $(fmt "${5}" 0) ms | $(fmt "${6}" 0) ms | ${line%; } |"
}
S_REQ=$(kv "$OUT/soak.txt" requests) S_201=$(kv "$OUT/soak.txt" s201) S_RPS=$(kv "$OUT/soak.txt" rps)
OV_REQ=$(kv "$OUT/overload.txt" requests)
OV_OTHER=$(( $(kv "$OUT/overload.txt" s429) + $(kv "$OUT/overload.txt" s5xx_other) + $(kv "$OUT/overload.txt" s_other) ))
OV_ERR="connect $(kv "$OUT/overload.txt" err_connect), read $(kv "$OUT/overload.txt" err_read), write $(kv "$OUT/overload.txt" err_write), timeout $(kv "$OUT/overload.txt" err_timeout)"
C_REQ=$(kv "$OUT/cgroup.txt" requests) C_201=$(kv "$OUT/cgroup.txt" s201) C_503=$(kv "$OUT/cgroup.txt" s503)
C_OTHER=$(( C_REQ - C_201 - C_503 ))
C_ERR="connect $(kv "$OUT/cgroup.txt" err_connect), read $(kv "$OUT/cgroup.txt" err_read), write $(kv "$OUT/cgroup.txt" err_write), timeout $(kv "$OUT/cgroup.txt" err_timeout)"
SOAK_NOTE=""
[ "$SOAK_SECONDS" -lt 600 ] && SOAK_NOTE=" **Shortened soak: SOAK_SECONDS=$SOAK_SECONDS instead of the default 600.**"

{
    echo "<!-- begin server -->"
    echo "## Server (nginx + FastCGI pools, wrk, POST /api/analyses)"
    echo
    echo "Written by \`bench/server.sh\` (\`make bench-server\`)."
    echo
    echo "- date: $DATE"
    echo "- machine: $MACHINE"
    echo "- command: \`$COMMAND\`; $VERSIONS"
    echo "- background load: all-core CPU busy over 3 s before the script started anything: $BUSY_BEFORE%; load average at the end (before the report): $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- request: POST /api/analyses through nginx (127.0.0.1:$PORT), fixed multipart body ($(stat -c %s "$BODY") bytes): \`patient_id\` + the 512x512 baseline JPEG \`scan_baseline.jpg\` from Tests/Reference/make_test_scans.py; wrk -s bench/post.lua counts statuses"
    echo "- every stack is fresh (new \$VAR under bench/out/server/), 1 torch thread per inference worker, warmed up (1 POST + 5 s of wrk) before measuring; figures are medians of $RUNS runs of $DURATION s unless said otherwise; ratios use figures from this one invocation"
    echo
    echo "### 1. Throughput and latency at capacity (connections = workers, no queueing)"
    echo
    echo "| configuration | connections | req/s (median) | p50 (median) | p99 (median) | each run: req/s / p50 ms / p99 ms |"
    echo "|---|---|---|---|---|---|"
    row "(a) 1 inference worker, whole stack \`taskset -c 0\`, wrk on core 1" a 1 "$A_RPS" "$A_P50" "$A_P99"
    row "(b) 2 inference workers, 2 cores (wrk unpinned)" b 2 "$B_RPS" "$B_P50" "$B_P99"
    echo
    echo "- statuses: (a) $A_REQ requests, $A_NON not 201; (b) $B_REQ requests, $B_NON not 201; worker restarts (a) $A_RESTARTS, (b) $B_RESTARTS"
    echo "- CLI pipeline, same image, 1 thread, \`taskset -c 0 mediscope-bench --runs $CLI_RUNS\` in this invocation: **$(fmt "$CLI_MS" 1) ms** median per analysis"
    echo "- HTTP end to end at 1 connection (a) p50 $(fmt "$A_P50" 1) ms vs CLI $(fmt "$CLI_MS" 1) ms: **$(ratio "$A_P50" "$CLI_MS")x ($HTTP_OVERHEAD%)** (aim: < +10%) $(awk -v a="$A_P50" -v b="$CLI_MS" 'BEGIN {print (a / b - 1 < 0.10) ? "- met" : "- MISSED"}')"
    echo "- scaling (b) / (a) throughput: $(ratio "$B_RPS" "$A_RPS")x with 2 workers on 2 cores; (b) p50 / CLI: $(ratio "$B_P50" "$CLI_MS")x"
    echo
    echo "### 2. Overload: $OVERLOAD_CONNECTIONS connections on 1 worker (backlog 4, stack on core 0), $OVERLOAD_SECONDS s, one run"
    echo
    echo "- responses: $OV_REQ in total: **201: $(kv "$OUT/overload.txt" s201), 503: $(kv "$OUT/overload.txt" s503), anything else: $OV_OTHER** (429 $(kv "$OUT/overload.txt" s429), other 5xx $(kv "$OUT/overload.txt" s5xx_other), other $(kv "$OUT/overload.txt" s_other)); wrk socket errors: $OV_ERR"
    echo "- nginx access log, status/upstream_status: $OV_UPSTREAM"
    echo "- latency from the access log (request_time), count / p50 / p99 / max: 201: $(echo $OV_201 | awk '{printf "%s / %s ms / %s ms / %s ms", $1, $2, $3, $4}'); **503: $(echo $OV_503 | awk '{printf "%s / %s ms / %s ms / %s ms", $1, $2, $3, $4}')**"
    echo "- 201 throughput during overload: $(fmt "$(awk -v n="$(kv "$OUT/overload.txt" s201)" -v d="$(kv "$OUT/overload.txt" duration_us)" 'BEGIN {print n / (d / 1e6)}')" 2) req/s = $(ratio "$(awk -v n="$(kv "$OUT/overload.txt" s201)" -v d="$(kv "$OUT/overload.txt" duration_us)" 'BEGIN {print n / (d / 1e6)}')" "$A_RPS")x of (a)'s $(fmt "$A_RPS" 2) req/s (the 503s are served by nginx on the same core)"
    echo "- nginx's request_time has 1 ms resolution (0.0 = under 1 ms); 499 = requests still in flight when wrk stopped at its -d deadline (client closed)"
    echo "- wrk's mixed latency (201 and 503 together): p50 $(fmt "$(kv "$OUT/overload.txt" p50_ms)" 1) ms, p99 $(fmt "$(kv "$OUT/overload.txt" p99_ms)" 1) ms"
    echo "- separate curl timing while $OVERLOAD_CONNECTIONS wrk connections keep the pool full: 20 POSTs -> ${CURL_CODES}; 503s ($CURL_503_N): median $(fmt "$CURL_503_MED" 1) ms, max $(fmt "$CURL_503_MAX" 1) ms (curl time_total)"
    echo "- pool: max listen queue seen $OV_MAXQ; worker restarts $OV_RESTARTS; mediscope log $A_EVENTS; nginx error log lines (not notice) $A_NGINX_ERR"
    echo
    echo "### 3. The \"1 GiB / 1 vCPU box\": whole stack in one cgroup, $CGROUP_WORKERS inference workers, $CGROUP_CONNECTIONS clients, $CGROUP_SECONDS s, one run"
    echo
    echo "- cgroup v$CG_VERSION: memory limit $((CGROUP_MEMORY / 1048576)) MiB (memsw too when present), cpuset core 0, cpu quota 100000/100000 us; started through bench/cgexec.sh (writes its pid to cgroup.procs, then execs); $CG_PROCS; wrk outside, on core 1"
    echo "- responses: $C_REQ: **201: $C_201, 503: $C_503, anything else: $C_OTHER**; wrk socket errors: $C_ERR; $(fmt "$(kv "$OUT/cgroup.txt" rps)" 2) req/s, p50 $(fmt "$(kv "$OUT/cgroup.txt" p50_ms)" 0) ms, p99 $(fmt "$(kv "$OUT/cgroup.txt" p99_ms)" 0) ms (latency includes waiting in the backlog: $CGROUP_CONNECTIONS clients, $CGROUP_WORKERS workers on one core)"
    echo "- access log status/upstream_status (incl. the start-up POST; 499 = in flight when wrk stopped): $C_UPSTREAM"
    echo "- **OOM kills: $C_OOM**; limit hits (failcnt$( [ "$CG_VERSION" = 2 ] && echo ' / memory.events max')): $C_FAILCNT; worker restarts (status): **$C_RESTARTS**; mediscope log $C_EVENTS; nginx error lines $C_NGINX_ERR"
    echo "- **cgroup peak memory ($C_PEAK_SRC): $(awk -v b="$C_PEAK" 'BEGIN {printf "%.0f MiB", b / 1048576}')**; at the end: $C_STAT"
    echo "- RSS at the end (/api/status rssKB, written after each request; /proc VmRSS now): inference: $C_WORKERS; io: $C_IO_RSS; master: $C_MASTER_RSS"
    echo
    echo "### 4. Soak: 2 workers, 2 connections, ${SOAK_WARMUP} s warm-up then $SOAK_SECONDS s, RSS every $SAMPLE_EVERY s"
    echo
    echo "MEDISCOPE_POOLS_INFERENCE_MAX_REQUESTS=0 (workers never recycle on request count) so each row is one process; the pool's 700 MB memory recycle limit stayed on.$SOAK_NOTE"
    echo "wrk: $S_REQ requests ($S_201 x 201), $(fmt "$S_RPS" 2) req/s, p50 $(fmt "$(kv "$OUT/soak.txt" p50_ms)" 0) ms, p99 $(fmt "$(kv "$OUT/soak.txt" p99_ms)" 0) ms; worker restarts $S_RESTARTS; mediscope log $S_EVENTS; nginx error lines $S_NGINX_ERR."
    echo
    echo "| worker pid | samples | sampled | requests served | VmRSS first | VmRSS last | VmRSS peak | growth first->last | /api/status rssKB first -> last |"
    echo "|---|---|---|---|---|---|---|---|---|"
    echo "$S_TABLE"
    echo
    echo "Largest growth: **$S_MAXGROWTH%** (aim: < 5%) $(awk -v g="$S_MAXGROWTH" 'BEGIN {print (g < 5) ? "- met" : "- MISSED"}'). Samples: bench/out/server/soak-rss.txt."
    echo "<!-- end server -->"
} > "$OUT/section.md"

# Keep the pipeline section (up to <!-- end pipeline -->) and any other sections; replace the server section.
if [ -f bench/RESULTS.md ] && grep -q '^<!-- end pipeline -->' bench/RESULTS.md; then
    sed '/^<!-- end pipeline -->/q' bench/RESULTS.md > "$OUT/results.new"
    sed '1,/^<!-- end pipeline -->/d' bench/RESULTS.md | sed '/^<!-- begin server -->/,/^<!-- end server -->/d' > "$OUT/rest.md"
else
    { echo "# Benchmark results"; echo; echo "(pipeline section: run \`bash bench/run.sh\`)"; echo; echo '<!-- end pipeline -->'; } > "$OUT/results.new"
    : > "$OUT/rest.md"
fi
sed -i '/./,$!d' "$OUT/rest.md"   # drop leading blank lines
{ cat "$OUT/results.new"; echo; cat "$OUT/section.md"; [ -s "$OUT/rest.md" ] && { echo; cat "$OUT/rest.md"; }; true; } > bench/RESULTS.md.new
mv bench/RESULTS.md.new bench/RESULTS.md
cat "$OUT/section.md"
