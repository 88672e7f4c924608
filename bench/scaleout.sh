#!/usr/bin/env bash
# The scale-out benchmark (`make bench-scaleout`): uploads per second through one nginx load balancer
# with ONE application host pinned to one core, then with TWO application hosts pinned to one core
# each, in one invocation, on simulated hosts (network namespaces, Tests/Support/netns-lab.sh):
#   lb  nginx, rendered from nginx/local.conf.template by deploy/render-nginx.sh with UPSTREAM_HOSTS
#       (one host: "A B=down" or "A=down B"; two hosts: "A B"; switched with a reload)
#   a   mediscope serve, MEDISCOPE_STORE=firestore, pools on tcp:A:9000/9001, allowed clients = lb,
#       1 inference worker at 1 torch thread, the whole host `taskset -c 0`
#   b   the same on core 1
#   fs  the Firestore emulator (the store both hosts share)
# wrk (bench/post.lua, the fixed multipart POST of bench/server.sh) runs in the root namespace with
# CONNS_PER_HOST connections per serving host (2: one upload running and one waiting on each host, under
# nginx's max_conns of 5 per host, so no 503 is expected; 503s are counted apart all the same).
# nginx, the emulator and wrk are not pinned: they share the two cores with the hosts, and the CPU every
# part uses during each run is measured (/proc, bench/scaleout.py) to show what limits the ratio.
# RUNS runs of DURATION s per phase, ordered one/two, two/one, ... (the one-host phase alternates host
# a and host b); after each run both outboxes are left to empty. The machine may be shared: a run
# during which processes outside the lab used more than DISTURBED cores is measured again (RETRIES
# at most, after waiting until they calm down) and the report says so. Medians and the ratio go into the
# "scaleout" section of bench/RESULTS.md; raw output in bench/out/scaleout/. Everything it starts
# (the namespaces and every process in them, the emulator's process group, nginx, wrk) is stopped on
# exit, also on error.
#   bash bench/scaleout.sh
#   RUNS=4 DURATION=30 WARMUP=60 CONNS_PER_HOST=2 IDLE=5 bash bench/scaleout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMMAND="$(for v in RUNS DURATION WARMUP CONNS_PER_HOST IDLE DISTURBED RETRIES QUIET QUIET_BUDGET; do
             if [ -n "${!v+x}" ]; then printf '%s=%s ' "$v" "${!v}"; fi; done)bash bench/scaleout.sh"

BIN=${BIN:-$ROOT/.build/release/mediscope}
PYTHON=${PYTHON:-$ROOT/.venv-models/bin/python}
EMULATOR=${EMULATOR:-/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator}
RUNS=${RUNS:-4}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-60}             # s of wrk on both hosts before the runs (the emulator's JIT settles)
CONNS_PER_HOST=${CONNS_PER_HOST:-2}
IDLE=${IDLE:-5}                 # seconds of CPU sampling without load, after the warm-up
# On a shared machine: a run during which processes outside the lab use more than DISTURBED cores is
# measured again, at most RETRIES times per invocation, after waiting (QUIET_BUDGET s in all) until
# they use under QUIET cores.
DISTURBED=${DISTURBED:-0.10}
QUIET=${QUIET:-0.05}
RETRIES=${RETRIES:-3}
QUIET_BUDGET=${QUIET_BUDGET:-120}
PROJECT=bench-scaleout
OUT=$ROOT/bench/out/scaleout
LAB=msl$$
log() { echo "bench-scaleout: $(date +%H:%M:%S) $*" >&2; }
die() { log "$*"; exit 1; }

PATH=$PATH:/usr/sbin:/sbin
for t in wrk nginx curl taskset setsid ip ss java; do command -v "$t" >/dev/null || die "$t not found"; done
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
[ -x "$BIN" ] || die "$BIN missing (make build)"
[ -f models/brain_tumor_vgg16.pt ] || die "models/brain_tumor_vgg16.pt missing (make model)"
[ -x "$EMULATOR" ] || die "$EMULATOR missing (deploy/install-deps.sh installs google-cloud-cli-firestore-emulator)"
[ "$(nproc)" -ge 2 ] || die "needs 2 cores"
[ "$DURATION" -ge 5 ] || die "DURATION must be at least 5 s"
# Debian's python3 for the tooling: it starts in 0.1 s (a pyenv shim on PATH can take seconds).
PY3=/usr/bin/python3; [ -x "$PY3" ] || PY3=$(command -v python3)
TOOL=$ROOT/bench/scaleout.py
rm -rf "$OUT"; mkdir -p "$OUT"

# ------------------------------------------------------------------ cleanup
declare -A HOST_PID=()
nginx_pid="" wrk_pid="" emulator_pgid="" lab_up=""
stop_processes() {  # hosts: TERM (graceful, up to 30 s); nginx: QUIT
    local p i
    for p in "${HOST_PID[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    [ -n "$nginx_pid" ] && { kill -QUIT "$nginx_pid" 2>/dev/null || true; }
    for i in $(seq 1 300); do
        local alive=""
        for p in "${HOST_PID[@]}" $nginx_pid; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for p in "${HOST_PID[@]}" $nginx_pid; do kill -0 "$p" 2>/dev/null && { log "killing leftover pid $p"; kill -KILL "$p" 2>/dev/null || true; }; done
    # (never a bare `wait`: it would wait for the emulator too)
    for p in "${HOST_PID[@]}" $nginx_pid; do wait "$p" 2>/dev/null || true; done
    HOST_PID=() nginx_pid=""
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$wrk_pid" ] && { kill -TERM "$wrk_pid" 2>/dev/null; wait "$wrk_pid" 2>/dev/null; } || true
    stop_processes
    if [ -n "$emulator_pgid" ]; then
        kill -TERM -- "-$emulator_pgid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 -- "-$emulator_pgid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$emulator_pgid" 2>/dev/null || true
    fi
    # Kills anything left in the namespaces and removes them.
    [ -n "$lab_up" ] && { bash Tests/Support/netns-lab.sh down "$LAB" || true; }
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
source "$ROOT/bench/stack-lib.sh"   # machine_summary busy_pct write_section make_body

# ------------------------------------------------------------------ machine and inputs
emulator_bench_context
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT (with uncommitted changes in the working tree)"; fi
BINARY="${BIN#$ROOT/}, built $(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ)"

"$PYTHON" Tests/Reference/make_test_scans.py "$OUT/scans" >/dev/null
IMAGE=$OUT/scans/scan_baseline.jpg
[ -f "$IMAGE" ] || die "no $IMAGE"
make_body "$IMAGE"

# ------------------------------------------------------------------ the lab
lab_up=1
bash Tests/Support/netns-lab.sh up "$LAB" lb a b fs > "$OUT/lab.txt"
addr() { awk -v n="$1" '$1 == n {print $2}' "$OUT/lab.txt"; }
ROOT_ADDR=$(addr root) LB_ADDR=$(addr lb) A_ADDR=$(addr a) B_ADDR=$(addr b) FS_ADDR=$(addr fs)
[ -n "$ROOT_ADDR" ] && [ -n "$LB_ADDR" ] && [ -n "$A_ADDR" ] && [ -n "$B_ADDR" ] && [ -n "$FS_ADDR" ] || die "netns-lab gave: $(cat "$OUT/lab.txt")"
declare -A ADDR=([a]=$A_ADDR [b]=$B_ADDR)
declare -A CORE=([a]=0 [b]=1)
log "lab $LAB: root $ROOT_ADDR, lb $LB_ADDR, a $A_ADDR, b $B_ADDR, fs $FS_ADDR"

# ------------------------------------------------------------------ the emulator (own process group)
# Not a job-control shell: setsid makes the emulator the leader of a new process group without forking.
setsid ip netns exec "$LAB-fs" "$EMULATOR" start --host="$FS_ADDR" --port=8080 > "$OUT/emulator.log" 2>&1 &
emulator_pgid=$!
t0=$(date +%s.%N)
for i in $(seq 1 600); do
    [ "$(curl -s --max-time 1 "http://$FS_ADDR:8080/" || true)" = Ok ] && break
    kill -0 -- "-$emulator_pgid" 2>/dev/null || die "the emulator exited: $(tail -5 "$OUT/emulator.log")"
    sleep 0.1
done
[ "$(curl -s --max-time 1 "http://$FS_ADDR:8080/" || true)" = Ok ] || die "the emulator did not answer in 60 s"
EMU_START=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
log "emulator ready after $EMU_START s"
FS_ENV=(MEDISCOPE_STORE=firestore MEDISCOPE_FIRESTORE_PROJECT_ID=$PROJECT FIRESTORE_EMULATOR_HOST=$FS_ADDR:8080)

# ------------------------------------------------------------------ the application hosts
start_host() {  # start_host NAME
    local h=$1 v=$OUT/var-$1
    mkdir -p "$v/log"
    ip netns exec "$LAB-$h" taskset -c "${CORE[$h]}" env MEDISCOPE_VAR="$v" MEDISCOPE_MANIFEST="$ROOT/models/manifest.json" \
        MEDISCOPE_LOG_FILE="$v/log/mediscope.log" MEDISCOPE_HOST_NAME="$h" \
        MEDISCOPE_POOLS_INFERENCE_LISTEN="tcp:${ADDR[$h]}:9000" MEDISCOPE_POOLS_IO_LISTEN="tcp:${ADDR[$h]}:9001" \
        MEDISCOPE_POOLS_INFERENCE_ALLOWED_CLIENTS="$LB_ADDR" MEDISCOPE_POOLS_IO_ALLOWED_CLIENTS="$LB_ADDR" \
        MEDISCOPE_POOLS_INFERENCE_WORKERS=1 MEDISCOPE_TORCH_THREADS=1 "${FS_ENV[@]}" \
        "$BIN" serve > "$v/log/serve.stdout" 2>&1 &
    HOST_PID[$h]=$!
}
for h in a b; do start_host "$h"; done
for h in a b; do
    for i in $(seq 1 300); do
        [ "$(ip netns exec "$LAB-$h" ss -Hltn '( sport = :9000 or sport = :9001 )' | wc -l)" -ge 2 ] && break
        kill -0 "${HOST_PID[$h]}" 2>/dev/null || die "host $h: mediscope serve exited: $(tail -5 "$OUT/var-$h/log/serve.stdout")"
        sleep 0.1
    done
    [ "$(ip netns exec "$LAB-$h" ss -Hltn '( sport = :9000 or sport = :9001 )' | wc -l)" -ge 2 ] || die "host $h does not listen on 9000 and 9001"
done
log "hosts up: a pid ${HOST_PID[a]} (core 0), b pid ${HOST_PID[b]} (core 1)"

# ------------------------------------------------------------------ the load balancer
LBVAR=$OUT/var-lb
mkdir -p "$LBVAR/nginx" "$LBVAR/log"
bash deploy/build-web.sh public "$LBVAR/www" >/dev/null
ACCESS=$LBVAR/log/nginx-access.log
NGINX_ERR=$LBVAR/log/nginx-error.log
# In the lb namespace: render-nginx.sh's `nginx -t` binds the listen address, which only the lb has.
render() {  # render NAME UPSTREAM_HOSTS: $LBVAR/conf-NAME/nginx.conf (+ its snippets beside it)
    ip netns exec "$LAB-lb" env VAR=$LBVAR LISTEN=$LB_ADDR:8080 BODY_LIMIT=20m UPSTREAM_HOSTS="$2" UPLOAD_RATE_EXEMPT="$ROOT_ADDR/32" \
      ERROR_LOG="$NGINX_ERR" ACCESS_LOG="$ACCESS" \
      bash deploy/render-nginx.sh nginx/local.conf.template "$LBVAR/conf-$1/nginx.conf" >/dev/null
}
render one-a "$A_ADDR $B_ADDR=down"
render one-b "$A_ADDR=down $B_ADDR"
render two "$A_ADDR $B_ADDR"
cp "$LBVAR/conf-one-a/nginx.conf" "$LBVAR/nginx/nginx.conf"
CONF=one-a
ip netns exec "$LAB-lb" nginx -c "$LBVAR/nginx/nginx.conf" -p "$LBVAR/nginx/" -e "$NGINX_ERR" -g 'daemon off;' &
nginx_pid=$!
for i in $(seq 1 100); do curl -s -o /dev/null --max-time 1 "http://$LB_ADDR:8080/" && break; sleep 0.1; done
curl -s -o /dev/null --max-time 1 "http://$LB_ADDR:8080/" || die "nginx does not answer on $LB_ADDR:8080"
nginx_workers() { ps -o pid= --ppid "$nginx_pid" | xargs; }
# use_conf NAME: the rendered config NAME becomes nginx.conf; reload; wait until the old worker is gone.
use_conf() {
    [ "$CONF" = "$1" ] && return 0
    local old new i w
    old=$(nginx_workers)
    cp "$LBVAR/conf-$1/nginx.conf" "$LBVAR/nginx/nginx.conf"
    kill -HUP "$nginx_pid"
    for i in $(seq 1 200); do
        new=$(nginx_workers)
        local stale=""
        for w in $old; do [[ " $new " == *" $w "* ]] && stale=1; done
        [ -n "$new" ] && [ -z "$stale" ] && break
        sleep 0.05
    done
    [ -n "$new" ] && [ -z "$stale" ] || die "nginx did not reload to $1 (workers before: $old, now: $new)"
    CONF=$1
}
log "nginx up: pid $nginx_pid on $LB_ADDR:8080"

# ------------------------------------------------------------------ a clinician's API token, first uploads
URL=http://$LB_ADDR:8080
printf 'bench password 0123\n' | env MEDISCOPE_VAR="$OUT/var-cli" "${FS_ENV[@]}" "$BIN" user add bench --role clinician >/dev/null
JAR=$OUT/cookies
curl -fsS -c "$JAR" -o /dev/null -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench password 0123"}' "$URL/api/session"
CSRF=$(awk '$6 == "mediscope_csrf" {print $7}' "$JAR")
TOKEN=$(curl -fsS -b "$JAR" -H "X-CSRF-Token: $CSRF" -H "Origin: $URL" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "$URL/api/tokens" | "$PY3" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
[ -n "$TOKEN" ] || die "could not make an API token"
export TOKEN
first_post() {  # first_post HOST: one upload with only that host up (loads its model)
    local code
    use_conf "one-$1"
    code=$(curl -s -o "$OUT/first-response-$1.json" -w '%{http_code}' --max-time 120 -H "Authorization: Bearer $TOKEN" \
        -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" --data-binary @"$BODY" "$URL/api/analyses")
    [ "$code" = 201 ] || die "first POST /api/analyses on host $1 answered $code: $(head -c 300 "$OUT/first-response-$1.json")"
}
first_post a
first_post b
log "token made; first upload on each host: 201"

# ------------------------------------------------------------------ helpers
outbox_json() {  # outbox_json HOST: `mediscope outbox status` of that host's var
    env MEDISCOPE_VAR="$OUT/var-$1" "${FS_ENV[@]}" "$BIN" outbox status
}
wait_drain() {  # wait_drain TIMEOUT: until both outboxes have nothing waiting
    local i h d all
    for i in $(seq 1 $(( $1 * 4 ))); do
        all=0
        for h in a b; do
            d=$(outbox_json "$h" 2>/dev/null | "$PY3" "$TOOL" outbox-depth 2>/dev/null || echo x)
            [ "$d" = 0 ] || all=1
        done
        [ "$all" = 0 ] && return 0
        sleep 0.25
    done
    die "the outboxes did not empty in $1 s"
}
access_lines() { wc -l < "$ACCESS"; }
run_wrk() {  # run_wrk LABEL CONNECTIONS SECONDS
    local t=$(( $2 < 2 ? 1 : 2 ))
    wrk -t"$t" -c"$2" -d"$3s" --timeout 60s --latency -s bench/post.lua "$URL/api/analyses" > "$OUT/$1.txt" 2>&1 &
    wrk_pid=$!
}
ORDER=""
# other_cores SNAP0 SNAP1: cores used by processes outside the lab between two snapshots.
other_cores() { "$PY3" "$TOOL" cpu "$1" "$2" | "$PY3" -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["parts"]["other"])'; }
# wait_quiet: until processes outside the lab use under QUIET cores over 5 s, within what is left of
# QUIET_BUDGET seconds (shared by the whole invocation).
QUIET_WAITED=0
wait_quiet() {
    local t0 o
    while [ "$QUIET_WAITED" -lt "$QUIET_BUDGET" ]; do
        t0=$SECONDS
        "$PY3" "$TOOL" snap "$LAB" "$OUT/snap-quiet-0.json"; sleep 5; "$PY3" "$TOOL" snap "$LAB" "$OUT/snap-quiet-1.json"
        o=$(other_cores "$OUT/snap-quiet-0.json" "$OUT/snap-quiet-1.json")
        QUIET_WAITED=$(( QUIET_WAITED + SECONDS - t0 ))
        awk -v o="$o" -v q="$QUIET" 'BEGIN {exit !(o < q)}' && { log "quiet again (other processes $o cores)"; break; }
        log "waiting for other processes to calm down: $o cores (waited $QUIET_WAITED of $QUIET_BUDGET s)"
    done
    rm -f "$OUT"/snap-quiet-*.json
}
# measure RUN PHASE HOSTS: one wrk run on the hosts named (a, b or ab), CPU sampled from 1 s after its
# start to 1 s before its end, its slice of the access log; appends a line to runs.jsonl. A run during
# which processes outside the lab used more than DISTURBED cores goes to disturbed.jsonl instead and is
# measured again after wait_quiet, at most RETRIES times in the whole invocation (then it is kept, marked).
RETRIED=0
measure() {
    local r=$1 phase=$2 hosts=$3 conf conns label first last pid attempt=0 other line
    if [ "$phase" = two ]; then conf=two; else conf=one-$hosts; fi
    conns=$(( CONNS_PER_HOST * ${#hosts} ))
    while :; do
        label=run$r-$phase-$hosts; [ "$attempt" -gt 0 ] && label=$label-again$attempt
        use_conf "$conf"
        first=$(access_lines)
        run_wrk "$label" "$conns" "$DURATION"
        pid=$wrk_pid
        sleep 1
        "$PY3" "$TOOL" snap "$LAB" "$OUT/snap-$label-0.json"
        sleep $(( DURATION - 2 ))
        "$PY3" "$TOOL" snap "$LAB" "$OUT/snap-$label-1.json"
        wait "$wrk_pid" || true
        wrk_pid=""
        grep -q '^RESULT' "$OUT/$label.txt" || die "wrk $label gave no RESULT line: $(tail -5 "$OUT/$label.txt")"
        wait_drain 120
        last=$(access_lines)
        line=$("$PY3" "$TOOL" record --snap0 "$OUT/snap-$label-0.json" --snap1 "$OUT/snap-$label-1.json" --wrk "$OUT/$label.txt" \
            --access-log "$ACCESS" --first "$first" --last "$last" --addrs "a=$A_ADDR,b=$B_ADDR" --label "$label" \
            --phase "$phase" --hosts "$hosts" --run "$r" --conns "$conns" --wrk-pid "$pid")
        rm -f "$OUT/snap-$label-0.json" "$OUT/snap-$label-1.json"
        log "$label: $(grep '^RESULT' "$OUT/$label.txt" | cut -c8- | cut -d' ' -f1-4,9-11) $(echo "$line" | "$PY3" -c '
import json,sys; r=json.load(sys.stdin); p=r["cpu"]["parts"]
print("cores: a %.2f b %.2f nginx %.2f emulator %.2f wrk %.2f kernel %.2f other %.2f idle %.2f; served %s" % (
    p["a"], p["b"], p["lb"], p["fs"], p["wrk"], p["kernel"], p["other"], p["idle"], r["access"]["served"]))')"
        other=$(echo "$line" | "$PY3" -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["cpu"]["parts"]["other"])')
        if awk -v o="$other" -v d="$DISTURBED" 'BEGIN {exit !(o > d)}' && [ "$RETRIED" -lt "$RETRIES" ]; then
            echo "$line" >> "$OUT/disturbed.jsonl"
            RETRIED=$(( RETRIED + 1 )); attempt=$(( attempt + 1 ))
            log "$label disturbed: other processes used $other cores (> $DISTURBED); measuring it again ($RETRIED of $RETRIES repeats)"
            wait_quiet
            continue
        fi
        echo "$line" >> "$OUT/runs.jsonl"
        break
    done
    ORDER="$ORDER ${phase}($hosts)"
}

# ------------------------------------------------------------------ warm-up, then the runs
use_conf two
log "warm-up: $WARMUP s on both hosts, $(( 2 * CONNS_PER_HOST )) connections"
run_wrk warmup $(( 2 * CONNS_PER_HOST )) "$WARMUP"
wait "$wrk_pid" || true; wrk_pid=""
grep -q '^RESULT' "$OUT/warmup.txt" || die "wrk warm-up gave no RESULT line: $(tail -5 "$OUT/warmup.txt")"
wait_drain 120
# The lab without load: what the idle hosts (outbox probes), nginx and the emulator cost by themselves.
sleep 1
"$PY3" "$TOOL" snap "$LAB" "$OUT/snap-idle-0.json"
sleep "$IDLE"
"$PY3" "$TOOL" snap "$LAB" "$OUT/snap-idle-1.json"
"$PY3" "$TOOL" cpu "$OUT/snap-idle-0.json" "$OUT/snap-idle-1.json" > "$OUT/idle.json"
rm -f "$OUT"/snap-idle-*.json
: > "$OUT/runs.jsonl"; : > "$OUT/disturbed.jsonl"
for r in $(seq 1 "$RUNS"); do
    if [ $(( r % 2 )) = 1 ]; then measure "$r" one a; measure "$r" two ab
    else measure "$r" two ab; measure "$r" one b; fi
done

# ------------------------------------------------------------------ the end: store, outboxes, logs
wait_drain 120
for h in a b; do outbox_json "$h" > "$OUT/outbox-$h.json"; done
"$PY3" bench/firestore.py verify --emulator "$FS_ADDR:8080" --project "$PROJECT" --ids /dev/null > "$OUT/verify.json" || echo '{}' > "$OUT/verify.json"
log "stopping the hosts and nginx"
stop_processes
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for h in a b; do
    "$PY3" "$TOOL" logsum "$OUT/var-$h/log/mediscope.log" > "$OUT/logsum-$h.txt"
    f=$OUT/var-$h/log/mediscope.log
    printf 'worker_died=%s worker_recycle=%s connection_refused=%s' "$(grep -c worker_died "$f" || true)" \
        "$(grep -c worker_recycle "$f" || true)" "$(grep -c connection_refused "$f" || true)" > "$OUT/events-$h.txt"
done
"$PY3" - "$OUT" "$ACCESS" "$NGINX_ERR" <<'PY'
import json, os, sys
out, access, err = sys.argv[1:4]
c201 = c499 = 0
for line in open(access, errors="replace"):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("path") == "/api/analyses" and e.get("method") == "POST":
        c201 += e["status"] == 201
        c499 += e["status"] == 499
errs = [l.strip() for l in open(err, errors="replace") if " [notice] " not in l] if os.path.exists(err) else []
final = {"verify": json.load(open(os.path.join(out, "verify.json"))), "access_201": c201, "access_499": c499,
         "outbox": {h: json.load(open(os.path.join(out, "outbox-%s.json" % h)))["stats"] for h in "ab"},
         "logs": {h: open(os.path.join(out, "logsum-%s.txt" % h)).read().strip() for h in "ab"},
         "events": {h: open(os.path.join(out, "events-%s.txt" % h)).read().strip() for h in "ab"},
         "nginx_errors": len(errs), "nginx_error_sample": errs[0][:300] if errs else ""}
json.dump(final, open(os.path.join(out, "final.json"), "w"), indent=1)
PY

# ------------------------------------------------------------------ report
{
    echo "date=$DATE"; echo "machine=$MACHINE"; echo "command=$COMMAND"; echo "nice=$NICE"; echo "versions=$VERSIONS"
    echo "nginx_version=$NGINX_VERSION"; echo "emulator_start_s=$EMU_START"
    echo "commit=$COMMIT"; echo "binary=$BINARY"
    echo "busy_before=$BUSY_BEFORE"; echo "load_before=$LOAD_BEFORE"; echo "load_after=$LOAD_AFTER"
    echo "lab=$LAB, $(sed -n 's/^root \(.*\)\.1$/\1.0\/24/p' "$OUT/lab.txt")"
    echo "body_bytes=$(stat -c %s "$BODY")"; echo "runs=$RUNS"; echo "duration=$DURATION"; echo "warmup=$WARMUP"
    echo "conns_per_host=$CONNS_PER_HOST"; echo "order=${ORDER# }"
    echo "disturbed=$DISTURBED"; echo "retries=$RETRIES"; echo "retried=$RETRIED"; echo "quiet=$QUIET"
    echo "quiet_budget=$QUIET_BUDGET"; echo "quiet_waited=$QUIET_WAITED"
} > "$OUT/meta.txt"
"$PY3" "$TOOL" report "$OUT" > "$OUT/section.md"
write_section scaleout "$OUT/section.md"
cat "$OUT/section.md"
