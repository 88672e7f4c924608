# Sourced by bench/server.sh, bench/int8.sh, bench/firestore.sh, bench/peers.sh (and bench/store-backup.sh for its section helpers): helpers that start the whole stack (mediscope serve +
# nginx on 127.0.0.1:$PORT), drive it with wrk (bench/post.lua) and read its status. The caller sets
# ROOT, BIN, PORT, OUT, PY3, PYTHON and defines log() and die(); stop_stack comes from stack-stop.sh.

# ------------------------------------------------------------------ helpers
# The machine line of a RESULTS.md section: cores, RAM, CPU, OS, kernel.
machine_summary() {
    echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
}
# cpu_flags: the CPU's vector flags that decide the models' speed (fp32 FMA width, int8 dot products).
cpu_flags() { grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni|amx_int8)$' | xargs; }
# cpu_class: what those flags amount to, in words: "AVX-512 VNNI", "AVX2 only", ...
cpu_class() {
    case " $(cpu_flags) " in
        *" amx_int8 "*) echo "AMX int8 (and AVX-512 VNNI)" ;;
        *" avx512_vnni "*) echo "AVX-512 VNNI" ;;
        *" avx512f "*) echo "AVX-512 without VNNI" ;;
        *" avx_vnni "*) echo "AVX2 with AVX-VNNI" ;;
        *" avx2 "*) echo "AVX2 only" ;;
        *) echo "no AVX2" ;;
    esac
}
# busy_pct SECONDS: how busy all cores were over that time, % (other processes skew every figure).
busy_pct() { local a b; a=($(head -1 /proc/stat)); sleep "$1"; b=($(head -1 /proc/stat))
    awk -v u=$(( b[1]+b[2]+b[3]+b[6]+b[7]+b[8] - a[1]-a[2]-a[3]-a[6]-a[7]-a[8] )) -v i=$(( b[4]+b[5] - a[4]-a[5] )) \
        'BEGIN {printf "%.0f", (u + i) ? 100 * u / (u + i) : 0}'; }
# write_section NAME FILE: FILE (which starts with <!-- begin NAME --> and ends with <!-- end NAME -->)
# replaces that section of bench/RESULTS.md, or is appended when the file has none.
write_section() {
    if [ -f bench/RESULTS.md ] && grep -q "^<!-- begin $1 -->" bench/RESULTS.md; then
        "$PY3" - "$1" "$2" <<'PY'
import re, sys
name, new = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open("bench/RESULTS.md").read()
text = re.sub(r"<!-- begin %s -->.*?<!-- end %s -->" % (re.escape(name), re.escape(name)), lambda _: new, text, flags=re.S)
open("bench/RESULTS.md", "w").write(text)
PY
    else
        { echo; cat "$2"; } >> bench/RESULTS.md
    fi
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1" | head -1; }     # kv FILE KEY (from a RESULT line)
fmt() { awk -v x="$1" -v d="${2:-1}" 'BEGIN {if (x == "" || x == "nan") print "n/a"; else printf "%.*f\n", d, x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b}'; }
status_json() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT/api/status"; }
# inference workers as "pid rssKB requests" lines
inference_workers() { status_json | "$PY3" -c 'import json,sys; s=json.load(sys.stdin)["pools"]["inference"]["snapshot"]
for w in s["workers"]: print(w["pid"], w["rssKB"], w["requests"])'; }
pool_field() { status_json | "$PY3" -c 'import json,sys; print(json.load(sys.stdin)["pools"][sys.argv[1]]["snapshot"][sys.argv[2]])' "$1" "$2"; }

# make_token: a clinician made with `mediscope user add`, signed in, and a personal API token in $TOKEN
# (exported for bench/post.lua), as a script using the API would do it.
make_token() {
    local jar=$VAR/log/cookies csrf
    printf 'bench password 0123\n' | MEDISCOPE_VAR="$VAR" "$BIN" user add bench --role clinician >/dev/null
    curl -fsS -c "$jar" -o /dev/null -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"bench password 0123"}' "http://127.0.0.1:$PORT/api/session"
    csrf=$(awk '$6 == "mediscope_csrf" {print $7}' "$jar")
    TOKEN=$(curl -fsS -b "$jar" -H "X-CSRF-Token: $csrf" -H "Origin: http://127.0.0.1:$PORT" \
        -H 'Content-Type: application/json' -d '{"name":"bench"}' "http://127.0.0.1:$PORT/api/tokens" \
        | "$PY3" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    [ -n "$TOKEN" ] || die "could not make an API token"
    export TOKEN
}

# start_stack NAME [LAUNCHER...]: fresh $VAR, nginx rendered from nginx/local.conf.template, both
# processes started through LAUNCHER (e.g. taskset -c 0, bench/cgexec.sh DIRS); STACK_ENV holds the
# MEDISCOPE_* settings. Waits until every inference worker is idle, makes a clinician's API token
# ($TOKEN) and sends one POST /api/analyses ($BODY from make_body), which must answer 201.
# Its steps, for a bench that starts a stack again on the same $VAR (bench/peers.sh: cold starts):
# prepare_stack NAME, launch_stack [LAUNCHER...], await_stack NAME.
STACK_ENV=()
start_stack() {
    local name=$1; shift
    prepare_stack "$name"
    launch_stack "$@"
    await_stack "$name"
    make_token
    local code
    code=$(curl -s -o "$VAR/log/first-response.json" -w '%{http_code}' --max-time 120 \
        -H "Authorization: Bearer $TOKEN" \
        -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" --data-binary @"$BODY" \
        "http://127.0.0.1:$PORT/api/analyses")
    [ "$code" = 201 ] || die "first POST /api/analyses answered $code: $(head -c 300 "$VAR/log/first-response.json")"
    log "stack $name up: master $server_pid, workers $worker_pids"
}

# prepare_stack NAME: VAR=$OUT/var-NAME (kept if it exists: its store, accounts and tokens), the web
# root built from public/ and nginx.conf rendered for 127.0.0.1:$PORT.
prepare_stack() {
    VAR=$OUT/var-$1
    mkdir -p "$VAR/nginx" "$VAR/run" "$VAR/log"
    bash deploy/build-web.sh public "$VAR/www" >/dev/null
    VAR="$VAR" LISTEN="127.0.0.1:$PORT" BODY_LIMIT=20m \
      ERROR_LOG="$VAR/log/nginx-error.log" ACCESS_LOG="$VAR/log/nginx-access.log" \
      bash deploy/render-nginx.sh nginx/local.conf.template "$VAR/nginx/nginx.conf" >/dev/null
}

# launch_stack [LAUNCHER...]: mediscope serve (with STACK_ENV) and nginx on $VAR, each through LAUNCHER;
# sets server_pid and nginx_pid and returns at once.
launch_stack() {
    "$@" env MEDISCOPE_VAR="$VAR" MEDISCOPE_SOCKET_MODE=0666 MEDISCOPE_LOG_FILE="$VAR/log/mediscope.log" \
        "${STACK_ENV[@]}" "$BIN" serve >>"$VAR/log/serve.stdout" 2>&1 &
    server_pid=$!
    "$@" nginx -c "$VAR/nginx/nginx.conf" -p "$VAR/nginx" -e "$VAR/log/nginx-error.log" -g 'daemon off;' &
    nginx_pid=$!
}

# await_stack NAME: until every inference worker STACK_ENV asks for is idle (at most 60 s); sets worker_pids.
await_stack() {
    local name=$1 want i idle=0
    want=$(printf '%s\n' "${STACK_ENV[@]}" | sed -n 's/^MEDISCOPE_POOLS_INFERENCE_WORKERS=//p')
    for i in $(seq 1 600); do   # at most 60 s
        idle=$(pool_field inference idleWorkers 2>/dev/null || echo 0)
        [ "$idle" -ge "${want:-1}" ] && break
        kill -0 "$server_pid" 2>/dev/null || die "mediscope serve exited; see $VAR/log/"
        sleep 0.1
    done
    [ "$idle" -ge "${want:-1}" ] || die "stack $name did not come up; see $VAR/log/"
    worker_pids=$(status_json | "$PY3" -c 'import json,sys; s=json.load(sys.stdin)
print(" ".join(str(w["pid"]) for p in s["pools"].values() for w in p["snapshot"]["workers"]))')
}

# run_wrk LABEL CONNECTIONS SECONDS [LAUNCHER...]  -> bench/out/server/LABEL.txt (wrk output + RESULT line)
run_wrk() {
    local label=$1 c=$2 d=$3; shift 3
    local t=$(( c < 2 ? 1 : 2 ))
    "$@" wrk -t"$t" -c"$c" -d"${d}s" --timeout 120s --latency -s bench/post.lua \
        "http://127.0.0.1:$PORT/api/analyses" >"$OUT/$label.txt" 2>&1 || true
    grep -q '^RESULT' "$OUT/$label.txt" || die "wrk $label gave no RESULT line: $(tail -5 "$OUT/$label.txt")"
    log "$label: $(grep '^RESULT' "$OUT/$label.txt" | cut -c8- | cut -d' ' -f1-7)"
}

# access_stats LOG FROM_LINE STATUS -> "count p50_ms p99_ms max_ms" of request_time for that status
access_stats() {
    tail -n +"$2" "$1" | "$PY3" -c '
import json, sys
want = int(sys.argv[1]); ts = []
for line in sys.stdin:
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("path") == "/api/analyses" and e.get("status") == want: ts.append(float(e["request_time"]) * 1000)
ts.sort()
pct = lambda q: ts[min(len(ts) - 1, int(round(q / 100 * len(ts) + 0.5)) - 1)] if ts else float("nan")
print(len(ts), "%.1f" % pct(50), "%.1f" % pct(99), "%.1f" % (ts[-1] if ts else float("nan")))' "$3"
}
upstream_statuses() {  # LOG FROM_LINE -> "status/upstream_status=count ..." for POST /api/analyses
    tail -n +"$2" "$1" | "$PY3" -c '
import json, sys, collections
c = collections.Counter()
for line in sys.stdin:
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("path") == "/api/analyses": c["%s/%s" % (e["status"], e.get("upstream_status") or "-")] += 1
print(" ".join("%s=%d" % kv for kv in sorted(c.items())))'
}
log_events() {  # LOG -> counts of worker_died / worker_recycle / slow / killed events in the mediscope log
    local f=$1
    printf 'worker_died=%s worker_recycle=%s' "$(grep -c worker_died "$f" 2>/dev/null || true)" "$(grep -c worker_recycle "$f" 2>/dev/null || true)"
}
nginx_errors() { [ -s "$1" ] && grep -v ' \[notice\] ' "$1" | wc -l || echo 0; }


# make_body IMAGE: the fixed multipart POST body wrk sends ($BODY, $BOUNDARY, exported for post.lua).
make_body() {
    local IMAGE=$1
    BOUNDARY=MediscopeBench7d3f2a91c4e5
    BODY=$OUT/body.multipart
    {
        printf -- '--%s\r\nContent-Disposition: form-data; name="patient_id"\r\n\r\nBENCH-0001\r\n' "$BOUNDARY"
        printf -- '--%s\r\nContent-Disposition: form-data; name="image"; filename="scan_baseline.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' "$BOUNDARY"
        cat "$IMAGE"
        printf -- '\r\n--%s--\r\n' "$BOUNDARY"
    } > "$BODY"
    export BODY_FILE=$BODY BOUNDARY
}

# make_cgroup: a cgroup (v2, or v1 memory + cpuset + cpu) of $CGROUP_MEMORY bytes and one CPU (core 0)
# -> CG_VERSION, CG_DIRS (for bench/cgexec.sh), cg (the memory controller's directory).
make_cgroup() {
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        CG_VERSION=2
        parent=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
        parent=${parent%/}
        # v2: controllers must be enabled in the parent; a parent that holds processes itself cannot
        # delegate them (no internal processes), in which case use the root.
        if ! echo "+memory +cpu +cpuset" > "$parent/cgroup.subtree_control" 2>/dev/null; then parent=/sys/fs/cgroup; echo "+memory +cpu +cpuset" > "$parent/cgroup.subtree_control"; fi
        cg=$parent/$CG_NAME
        mkdir -p "$cg"; CG_DIRS=$cg
        echo "$CGROUP_MEMORY" > "$cg/memory.max"
        echo 0 > "$cg/memory.swap.max" 2>/dev/null || true
        echo "100000 100000" > "$cg/cpu.max"
        echo 0 > "$cg/cpuset.cpus"
    else
        CG_VERSION=1
        CG_DIRS=""
        for ctrl in memory cpuset cpu; do
            [ -d "/sys/fs/cgroup/$ctrl" ] || { [ "$ctrl" = cpu ] && continue; die "cgroup v1 $ctrl controller not mounted"; }
            # Nested under this shell's own cgroup of that controller.
            rel=$(awk -F: -v c="$ctrl" '{n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3}' /proc/self/cgroup | head -1)
            d=/sys/fs/cgroup/$ctrl${rel%/}/$CG_NAME
            [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
            mkdir -p "$d"; CG_DIRS="$CG_DIRS $d"
            case $ctrl in
                memory)
                    echo "$CGROUP_MEMORY" > "$d/memory.limit_in_bytes"
                    [ -f "$d/memory.memsw.limit_in_bytes" ] && { echo "$CGROUP_MEMORY" > "$d/memory.memsw.limit_in_bytes" 2>/dev/null || true; }
                    CG_MEM=$d ;;
                cpuset)
                    echo 0 > "$d/cpuset.cpus"
                    cat "$(dirname "$d")/cpuset.mems" > "$d/cpuset.mems" ;;
                cpu)
                    echo 100000 > "$d/cpu.cfs_period_us"; echo 100000 > "$d/cpu.cfs_quota_us" ;;
            esac
        done
        cg=$CG_MEM
    fi
    log "cgroup v$CG_VERSION: $CG_DIRS"
}

per_pool_rss() {
    status_json | "$PY3" -c 'import json,sys
s = json.load(sys.stdin)["pools"][sys.argv[1]]["snapshot"]
def vm(pid):
    try: return [int(l.split()[1]) for l in open("/proc/%d/status" % pid) if l.startswith("VmRSS")][0]
    except Exception: return 0
print("; ".join("pid %d: rssKB %.0f MiB, VmRSS %.0f MiB, %d requests" % (w["pid"], w["rssKB"] / 1024, vm(w["pid"]) / 1024, w["requests"]) for w in s["workers"]))' "$1"
}

# Machine, date, tool versions and the load before a run with the Firestore emulator, for its results
# section: sets MACHINE DATE NGINX_VERSION VERSIONS NICE BUSY_BEFORE LOAD_BEFORE and logs them.
emulator_bench_context() {
    local java emulator
    MACHINE=$(machine_summary)
    DATE=$(date -u +%Y-%m-%dT%H:%MZ)
    java=$(java -version 2>&1 | head -1 | sed 's/"//g')
    emulator=$(dpkg-query -W -f='${Version}' google-cloud-cli-firestore-emulator 2>/dev/null || echo unknown)
    NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*: //')
    VERSIONS="$NGINX_VERSION, $( (wrk -v 2>&1 || true) | head -1 | awk '{print $1, $2}'), emulator google-cloud-cli-firestore-emulator $emulator ($java)"
    NICE=$(nice)
    BUSY_BEFORE=$(busy_pct 3)
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    log "machine: $MACHINE; CPU busy before start (3 s, all cores): $BUSY_BEFORE%; load $LOAD_BEFORE; nice $NICE"
}
