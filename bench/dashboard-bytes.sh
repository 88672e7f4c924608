#!/usr/bin/env bash
# Dashboard weight: the bytes a clinician's browser downloads to open one analysis with an empty
# cache. Starts a fresh stack (nginx + mediscope serve on 127.0.0.1:$PORT, as bench/server.sh does),
# adds a clinician with `mediscope user add`, then runs Tests/Browser/dashboard.py --scenario
# measure_bytes (headless Chromium): sign in and upload the benchmark JPEG(s) through the dashboard;
# then, in a fresh browser profile, sign in through the API (fetch) and open /analyses/{id}; once every
# image has loaded, sum transferSize / encodedBodySize of the navigation and resource timing entries
# (the sign-in requests belong to another page and are not counted). With a second JPEG it also
# measures a second analysis in the same (now warm) profile.
# Writes the "Dashboard: bytes per analysis" section of bench/RESULTS.md; raw output in
# bench/out/dashboard/. Everything it starts is stopped on exit; all traffic goes to 127.0.0.1.
#   bash bench/dashboard-bytes.sh
#   PORT=18500 BIN=.build/debug/mediscope bash bench/dashboard-bytes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMMAND="$(for v in PORT BIN SCAN SCAN2; do
             if [ -n "${!v+x}" ]; then printf '%s=%s ' "$v" "${!v}"; fi; done)bash bench/dashboard-bytes.sh"

BIN=${BIN:-$ROOT/.build/release/mediscope}
PORT=${PORT:-18482}
SCAN=${SCAN:-$ROOT/Tests/Artifacts/reference/scans/scan_baseline.jpg}       # 512x512, the benchmark JPEG
SCAN2=${SCAN2-$ROOT/Tests/Artifacts/reference/scans/scan_progressive.jpg}  # another 512x512 JPEG (warm-cache figure); SCAN2= to skip
OUT=$ROOT/bench/out/dashboard
PY3=/usr/bin/python3   # Debian's, with python3-selenium (a pyenv python3 on PATH has none)
USERNAME=bench-clinician
PASSWORD="bench dashboard $(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
log() { echo "bench-dashboard: $*" >&2; }
die() { log "$*"; exit 1; }

# ------------------------------------------------------------------ checks
PATH=$PATH:/usr/sbin
for t in nginx curl; do command -v "$t" >/dev/null || die "$t not found"; done
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || die "chromium / chromedriver missing (bash deploy/install-deps.sh)"
"$PY3" -c 'import selenium' 2>/dev/null || die "$PY3 cannot import selenium (bash deploy/install-deps.sh)"
[ -x "$BIN" ] || die "$BIN missing (make build, or BIN=...)"
[ -f models/brain_tumor_vgg16.pt ] || die "models/brain_tumor_vgg16.pt missing (make model)"
[ -f "$SCAN" ] || die "$SCAN missing (make test makes the test scans)"
[ -z "$SCAN2" ] || [ -f "$SCAN2" ] || die "$SCAN2 missing (SCAN2= to skip the warm-cache figure)"
[ -d public/js ] || die "public/js missing: the dashboard is not there yet"
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then die "127.0.0.1:$PORT is already in use (set PORT=...)"; fi

rm -rf "$OUT"; mkdir -p "$OUT"

# ------------------------------------------------------------------ stack (the minimum of bench/server.sh's start_stack)
server_pid="" nginx_pid="" worker_pids=""
source "$ROOT/bench/stack-stop.sh"
trap 'stop_stack' EXIT
trap 'exit 130' INT TERM

VAR=$OUT/var
mkdir -p "$VAR/nginx" "$VAR/run" "$VAR/log"
bash deploy/build-web.sh public "$VAR/www" >/dev/null
VAR="$VAR" LISTEN="127.0.0.1:$PORT" BODY_LIMIT=20m \
  ERROR_LOG="$VAR/log/nginx-error.log" ACCESS_LOG="$VAR/log/nginx-access.log" \
  bash deploy/render-nginx.sh nginx/local.conf.template "$VAR/nginx/nginx.conf" >/dev/null
env MEDISCOPE_VAR="$VAR" MEDISCOPE_SOCKET_MODE=0666 MEDISCOPE_LOG_FILE="$VAR/log/mediscope.log" \
    MEDISCOPE_POOLS_INFERENCE_WORKERS=1 "$BIN" serve >"$VAR/log/serve.stdout" 2>&1 &
server_pid=$!
nginx -c "$VAR/nginx/nginx.conf" -p "$VAR/nginx" -e "$VAR/log/nginx-error.log" -g 'daemon off;' &
nginx_pid=$!
up=0
for i in $(seq 1 600); do   # at most 60 s
    if curl -fsS --max-time 5 "http://127.0.0.1:$PORT/api/status" 2>/dev/null \
         | "$PY3" -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["pools"]["inference"]["snapshot"]["idleWorkers"] >= 1 else 1)' 2>/dev/null; then
        up=1; break
    fi
    kill -0 "$server_pid" 2>/dev/null || die "mediscope serve exited; see $VAR/log/"
    sleep 0.1
done
[ $up = 1 ] || die "the stack did not come up; see $VAR/log/"
printf '%s\n' "$PASSWORD" | MEDISCOPE_VAR="$VAR" "$BIN" user add "$USERNAME" --role clinician >/dev/null
log "stack up on 127.0.0.1:$PORT (master $server_pid); measuring"

# ------------------------------------------------------------------ measure
set +e
MEDISCOPE_URL="http://127.0.0.1:$PORT" MEDISCOPE_PASSWORD="$PASSWORD" MEDISCOPE_CLINICIAN="$USERNAME" \
MEDISCOPE_SCAN="$SCAN" MEDISCOPE_SCAN2="$SCAN2" MEDISCOPE_ARTIFACTS="$OUT" MEDISCOPE_BYTES_JSON="$OUT/bytes.json" \
PYTHONUNBUFFERED=1 "$PY3" Tests/Browser/dashboard.py --scenario measure_bytes 2>&1 \
    | grep -v '^MEDISCOPE-SENSITIVE: ' | tee "$OUT/measure.txt"
status=${PIPESTATUS[0]}
set -e
stop_stack
[ -s "$OUT/bytes.json" ] || die "dashboard.py wrote no figures (exit $status); see $OUT/measure.txt"
[ "$status" = 0 ] || log "note: dashboard.py exit $status (problems in the page, see $OUT/measure.txt); the figures are still written"

# ------------------------------------------------------------------ RESULTS.md
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
MACHINE="$(nproc) cores ($CPU), Linux $(uname -r)"
BROWSER=$(/usr/bin/chromium --version 2>/dev/null | head -1)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
WEB="public/ at commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -z "$(git status --porcelain -- public 2>/dev/null)" ] || WEB="$WEB with uncommitted changes"
MACHINE="$MACHINE" BROWSER="$BROWSER" DATE="$DATE" COMMAND="$COMMAND" STATUS="$status" BIN="$BIN" WEB="$WEB" \
"$PY3" - "$OUT/bytes.json" "$OUT/section.md" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
e = os.environ
kb = lambda n: f"{n / 1024:.1f} KiB"
out = ["<!-- begin dashboard-bytes -->", "## Dashboard: bytes per analysis", "",
       "Written by `bench/dashboard-bytes.sh` (headless Chromium, `Tests/Browser/dashboard.py --scenario measure_bytes`).", "",
       f"- date: {e['DATE']}", f"- machine: {e['MACHINE']}", f"- browser: {e['BROWSER']}",
       f"- command: `{e['COMMAND']}` (server binary {os.path.relpath(e['BIN'])}; dashboard: {e['WEB']})",
       "- what: an analysis made through the dashboard (upload form), then opened at /analyses/{id} in a fresh browser "
       "profile (empty cache) after signing in through POST /api/session from another page; counted once every image has "
       "loaded: `performance.getEntriesByType('navigation')` + `('resource')`; transferSize = bytes on the wire "
       "(headers included), encoded = body as sent (gzip for text), decoded = body after decompression",
       ""]
def section(title, m):
    out.append(f"### {title}")
    out.append("")
    out.append("| resource | type | transferSize | encodedBodySize | decodedBodySize |")
    out.append("|---|---|---:|---:|---:|")
    for r in m["rows"]:
        out.append(f"| `{r['path']}` | {r['type']} | {r['transfer']} | {r['encoded']} | {r['decoded']} |")
    t = m["total"]
    out.append(f"| **total ({len(m['rows'])} requests)** | | **{t['transfer']} ({kb(t['transfer'])})** | {t['encoded']} ({kb(t['encoded'])}) | {t['decoded']} ({kb(t['decoded'])}) |")
    out.append("")
    out.append("transferSize by kind: " + ", ".join(f"{k} {kb(v)}" for k, v in t["by_kind"].items()) + ".")
    out.append("")
cold = d["cold"]
section(f"Cold cache: {d['scans'][0]} (scan shown at {cold['scan_display'][0]}x{cold['scan_display'][1]})", cold)
t = cold["total"]["transfer"]
out.append(f"**{kb(t)} transferred for one analysis with an empty cache** (aim: under 300 KB: {'met' if t < 300_000 else 'MISSED'}).")
out.append("")
if "warm" in d:
    w = d["warm"]
    section(f"Warm cache: a second analysis ({d['scans'][1]}) in the same profile", w)
    out.append("Cached resources show transferSize 0 (encoded/decoded are then the cached body sizes, so those two totals are not bytes on the wire).")
    out.append("")
if e["STATUS"] != "0":
    out.append(f"Note: the measuring run reported problems in the page (exit {e['STATUS']}); see bench/out/dashboard/measure.txt.")
    out.append("")
out.append("<!-- end dashboard-bytes -->")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY

# Replace the section in place, or append it.
"$PY3" - bench/RESULTS.md "$OUT/section.md" <<'PY'
import os, re, sys
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
pattern = re.compile(r"<!-- begin dashboard-bytes -->.*?<!-- end dashboard-bytes -->\n?", re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path + ".new", "w").write(text)
os.replace(path + ".new", path)
PY
cat "$OUT/section.md"
