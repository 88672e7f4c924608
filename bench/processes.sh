#!/usr/bin/env bash
# Memory of each process of the serving stack, by role (`make bench-processes`): 2 inference workers,
# fp32 and int8, models loaded and every worker having analysed. With BIN_BEFORE (a build from before
# libtorch moved into libMediscopeTorch.so and the inference fork server), the same for that build, so
# the section shows both side by side. Writes the "processes" section of bench/RESULTS.md.
#   bash bench/processes.sh
#   BIN_BEFORE=/path/to/old/mediscope bash bench/processes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMMAND="$(for v in BIN_BEFORE UPLOADS PORT; do if [ -n "${!v+x}" ]; then printf '%s=%s ' "$v" "${!v}"; fi; done)bash bench/processes.sh"
BIN_AFTER=${BIN:-$ROOT/.build/release/mediscope}
BIN_BEFORE=${BIN_BEFORE:-}
PYTHON=${PYTHON:-$ROOT/.venv-models/bin/python}
PORT=${PORT:-18490}
UPLOADS=${UPLOADS:-8}
OUT=$ROOT/bench/out/processes
log() { echo "bench-processes: $*" >&2; }
die() { log "$*"; exit 1; }
PATH=$PATH:/usr/sbin
[ -x "$BIN_AFTER" ] || die "$BIN_AFTER missing (make build)"
[ -z "$BIN_BEFORE" ] || [ -x "$BIN_BEFORE" ] || die "BIN_BEFORE=$BIN_BEFORE is not an executable"
PY3=$(command -v python3)
rm -rf "$OUT"; mkdir -p "$OUT"
server_pid="" nginx_pid="" worker_pids=""
source "$ROOT/bench/stack-stop.sh"
source "$ROOT/bench/stack-lib.sh"
trap stop_stack EXIT
make_body Tests/Artifacts/reference/scans/scan_baseline.jpg

ROWS=$OUT/rows.jsonl
builds=(after)
[ -n "$BIN_BEFORE" ] && builds=(before after)
for build in "${builds[@]}"; do
    BIN=$BIN_AFTER; [ "$build" = before ] && BIN=$BIN_BEFORE
    for model in fp32 int8; do
        manifest=models/manifest.json; [ "$model" = int8 ] && manifest=models/manifest-int8.json
        STACK_ENV=(MEDISCOPE_POOLS_INFERENCE_WORKERS=2 MEDISCOPE_MANIFEST="$ROOT/$manifest")
        start_stack "$build-$model"
        # Both workers analyse: two uploads at a time.
        for _ in $(seq 1 $((UPLOADS / 2))); do
            uploads=()
            for _ in 1 2; do
                curl -fsS -o /dev/null --max-time 120 -H "Authorization: Bearer $TOKEN" \
                    -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" --data-binary @"$BODY" \
                    "http://127.0.0.1:$PORT/api/analyses" &
                uploads+=($!)
            done
            wait "${uploads[@]}"   # not the stack, which runs in the background too
        done
        "$PY3" bench/processes.py "$PORT" "$server_pid" "$nginx_pid" "$build $model" >> "$ROWS"
        log "$build $model: $(tail -1 "$ROWS" | cut -c1-200)"
        stop_stack
        rm -rf "$OUT/var-$build-$model"
    done
done

SECTION=$OUT/section.md
"$PY3" - "$ROWS" "$(machine_summary)" "$(cpu_flags)" "$(cpu_class)" "$COMMAND" "$BIN_BEFORE" > "$SECTION" <<'PY'
import datetime, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
machine, flags, cls, command, before = sys.argv[2:7]
order = ["master", "inference fork server", "inference worker", "io worker", "background process", "nginx"]
print("<!-- begin processes -->")
print("## Memory of each process of the stack (2 inference workers, models loaded, after %s uploads)\n" % "8")
print("%s; flags %s (%s). %s. `%s`.\n" % (machine, flags, cls, datetime.date.today().isoformat(), command))
if before:
    print("*before*: the build before libtorch moved into its own shared object and the inference fork server "
          "(libtorch linked into the executable, models loaded by each worker on first use); *after*: this build.\n")
print("| stack | process | count | RSS MiB (sum) | PSS MiB (sum) | anonymous PSS MiB | maps libtorch |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    for role in order:
        v = r["roles"].get(role)
        if not v:
            continue
        print("| %s | %s | %d | %.0f | %.0f | %.0f | %s |" % (r["label"], role, v["count"], v["rss_mib"], v["pss_mib"],
                                                               v["anon_mib"], "yes" if v["libtorch"] else "no"))
    print("| %s | **whole stack** | | | **%.0f** | | |" % (r["label"], r["pss_total_mib"]))
print("\nPSS splits each shared page between the processes that map it, so a column's sum is what those "
      "processes take together; RSS counts shared pages (the preloaded weights) once per process.")
print("<!-- end processes -->")
PY
write_section processes "$SECTION"
cat "$SECTION"
