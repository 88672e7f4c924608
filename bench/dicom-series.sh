#!/usr/bin/env bash
# Issue 24's benchmark: "A 64-slice series keeps a dashboard upload's latency within 2x of idle."
# A real stack (nginx + the pools on free loopback ports, the default model, the DICOM listener on) is
# sent a brain MR series of SLICES slices with DCMTK's storescu while a clinician uploads a JPEG scan
# through POST /api/analyses (bearer token, like a script or the dashboard's form). Received instances
# are analysed by the inference workers only when no request waits (RequestHandler.idleWork), so an
# upload should wait for at most one instance's analysis.
#   idle:   RUNS sequential uploads, listener on, nothing received
#   loaded: storescu sends a series; once its first instances are being analysed, uploads follow one
#           another until the series' analyses are done; a new series (new patient, study, series and
#           SOP Instance UIDs) is sent until RUNS uploads were made under load (at most MAX_SERIES)
#   alone:  one more series with no upload: how long its analyses take when nothing else runs
#   idle after: RUNS uploads again (did the stack drift?)
# Every upload follows the previous one after a pause of GAP_MIN..GAP_MAX s (uniform, seeded): a
# clinician's uploads come one at a time, and an inference worker that just served a request waits up
# to 1 s for the next before it resumes received instances, so back-to-back uploads would never meet a
# worker busy with the series. Afterwards: every instance one analysis (GET /api/analyses per series
# patient, GET /api/studies/{uid}, the spool, the job queue, the log). It first waits (QUIET_WAIT s at
# most) for the machine to be quiet and reports what other programs took of the CPU during each part
# (a figure taken while something else ran is not one). Writes the "dicom-series" section of bench/RESULTS.md
# (RESULTS=0: only bench/out/dicom-series/section.md); raw output in bench/out/dicom-series/.
#   bash bench/dicom-series.sh        (needs: make build model; dcmtk, nginx, python3-pydicom)
#   RUNS=15 SLICES=64 SIZE=256 WORKERS=1 bash bench/dicom-series.sh   (NOTE="..." adds a line to the section)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# The exact command, with the settings the caller gave (read before the defaults fill them in).
COMMAND="$(for v in RUNS SLICES SIZE MAX_SERIES WARMUP WORKERS GAP_MIN GAP_MAX ALONE IDLE_AFTER PORT DICOM_PORT RESULTS; do
             if [ -n "${!v+x}" ]; then printf '%s=%s ' "$v" "${!v}"; fi; done)bash bench/dicom-series.sh"

BIN=${BIN:-$ROOT/.build/release/mediscope}
PYTHON=${PYTHON:-$ROOT/.venv-models/bin/python}   # numpy + Pillow: the JPEG scan, the template's wheel
DICOM_PY=${DICOM_PY:-/usr/bin/python3}            # pydicom (Debian's python3-pydicom): the series
RUNS=${RUNS:-15}
SLICES=${SLICES:-64}
SIZE=${SIZE:-256}
MAX_SERIES=${MAX_SERIES:-8}
WARMUP=${WARMUP:-6}                                # back to back: both workers warm
WORKERS=${WORKERS:-$(nproc)}                      # the default: one inference worker per core
GAP_MIN=${GAP_MIN:-1.2}
GAP_MAX=${GAP_MAX:-2.0}
ALONE=${ALONE:-1}
IDLE_AFTER=${IDLE_AFTER:-1}
RESULTS=${RESULTS:-1}
SERIES_TIMEOUT=${SERIES_TIMEOUT:-600}
QUIET_WAIT=${QUIET_WAIT:-300}
AE=BENCH_PACS
OUT=$ROOT/bench/out/dicom-series
log() { echo "bench-dicom-series: $*" >&2; }
die() { log "$*"; exit 1; }

# ------------------------------------------------------------------ tools and inputs
for t in nginx curl jq storescu echoscu sqlite3; do command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin; command -v "$t" >/dev/null || die "$t not found (deploy/install-deps.sh)"; done
[ -x "$BIN" ] || die "$BIN missing (make build)"
[ -f models/brain_tumor_vgg16.pt ] || die "models/brain_tumor_vgg16.pt missing (make model)"
[ -x "$PYTHON" ] || die "$PYTHON missing (models/setup-venv.sh)"
"$DICOM_PY" -c 'import pydicom, numpy' 2>/dev/null || die "$DICOM_PY cannot import pydicom and numpy (apt-get install python3-pydicom)"
PY3=$DICOM_PY
free_port() { "$PY3" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }
PORT=${PORT:-$(free_port)}
DICOM_PORT=${DICOM_PORT:-$(free_port)}
[ "$PORT" != "$DICOM_PORT" ] || die "PORT and DICOM_PORT are both $PORT"
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then die "127.0.0.1:$PORT is already in use (set PORT=...)"; fi

rm -rf "$OUT"; mkdir -p "$OUT"

# ------------------------------------------------------------------ cleanup
server_pid="" nginx_pid="" worker_pids="" storescu_pid=""
source "$ROOT/bench/stack-stop.sh"
cleanup() {
    local rc=$?
    [ -n "$storescu_pid" ] && kill -TERM "$storescu_pid" 2>/dev/null || true
    stop_stack
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
source "$ROOT/bench/stack-lib.sh"

MACHINE=$(machine_summary)
FLAGS=$(cpu_flags) CLASS=$(cpu_class)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT=$(git rev-parse --short HEAD)
BIN_TIME=$(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ)
# What the binary was built from (as far as git tells): the last commit to touch Sources/ before the
# build, how many touched it since (not in the binary), and uncommitted changes to Sources/ now.
SRC_COMMIT=$(git log -1 --before="@$(stat -c %Y "$BIN")" --format=%h -- Sources Package.swift)
SRC_LATER=$(git rev-list --count --after="@$(stat -c %Y "$BIN")" HEAD -- Sources Package.swift)
DIRTY=$(git status --porcelain --untracked-files=no -- Sources Package.swift | wc -l)
# Wait (at most QUIET_WAIT s) for the machine to be quiet: under 10% of all cores busy over 3 s.
QUIET_WAITED=0
while BUSY_BEFORE=$(busy_pct 3); [ "$BUSY_BEFORE" -ge 10 ] && [ "$QUIET_WAITED" -lt "$QUIET_WAIT" ]; do
    log "the machine is $BUSY_BEFORE% busy; waiting for it to be quiet ($QUIET_WAITED of $QUIET_WAIT s)"
    sleep 7; QUIET_WAITED=$((QUIET_WAITED + 10))
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date +%s)
log "machine: $MACHINE; flags: $FLAGS; CPU busy before start (3 s, all cores): $BUSY_BEFORE%; load $LOAD_BEFORE"

"$PYTHON" Tests/Reference/make_test_scans.py "$OUT/scans" >/dev/null
IMAGE=$OUT/scans/scan_baseline.jpg
make_body "$IMAGE"
WHEEL=models/cache/nilearn-0.14.1-py3-none-any.whl
[ -f "$WHEEL" ] || "$PYTHON" models/fetch_scans.py >&2
[ -f "$WHEEL" ] || die "$WHEEL missing (python models/fetch_scans.py)"
# make_series NAME: series NAME's files in $OUT/series-NAME/ (about a second; made before it is sent).
make_series() {
    "$DICOM_PY" bench/dicom-series.py series "$OUT/series-$1" --nilearn-wheel "$WHEEL" --patient-id "BENCH-SERIES-$1" \
        --slices "$SLICES" --size "$SIZE" --seed "$(( ${1/alone/99} + 2400 ))" > "$OUT/series-$1.json"
}
make_series 1
SERIES_BYTES=$(jq .bytes "$OUT/series-1.json") SPACING=$(jq .slice_spacing_mm "$OUT/series-1.json")
log "series: $SLICES slices of ${SIZE}x$SIZE, $SPACING mm apart, $SERIES_BYTES bytes each"

# ------------------------------------------------------------------ the stack
STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=$WORKERS MEDISCOPE_TORCH_THREADS=1
           MEDISCOPE_DICOM_LISTEN=$DICOM_PORT MEDISCOPE_DICOM_AE_TITLE=MEDISCOPE
           "MEDISCOPE_DICOM_PEERS=[{\"ae_title\": \"$AE\", \"host\": \"127.0.0.1\", \"organization\": \"default\"}]")
start_stack dicom
LOG=$VAR/log/mediscope.log
for i in $(seq 1 300); do   # the listener starts beside the pools, a moment after them
    echoscu -aet "$AE" -aec MEDISCOPE 127.0.0.1 "$DICOM_PORT" >/dev/null 2>&1 && break
    [ "$i" = 300 ] && die "the listener does not answer C-ECHO on $DICOM_PORT; see $VAR/log/"
    sleep 0.2
done
log "stack up: http 127.0.0.1:$PORT, DICOM *:$DICOM_PORT, $WORKERS inference workers"

count() { grep -c "\"event\":\"$1\"" "$LOG" || true; }
now() { date +%s.%N; }
# pause: GAP_MIN..GAP_MAX s, uniform ($RANDOM of this shell, seeded below, so every run pauses alike).
pause() { local r=$RANDOM; sleep "$(awk -v a="$GAP_MIN" -v b="$GAP_MAX" -v r="$r" 'BEGIN {printf "%.3f", a + (b - a) * r / 32767}')"; }
busy() { pool_field inference activeWorkers 2>/dev/null || echo "?"; }
# upload FILE: one POST /api/analyses; appends "status seconds busy_before analysed_before analysed_after start".
upload() {
    local b a0 t0 line
    b=$(busy); a0=$(count dicom_instance_analysed); t0=$(now)
    line=$(curl -s -o "$OUT/last-upload.json" -w '%{http_code} %{time_total}' --max-time 120 \
        -H "Authorization: Bearer $TOKEN" -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" \
        --data-binary @"$BODY" "http://127.0.0.1:$PORT/api/analyses")
    echo "$line $b $a0 $(count dicom_instance_analysed) $t0" >> "$1"
}
idle_runs() {  # idle_runs FILE: RUNS uploads with nothing received
    local i; : > "$1"
    for i in $(seq 1 "$RUNS"); do pause; upload "$1"; done
    log "$(basename "$1" .txt): $("$PY3" bench/dicom-series.py stats x "$1" | jq -c '[.n201, .median, .p90, .max]')"
}

# cpu_mark NAME: /proc/stat's cpu line now and the ticks this script's process tree (the stack, the
# clients) has used; between two marks the rest is what other programs took (or the hypervisor stole).
cpu_mark() { echo "$1 $(head -1 /proc/stat | cut -d' ' -f3-) $("$PY3" bench/dicom-series.py tree-cpu $$)" >> "$OUT/cpu-marks.txt"; }
# outside FROM TO: "other programs' busy % / steal %" of all cores between two marks.
outside() { awk -v a="$1" -v b="$2" '$1 == a {for (i = 2; i <= NF; i++) x[i] = $i} $1 == b {for (i = 2; i <= NF; i++) y[i] = $i}
    END {t = 0; for (i = 2; i <= 9; i++) t += y[i] - x[i]; busy = t - (y[5] - x[5]) - (y[6] - x[6]) - (y[9] - x[9])
         other = busy - (y[12] - x[12]); if (other < 0) other = 0
         printf "%.1f%% / %.1f%%", t ? 100 * other / t : 0, t ? 100 * (y[9] - x[9]) / t : 0}' "$OUT/cpu-marks.txt"; }

RANDOM=24
for i in $(seq 1 "$WARMUP"); do upload "$OUT/warmup.txt"; done
cpu_mark idle

# ------------------------------------------------------------------ idle
idle_runs "$OUT/idle.txt"

# ------------------------------------------------------------------ loaded
# send_series NAME: storescu in the background ($storescu_pid); sets base (analyses before it) and t_send.
send_series() {
    [ -d "$OUT/series-$1" ] || make_series "$1"
    base=$(( $(count dicom_instance_analysed) + $(count dicom_instance_not_analysed) ))
    t_send=$(now)
    storescu -aet "$AE" -aec MEDISCOPE 127.0.0.1 "$DICOM_PORT" "$OUT/series-$1"/*.dcm > "$OUT/storescu-$1.log" 2>&1 &
    storescu_pid=$!
}
done_count() { echo $(( $(count dicom_instance_analysed) + $(count dicom_instance_not_analysed) - base )); }
# finish_series NAME: waits for storescu and for every instance's analysis; writes series-NAME.result
finish_series() {
    local rc=0 i
    wait "$storescu_pid" || rc=$?
    storescu_pid=""
    [ "$rc" = 0 ] || die "storescu of series $1 exited $rc: $(tail -3 "$OUT/storescu-$1.log")"
    for i in $(seq 1 $(( SERIES_TIMEOUT * 10 ))); do
        [ "$(done_count)" -ge "$SLICES" ] && break
        sleep 0.1
    done
    [ "$(done_count)" -ge "$SLICES" ] || die "series $1: $(done_count) of $SLICES analysed after $SERIES_TIMEOUT s"
    echo "t_send=$t_send t_done=$(now)" > "$OUT/series-$1.result"
}

cpu_mark loaded
: > "$OUT/loaded.txt"; : > "$OUT/windows.txt"
loaded=0 series_sent=0
while [ "$loaded" -lt "$RUNS" ] && [ "$series_sent" -lt "$MAX_SERIES" ]; do
    series_sent=$((series_sent + 1)); s=$series_sent
    send_series "$s"
    # Uploads start once the series' first instances are being analysed (an inference worker busy with
    # no request in flight).
    for i in $(seq 1 600); do
        [ "$(busy)" -ge 1 ] 2>/dev/null && break
        [ "$i" = 600 ] && die "series $s: no instance analysed within 60 s of storescu"
        sleep 0.05
    done
    t_first=$(now) a_first=$(done_count) n=0 t_end=$t_first a_end=$a_first
    while [ "$(done_count)" -lt "$SLICES" ] && [ "$loaded" -lt "$RUNS" ]; do
        upload "$OUT/loaded.txt"; loaded=$((loaded + 1)); n=$((n + 1))
        t_end=$(now) a_end=$(done_count)
        [ "$loaded" -lt "$RUNS" ] && pause
    done
    finish_series "$s"
    echo "series=$s uploads=$n window_s=$(awk -v a="$t_first" -v b="$t_end" 'BEGIN {printf "%.2f", b - a}') analysed_at_start=$a_first analysed_at_end=$a_end $(cat "$OUT/series-$s.result")" >> "$OUT/windows.txt"
    log "series $s: $n uploads under load (total $loaded of $RUNS); $(tail -1 "$OUT/windows.txt")"
    sleep 2   # the workers back to their idle wait before the next series
done

# ------------------------------------------------------------------ the series alone, then idle again
cpu_mark alone
if [ "$ALONE" = 1 ]; then
    send_series alone
    finish_series alone
    log "series alone: $(cat "$OUT/series-alone.result")"
fi
cpu_mark after
[ "$IDLE_AFTER" = 1 ] && idle_runs "$OUT/idle-after.txt"
cpu_mark end
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ exactly once, per series
sleep 1
SERIES_NAMES="$(seq 1 "$series_sent" | xargs)"; [ "$ALONE" = 1 ] && SERIES_NAMES="$SERIES_NAMES alone"
: > "$OUT/once.txt"
for s in $SERIES_NAMES; do
    curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/analyses?limit=100&patient_id=BENCH-SERIES-$s" > "$OUT/records-$s.json"
    # The study index (GET /api/studies/{uid}, where the build has it): each SOP Instance UID and its analysis.
    study=$(jq -r .study "$OUT/series-$s.json")
    code=$(curl -sS -o "$OUT/study-$s.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/studies/$study")
    [ "$code" = 200 ] || echo '{}' > "$OUT/study-$s.json"
    jq -r --arg s "$s" --slurpfile st "$OUT/study-$s.json" '
        ([.items[].id] | unique) as $ids
        | ([$st[0].series[]?.items[]?] ) as $inst
        | "series=\($s) records=\(.items | length) distinct=\($ids | length) more=\(.nextCursor != null) mri_brain=\([.items[] | select(.patient.modality == "MRI" and (.patient.bodyPart // "" | ascii_downcase) == "brain")] | length) in_scope=\([.items[] | select(.inputCheck.verdict == "in_scope")] | length) out_of_scope=\([.items[] | select(.inputCheck.verdict == "out_of_scope")] | length)"
          + (if ($inst | length) > 0 then
               " study_instances=\($inst | length) distinct_sop=\([$inst[].sopInstanceUID] | unique | length) states=\([$inst[].state] | group_by(.) | map("\(.[0]):\(length)") | join(",")) analyses_matching_records=\([$inst[].analysisId | select(. != null) | select(. as $a | $ids | index($a))] | unique | length) series_summary=\($st[0].series | map(.summary | {state, counts: (.counts | with_entries(select(.value > 0))), outOfScope, predictions: ([.results[]? | {(.result): .predictions}] | add)} | tojson) | join("|"))"
             else "" end)' "$OUT/records-$s.json" >> "$OUT/once.txt"
done
cat "$OUT/once.txt" >&2
SPOOL=$VAR/dicom/default
SPOOL_LEFT=$(find "$SPOOL" -maxdepth 1 -name '*.dcm' 2>/dev/null | wc -l)
SPOOL_ASIDE=$(find "$SPOOL" -maxdepth 1 \( -name '*.refused' -o -name '*.failed' -o -name '*.conflict' \) 2>/dev/null | wc -l)
# The job queue: dicom.analyze jobs still waiting, and its done.<outcome> and failed counters (per kind,
# "<kind>:done.analysed", in builds that count per kind; before, shared by every kind).
JOBDB=$VAR/store/jobs.sqlite
JOBS="waiting $(sqlite3 -readonly "$JOBDB" "SELECT COUNT(*) FROM jobs WHERE kind = 'dicom.analyze'" 2>/dev/null || echo '?'); counters $(sqlite3 -readonly "$JOBDB" "SELECT name || ' ' || CAST(value AS INTEGER) FROM counters WHERE name LIKE '%done.%' OR name LIKE '%failed' ORDER BY name" 2>/dev/null | paste -sd, - | sed 's/,/, /g')"
DICOM_STATUS=$(status_json | jq -c '.dicom // empty' 2>/dev/null || true)
RECEIVED=$(count dicom_instance_received) ANALYSED=$(count dicom_instance_analysed)
NOT_ANALYSED=$(count dicom_instance_not_analysed) REFUSED=$(count dicom_instance_refused)
UPLOADS=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/analyses?limit=100&patient_id=BENCH-0001" | jq '.items | length')
RESTARTS=$(pool_field inference restarts)
EVENTS=$(log_events "$LOG") NGINX_ERR=$(nginx_errors "$VAR/log/nginx-error.log")
STOREUSCU_FAIL=$(cat "$OUT"/storescu-*.log | grep -ci 'error\|fail' || true)
stop_stack

# ------------------------------------------------------------------ figures
upload_stats() { "$PY3" bench/dicom-series.py stats "$1" "$OUT/$1.txt"; }
IDLE=$(upload_stats idle) LOADED=$(upload_stats loaded)
[ "$IDLE_AFTER" = 1 ] && AFTER=$(upload_stats idle-after) || AFTER='{}'
IDLE_MED=$(jq .median <<<"$IDLE") LOADED_MED=$(jq .median <<<"$LOADED")
RATIO=$(ratio "$LOADED_MED" "$IDLE_MED")
if [ "$IDLE_AFTER" = 1 ]; then
    cat "$OUT/idle.txt" "$OUT/idle-after.txt" > "$OUT/idle-both.txt"
    BOTH_MED=$(upload_stats idle-both | jq .median) AFTER_MED=$(jq .median <<<"$AFTER")
    OTHER_RATIOS="; against the idle uploads after the series ($AFTER_MED ms): $(ratio "$LOADED_MED" "$AFTER_MED")x, against both idle runs together ($BOTH_MED ms): $(ratio "$LOADED_MED" "$BOTH_MED")x"
else OTHER_RATIOS=""; fi
OUTSIDE="idle $(outside idle loaded), loaded $(outside loaded alone)"
[ "$ALONE" = 1 ] && OUTSIDE="$OUTSIDE, series alone $(outside alone after)"
[ "$IDLE_AFTER" = 1 ] && OUTSIDE="$OUTSIDE, idle after $(outside after end)"
VERDICT=$(awk -v r="$RATIO" 'BEGIN {print (r != "n/a" && r <= 2) ? "met" : "**missed**"}')
# The series' timings from the mediscope log: first received, first and last analysed, per series.
"$PY3" bench/dicom-series.py events "$LOG" dicom_instance_received dicom_instance_analysed > "$OUT/events.json"
rm -f "$OUT/spans.txt"
SERIES_TABLE=$("$PY3" - "$OUT" "$SLICES" $SERIES_NAMES <<'PY'
import json, sys, os
out, slices, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ev = json.load(open(os.path.join(out, "events.json")))
rec, ana = sorted(ev["dicom_instance_received"]), sorted(ev["dicom_instance_analysed"])
windows = {}
for line in open(os.path.join(out, "windows.txt")):
    kv = dict(x.split("=", 1) for x in line.split())
    windows[kv["series"]] = kv
loaded = [l.split() for l in open(os.path.join(out, "loaded.txt")) if l.strip()]
for s in names:
    kv = dict(x.split("=", 1) for x in open(os.path.join(out, "series-%s.result" % s)).read().split())
    t0, t1 = float(kv["t_send"]), float(kv["t_done"]) + 0.5
    r = [t for t in rec if t0 <= t <= t1]
    a = [t for t in ana if t0 <= t <= t1]
    store = (max(r) - t0) if r else float("nan")
    span = (max(a) - t0) if a else float("nan")
    per = (max(a) - min(a)) / (len(a) - 1) * 1000 if len(a) > 1 else float("nan")
    w = windows.get(s)
    if w:
        ups = int(w["uploads"]); during = int(w["analysed_at_end"]) - int(w["analysed_at_start"])
        what = "%d upload%s over %s s; %d of the series' analyses done meanwhile (%s done at the first, %s at the end of the last)" % (
            ups, "" if ups == 1 else "s", w["window_s"], during, w["analysed_at_start"], w["analysed_at_end"])
    else:
        what = "no upload (the series alone)"
    print("| %s | %d | %d | %.1f s | %.1f s | %.0f ms | %s |" % (s, len(r), len(a), store, span, per, what))
    with open(os.path.join(out, "spans.txt"), "a") as f:
        f.write("%s %.1f %s\n" % (s, span, w["uploads"] if w else 0))
PY
)
BUSY_HIST=$(awk '{c[$3]++} END {for (k in c) printf "%s busy: %d; ", k, c[k]}' "$OUT/loaded.txt" | sed 's/; $//')
ELAPSED=$(( $(date +%s) - STARTED ))
NSERIES=$(echo $SERIES_NAMES | wc -w)
ONCE_OK=$(awk -v n="$SLICES" '{for (i = 1; i <= NF; i++) {split($i, kv, "="); f[kv[1]] = kv[2]}
    if (f["records"] != n || f["distinct"] != n) bad++
    if ("study_instances" in f && (f["study_instances"] != n || f["distinct_sop"] != n || f["analyses_matching_records"] != n)) bad++
    delete f} END {print bad ? "NO" : "yes"}' "$OUT/once.txt")
[ "$RECEIVED" = $(( SLICES * NSERIES )) ] && [ "$ANALYSED" = "$RECEIVED" ] && [ "$SPOOL_LEFT$SPOOL_ASIDE" = 00 ] || ONCE_OK=NO
row() { jq -r --arg l "$1" '"| \($l) | \(.n201) of \(.n) | \(.median) ms | \(.p90) ms | \(.max) ms | \(.min) ms |"' <<<"$2"; }

{
    echo "<!-- begin dicom-series -->"
    echo "## DICOM series vs a dashboard upload (\`bench/dicom-series.sh\`, issue 24)"
    echo
    echo "Written by \`bench/dicom-series.sh\`. Medians and the ratio from this one invocation."
    echo
    echo "- date: $DATE; the script took $ELAPSED s"
    echo "- machine: $MACHINE"
    echo "- CPU flags: ${FLAGS:-none of avx2/avx512f/avx512_vnni} -> $CLASS"
    echo "- command: \`$COMMAND\`; binary $BIN built $BIN_TIME from the worktree, whose last commit to touch Sources/ before the build was $SRC_COMMIT$( [ "$SRC_LATER" -gt 0 ] && echo " ($SRC_LATER commit(s) touched Sources/ since: $(git log --format=%h --after="@$(stat -c %Y "$BIN")" HEAD -- Sources Package.swift | xargs); what they hold may have been in the worktree, uncommitted, at the build)" || true); repository at $COMMIT when the script ran$( [ "$DIRTY" -gt 0 ] && echo ", Sources/ with $DIRTY uncommitted change(s) being edited meanwhile" || true)"
    echo "- background load: all-core CPU busy over 3 s before the script started anything: $BUSY_BEFORE% (after waiting $QUIET_WAITED s for under 10%); load average before: $LOAD_BEFORE, at the end: $LOAD_AFTER"
    echo "- the rest of the machine during each part, % of all cores: other programs' CPU (/proc/stat busy less this script's process tree: the stack and its clients) / stolen by the hypervisor: $OUTSIDE"
    [ -n "${NOTE:-}" ] && echo "- note: $NOTE"
    echo "- stack: nginx + \`mediscope serve\` on free loopback ports (HTTP 127.0.0.1:$PORT, DICOM listener *:$DICOM_PORT, AE MEDISCOPE, one peer $AE at 127.0.0.1), default model (models/manifest.json, fp32 VGG16), $WORKERS inference workers (one per core, the default), 1 torch thread each, SQLite store, fresh \$VAR"
    echo "- upload: POST /api/analyses with a clinician's API token (\`mediscope user add\`, signed in, POST /api/tokens), multipart \`patient_id\` + the 512x512 \`scan_baseline.jpg\` of Tests/Reference/make_test_scans.py ($(stat -c %s "$BODY") bytes); latency = curl's time_total; uploads one at a time, each after a pause of $GAP_MIN-$GAP_MAX s (uniform), after $WARMUP warm-up uploads"
    echo "- series: $SLICES axial slices of the MNI ICBM152 2009a T1 template (nilearn 0.14.1's, an average of 152 real T1 brain MRIs), ${SIZE}x$SIZE, $(awk -v s="$SIZE" 'BEGIN {printf "%.3g", 256 / s}') mm pixels, $SPACING mm apart, 16-bit MONOCHROME2 (12 bits stored) with Rician noise, MR Image Storage, explicit VR little endian, one Study and Series Instance UID, distinct SOP Instance UIDs, Patient ID BENCH-SERIES-n, Modality MR, Body Part Examined BRAIN ($SERIES_BYTES bytes a series; bench/dicom-series.py); sent by DCMTK's \`storescu\` in one association"
    echo
    echo "| uploads | 201s | median | p90 | max | min |"
    echo "|---|---|---|---|---|---|"
    row "idle (listener on, nothing received)" "$IDLE"
    row "**while a series is analysed**" "$LOADED"
    [ "$IDLE_AFTER" = 1 ] && row "idle again, after the series" "$AFTER"
    echo
    echo "- **loaded / idle median: ${RATIO}x** (goal: at most 2x) - $VERDICT$OTHER_RATIOS"
    echo "- the upload's median wait for the series: $(awk -v a="$LOADED_MED" -v b="$IDLE_MED" 'BEGIN {printf "%+.0f ms", a - b}') (max $(jq .max <<<"$LOADED") ms against the idle max $(jq .max <<<"$IDLE") ms)"
    echo "- uploads under load, by inference workers busy (with instances) just before each was sent: $BUSY_HIST"
    echo "- each upload, ms: idle $(jq -c .all <<<"$IDLE"); loaded $(jq -c .all <<<"$LOADED")"
    echo
    echo "| series | instances received | analysed | storescu start -> last received | storescu start -> last analysed | mean interval between analyses (first to last analysed / n-1) | uploads during its analyses |"
    echo "|---|---|---|---|---|---|---|"
    echo "$SERIES_TABLE"
    echo
    [ "$ALONE" = 1 ] && echo "- storescu start to the last analysis (the mediscope log): the series alone $(awk '$1 == "alone" {print $2}' "$OUT/spans.txt") s; with uploads among its analyses: $(awk '$1 != "alone" && $3 > 0 {printf "%sseries %s %s s (%s upload%s)", sep, $1, $2, $3, $3 == 1 ? "" : "s"; sep = ", "}' "$OUT/spans.txt")"
    echo "- **every instance one analysis: $ONCE_OK** ($NSERIES series of $SLICES sent, $(( SLICES * NSERIES )) instances); per series, GET /api/analyses?patient_id=BENCH-SERIES-n (records, distinct ids, MRI + Brain from the tags, input check) and, where the build has it, GET /api/studies/{Study Instance UID} (instances, distinct SOP Instance UIDs, states, analysis ids among those records, the series summary):"
    sed 's/^/  - /' "$OUT/once.txt"
    echo "- log: dicom_instance_received $RECEIVED, dicom_instance_analysed $ANALYSED, dicom_instance_not_analysed $NOT_ANALYSED, dicom_instance_refused $REFUSED; job queue (\`jobs.sqlite\`): dicom.analyze $JOBS; spool at the end: $SPOOL_LEFT waiting, $SPOOL_ASIDE set aside; the clinician's uploads stored: $UPLOADS (1 start-up + $WARMUP warm-up + the measured ones)"
    [ -n "$DICOM_STATUS" ] && echo "- /api/status, dicom, at the end: \`$DICOM_STATUS\`"
    echo "- health: inference worker restarts $RESTARTS; mediscope log $EVENTS; nginx error lines $NGINX_ERR; storescu error lines $STOREUSCU_FAIL"
    echo
    echo "The policy: the listener only receives and keeps instances and queues each as a job; an inference"
    echo "worker takes one between requests, only when no request waits for its pool, so a dashboard upload"
    echo "waits for at most one instance's analysis (with every worker busy with one, for the first of them to"
    echo "finish) and the series is worked through in what capacity the uploads leave. A worker that has just"
    echo "served a request waits up to 1 s for the next one before it takes an instance again, which is why the"
    echo "uploads here are paced: back-to-back uploads would always find that worker waiting for them. The"
    echo "same wait is what an upload costs the series besides its own analysis: up to a second of that worker's"
    echo "time (the series' time with uploads among its analyses against the series alone, above)."
    echo "<!-- end dicom-series -->"
} > "$OUT/section.md"
[ "$RESULTS" = 1 ] && write_section dicom-series "$OUT/section.md"
cat "$OUT/section.md"
