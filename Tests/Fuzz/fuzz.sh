#!/usr/bin/env bash
# Fuzzing of the C code that reads untrusted uploads: the DICOM shim (Sources/CDicom, over DCMTK) and the
# image codecs (Sources/CImageCodecs, over libjpeg-turbo, libpng, libwebp), with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer (the Swift toolchain's clang). Only our sources are instrumented; the
# libraries are Debian's.
#
#   Tests/Fuzz/fuzz.sh [run]                 build, replay, then fuzz each target for FUZZ_SECONDS (make fuzz)
#   Tests/Fuzz/fuzz.sh build                 build .build/fuzz/{dicom,image}_fuzzer
#   Tests/Fuzz/fuzz.sh replay                only the replays of step 2 below
#   Tests/Fuzz/fuzz.sh repro dicom|image FILE...   run the files once, with the sanitizer's full report
#   Tests/Fuzz/fuzz.sh minimize dicom|image FILE   a smaller input with the same crash (next to FILE, .min)
#
# `run`: (1) build; (2) replay once, as plain corpus runs: the committed seeds (Tests/Fuzz/corpus/dicom,
# images), the committed regressions (Tests/Fuzz/corpus/regressions/{dicom,images}), every DICOM file the
# test suite reads (Tests/MediscopeImagingTests/Fixtures, Tests/Artifacts/reference/dicom and the files
# its index names, pydicom's test files from Debian's python3-pydicom and PyPI's pydicom-data when
# installed) and the image fixtures; (3) fuzz each target for FUZZ_SECONDS from the seeds plus what
# earlier local runs kept in .build/fuzz/corpus/<target>. Any sanitizer report, crash, leak, timeout
# (-timeout=10 per input), out-of-memory (-rss_limit_mb=2048, one malloc over 2 GB included), broken
# promise of CDicom.h or CImageCodecs.h, or output that depends on uninitialised heap memory
# (heap_fill.h) fails the run; a new crashing input is saved in .build/fuzz/crashes/ and the output says
# how to reproduce it. The last line says PASS or FAIL.
#
# Environment: FUZZ_SECONDS (60 per target), FUZZ_TARGETS ("dicom image"), CLANG and CLANGXX (the Swift
# toolchain's, /opt/swift/usr/bin), FUZZ_OUT (.build/fuzz), FUZZ_SRC (the tree whose Sources/ are built:
# this one; e.g. a `git worktree` of another commit, to compare).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_TARGETS="${FUZZ_TARGETS:-dicom image}"
toolchain="$(dirname "$(readlink -f "$(command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)")")"
CLANG="${CLANG:-$toolchain/clang}"
CLANGXX="${CLANGXX:-$toolchain/clang++}"
[[ -x "$CLANG" ]] || CLANG=/opt/swift/usr/bin/clang
[[ -x "$CLANGXX" ]] || CLANGXX=/opt/swift/usr/bin/clang++
OUT="${FUZZ_OUT:-$root/.build/fuzz}"
SRC="${FUZZ_SRC:-$root}"   # the tree whose Sources/CDicom and Sources/CImageCodecs are built
CRASHES="$OUT/crashes"
corpus="$here/corpus"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS_COMMON="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $SAN"
# A sanitizer report is a failure: halt on the first one, with a symbolised stack.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1:symbolize=1:detect_stack_use_after_return=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1:symbolize=1}"
if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" && -x "$toolchain/llvm-symbolizer" ]]; then export ASAN_SYMBOLIZER_PATH="$toolchain/llvm-symbolizer"; fi
if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" && -x /opt/swift/usr/bin/llvm-symbolizer ]]; then export ASAN_SYMBOLIZER_PATH=/opt/swift/usr/bin/llvm-symbolizer; fi

DCMTK_LIBS="-ldcmjpls -ldcmtkcharls -ldcmjpeg -lijg8 -lijg12 -lijg16 -ldcmimgle -ldcmdata -loflog -lofstd -lz -lopenjp2"
CODEC_LIBS="-ljpeg -lpng16 -lwebp -lz -lm"

# Per-target settings: libFuzzer flags shared by replay and fuzzing.
common_flags() {  # target
    local t="$1" max_len=65536
    echo "-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=$max_len -dict=$here/$t.dict"
}

log() { printf 'fuzz: %s\n' "$*"; }

# ---------------------------------------------------------------- build

newer_than() {  # binary sources...: true when a source is newer than the binary (or it is missing)
    local bin="$1"; shift
    [[ -x "$bin" ]] || return 0
    local f
    for f in "$@"; do [[ "$f" -nt "$bin" ]] && return 0; done
    return 1
}

build_dicom() {
    local bin="$OUT/dicom_fuzzer" obj="$OUT/obj/dicom" src="$SRC/Sources/CDicom"
    local srcs=("$src"/*.cpp)
    newer_than "$bin" "${srcs[@]}" "$src"/*.h "$src"/include/*.h \
        "$here/dicom_fuzzer.cpp" "$here/heap_fill.h" "$here/fuzz.sh" || return 0
    if [[ ! -f /usr/include/dcmtk/dcmdata/dcfilefo.h ]]; then
        log "DCMTK's headers are missing (Debian's libdcmtk-dev; make deps installs it)"; return 1
    fi
    rm -rf "$obj"; mkdir -p "$obj"
    local s objs=()
    for s in "${srcs[@]}"; do
        "$CLANGXX" -std=c++17 $CFLAGS_COMMON -I"$src/include" -I"$src" -c "$s" -o "$obj/$(basename "$s").o" || return 1
        objs+=("$obj/$(basename "$s").o")
    done
    "$CLANGXX" -std=c++17 $CFLAGS_COMMON -I"$src/include" -I"$here" -c "$here/dicom_fuzzer.cpp" -o "$obj/dicom_fuzzer.o" || return 1
    "$CLANGXX" -fuse-ld=lld -fsanitize=fuzzer $SAN "${objs[@]}" "$obj/dicom_fuzzer.o" $DCMTK_LIBS -o "$bin" || return 1
}

build_image() {
    local bin="$OUT/image_fuzzer" obj="$OUT/obj/image" src="$SRC/Sources/CImageCodecs"
    local srcs=("$src"/*.c)
    newer_than "$bin" "${srcs[@]}" "$src"/*.h "$src"/include/*.h \
        "$here/image_fuzzer.c" "$here/app_checks.h" "$here/heap_fill.h" "$here/fuzz.sh" || return 0
    rm -rf "$obj"; mkdir -p "$obj"
    local s objs=()
    for s in "${srcs[@]}"; do
        "$CLANG" -std=gnu11 $CFLAGS_COMMON -I"$src/include" -I"$src" -c "$s" -o "$obj/$(basename "$s").o" || return 1
        objs+=("$obj/$(basename "$s").o")
    done
    "$CLANG" -std=gnu11 $CFLAGS_COMMON -I"$src/include" -I"$here" -c "$here/image_fuzzer.c" -o "$obj/image_fuzzer.o" || return 1
    "$CLANGXX" -fuse-ld=lld -fsanitize=fuzzer $SAN "${objs[@]}" "$obj/image_fuzzer.o" $CODEC_LIBS -o "$bin" || return 1
}

build() {
    local t ok=0
    mkdir -p "$OUT" "$CRASHES"
    for t in $FUZZ_TARGETS; do
        if ! "build_$t"; then log "building the $t fuzzer failed"; ok=1; fi
    done
    return $ok
}

# ---------------------------------------------------------------- inputs

# Every DICOM file the test suite reads, one per line (those that exist on this machine).
dicom_test_set() {
    find Tests/MediscopeImagingTests/Fixtures -type f \( -iname '*.dcm' -o -iname '*.dicom' \) 2>/dev/null
    if [[ -d Tests/Artifacts/reference/dicom ]]; then
        find Tests/Artifacts/reference/dicom -type f -iname '*.dcm' 2>/dev/null
        # dicom_reference.py's index names the files it rendered (Debian's and pydicom-data's).
        if [[ -f Tests/Artifacts/reference/dicom/index.json ]]; then
            /usr/bin/python3 - Tests/Artifacts/reference/dicom/index.json <<'EOF' 2>/dev/null
import json, os, sys
for e in json.load(open(sys.argv[1])):
    p = e.get("path")
    if p and os.path.isfile(p):
        print(p)
EOF
        fi
    fi
    # pydicom's own test files (Debian's python3-pydicom), and PyPI's pydicom-data in the reference venv.
    local data
    data="$(/usr/bin/python3 -c 'import os, pydicom.data; print(os.path.dirname(pydicom.data.__file__))' 2>/dev/null)"
    if [[ -n "$data" ]]; then
        find "$data/test_files" "$data/charset_files" -type f ! -name '*.py' ! -name '*.pyc' ! -name '*.json' \
            ! -name '*.txt' ! -name '*.gz' ! -name '*.dump' ! -name README 2>/dev/null
    fi
    local venv
    for venv in "${DICOM_VENV:-$root/.venv-dicom}"; do
        [[ -x "$venv/bin/python" ]] || continue
        data="$("$venv/bin/python" -c 'import os, data_store; print(os.path.join(os.path.dirname(data_store.__file__), "data"))' 2>/dev/null)"
        [[ -n "$data" && -d "$data" ]] && find "$data" -type f -iname '*.dcm'
    done
}

image_test_set() {
    find Tests/MediscopeImagingTests/Fixtures -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) 2>/dev/null
}

corpus_name() { [[ "$1" == image ]] && echo images || echo "$1"; }

seed_dirs() {  # target: committed seed and regression folders
    local name d
    name="$(corpus_name "$1")"
    for d in "$corpus/$name" "$corpus/regressions/$name"; do [[ -d "$d" ]] && echo "$d"; done
}

# ---------------------------------------------------------------- replay

declare -a FAILED_INPUTS=()

# Runs the files once each; on a failure, runs them one by one to name every failing file.
replay_files() {  # target label files...
    local t="$1" label="$2"; shift 2
    local bin="$OUT/${t}_fuzzer" logf="$OUT/replay-$t-$label.log"
    (($# > 0)) || { log "replay $t/$label: no files"; return 0; }
    if "$bin" $(common_flags "$t") -runs=0 "$@" >"$logf" 2>&1; then
        log "replay $t/$label: $# files, no sanitizer report"
        return 0
    fi
    log "replay $t/$label: FAILED; finding every failing file"
    local f n=0
    for f in "$@"; do
        if ! "$bin" $(common_flags "$t") -runs=0 "$f" >"$logf.one" 2>&1; then
            n=$((n + 1))
            FAILED_INPUTS+=("$t $f")
            log "  $f: $(summary "$logf.one")"
            cp "$logf.one" "$CRASHES/replay-$t-$(basename "$f").log"
        fi
    done
    log "replay $t/$label: $n of $# files fail (logs: $CRASHES/replay-$t-*.log)"
    return 1
}

summary() {  # log: the sanitizer's one-line summary, or libFuzzer's
    local s
    s="$(grep -m1 -E '^SUMMARY: |==ERROR: libFuzzer|contract violated|ALARM: working on the last Unit|out-of-memory|runtime error' "$1")"
    echo "${s:-exit status non-zero, see the log}"
}

replay() {
    local t status=0 files
    for t in $FUZZ_TARGETS; do
        local -a seeds=()
        local d
        while read -r d; do
            while IFS= read -r -d '' f; do seeds+=("$f"); done < <(find "$d" -type f -print0 | sort -z)
        done < <(seed_dirs "$t")
        replay_files "$t" corpus "${seeds[@]}" || status=1
        if [[ "$t" == dicom ]]; then
            mapfile -t files < <(dicom_test_set | sort -u)
        else
            mapfile -t files < <(image_test_set | sort -u)
        fi
        replay_files "$t" test-set "${files[@]}" || status=1
    done
    return $status
}

# ---------------------------------------------------------------- fuzz

declare -a NEW_CRASHES=()
declare -a STATS=()

fuzz_target() {  # target
    local t="$1" bin="$OUT/${t}_fuzzer" work="$OUT/corpus/$t" logf="$OUT/fuzz-$t.log"
    mkdir -p "$work"
    # Seeds that crash (known regressions) are left out, so the run looks for new crashes; they have
    # already failed the replay.
    local -a dirs=() skip=()
    local d f
    while read -r d; do dirs+=("$d"); done < <(seed_dirs "$t")
    for f in "${FAILED_INPUTS[@]}"; do [[ "$f" == "$t "* ]] && skip+=("${f#"$t "}"); done
    local seeds="$OUT/seeds-$t"
    rm -rf "$seeds"; mkdir -p "$seeds"
    for d in "${dirs[@]}"; do
        while IFS= read -r -d '' f; do
            local s keep=1
            for s in "${skip[@]}"; do [[ "$s" == "$f" ]] && keep=0; done
            ((keep)) && cp "$f" "$seeds/$(basename "$(dirname "$f")")-$(basename "$f")"
        done < <(find "$d" -type f -print0)
    done
    log "fuzzing $t for ${FUZZ_SECONDS}s (seeds: $(find "$seeds" -type f | wc -l), kept from earlier runs: $(find "$work" -type f | wc -l))"
    local start=$SECONDS rc
    timeout -k 15 $((FUZZ_SECONDS + 90)) "$bin" $(common_flags "$t") -max_total_time="$FUZZ_SECONDS" \
        -artifact_prefix="$CRASHES/$t-" -print_final_stats=1 -reload=0 "$work" "$seeds" >"$logf" 2>&1
    rc=$?
    local runs
    runs="$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$logf" | grep -oE '[0-9]+$')"
    STATS+=("$t $((SECONDS - start))s ${runs:-?} runs")
    if ((rc == 0)); then
        log "fuzz $t: $((SECONDS - start))s, ${runs:-?} inputs run, $(grep -oE "cov: [0-9]+ ft: [0-9]+" "$logf" | tail -1), no crash"
        return 0
    fi
    local artifact
    artifact="$(grep -oE "(Test unit written to|Crash unit written to) [^ ]+" "$logf" | tail -1 | awk '{print $NF}')"
    if ((rc == 124 || rc == 137)); then log "fuzz $t: libFuzzer did not stop in time (killed)"; fi
    log "fuzz $t: FAILED (exit $rc): $(summary "$logf")"
    grep -m1 -A25 -E '^==[0-9]+==ERROR|runtime error|contract violated|ALARM' "$logf" | sed 's/^/    /' | head -30
    if [[ -n "$artifact" ]]; then
        NEW_CRASHES+=("$t $artifact")
        local env=""
        [[ "$SRC" != "$root" ]] && env+="FUZZ_SRC=$SRC "
        [[ "$OUT" != "$root/.build/fuzz" ]] && env+="FUZZ_OUT=$OUT "
        log "  crashing input saved: $artifact"
        log "  reproduce: ${env}Tests/Fuzz/fuzz.sh repro $t $artifact"
        log "  minimise:  ${env}Tests/Fuzz/fuzz.sh minimize $t $artifact"
        log "  once fixed, keep it: cp it into Tests/Fuzz/corpus/regressions/$(corpus_name "$t")/ and commit"
    else
        log "  no crashing input was written; the full log is $logf"
    fi
    return 1
}

# ---------------------------------------------------------------- commands

cmd="${1:-run}"
case "$cmd" in
    build)
        build && log "built: $(for t in $FUZZ_TARGETS; do printf '%s ' "$OUT/${t}_fuzzer"; done)"
        ;;
    replay)
        build || exit 1
        replay; s=$?
        ((s == 0)) && log "PASS: replays clean" || log "FAIL: ${#FAILED_INPUTS[@]} input(s) fail the replay (above)"
        exit $s
        ;;
    repro)
        t="${2:-}"; shift 2 || true
        [[ "$t" == dicom || "$t" == image ]] && (($# > 0)) || { echo "usage: $0 repro dicom|image FILE..." >&2; exit 2; }
        FUZZ_TARGETS="$t" build || exit 1
        MEDISCOPE_FUZZ_VERBOSE=1 "$OUT/${t}_fuzzer" $(common_flags "$t") -runs=0 "$@"
        ;;
    minimize)
        t="${2:-}"; f="${3:-}"
        [[ "$t" == dicom || "$t" == image ]] && [[ -f "$f" ]] || { echo "usage: $0 minimize dicom|image FILE" >&2; exit 2; }
        FUZZ_TARGETS="$t" build || exit 1
        "$OUT/${t}_fuzzer" $(common_flags "$t") -minimize_crash=1 -max_total_time="${FUZZ_SECONDS}" \
            -exact_artifact_path="$f.min" "$f"
        ls -l "$f.min"
        ;;
    run)
        started=$SECONDS
        if ! build; then log "FAIL: the fuzzers did not build"; exit 1; fi
        log "built in $((SECONDS - started))s"
        status=0
        replay || status=1
        for t in $FUZZ_TARGETS; do fuzz_target "$t" || status=1; done
        took=$((SECONDS - started))
        if ((status == 0)); then
            log "PASS in ${took}s: ${STATS[*]}; replays clean, no new crash (FUZZ_SECONDS=$FUZZ_SECONDS per target)"
        else
            log "FAIL in ${took}s: ${#FAILED_INPUTS[@]} replayed input(s) fail, ${#NEW_CRASHES[@]} new crash(es)${NEW_CRASHES[*]:+: ${NEW_CRASHES[*]}} (reproduce: Tests/Fuzz/fuzz.sh repro TARGET FILE)"
        fi
        exit $status
        ;;
    *)
        sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
