#!/usr/bin/env bash
# Build the web root nginx serves from the dashboard sources in public/.
#
#   deploy/build-web.sh [SRC] OUT        (SRC defaults to public/ next to this script)
#
# Every .js and .css file is copied under a fingerprinted name (app.3f9a1c2b0d.js): the first
# 10 hex digits of the SHA-256 of its content after its own references were rewritten, so a
# change anywhere in the import graph renames every module that (transitively) imports it.
# nginx serves such names as "immutable" for a year; HTML keeps its name and is "no-cache".
# References rewritten:
#   - in .js:   './name.js' and "./name.js" (static and dynamic imports, same folder)
#   - in .html: "/path/name.js" and "/path/name.css" in src= / href= attributes
# report.css is also kept under its plain name: the server-rendered report links to /report.css.
# Output is built in a temporary folder and swapped in, so nginx never serves a half-built root.
set -euo pipefail

die() { echo "build-web: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case $# in
    1) src=$here/../public; out=$1 ;;
    2) src=$1; out=$2 ;;
    *) die "usage: $0 [SRC] OUT" ;;
esac
[ -d "$src" ] || die "no such folder: $src"
src=$(cd "$src" && pwd)
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

stage=$(mktemp -d "$out.new.XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp -a "$src/." "$stage/"
find "$stage" -name '.*' -prune -exec rm -rf {} +   # no dotfiles on the web

declare -A hashed=()   # relative path -> fingerprinted relative path

fingerprint() {  # fingerprint REL: rename REL to name.<hash>.ext, record it
    local rel=$1 dir base ext hash
    dir=$(dirname "$rel"); base=$(basename "$rel"); ext=${base##*.}; base=${base%.*}
    hash=$(sha256sum "$stage/$rel" | cut -c1-10)
    hashed[$rel]="$dir/$base.$hash.$ext"
    hashed[$rel]=${hashed[$rel]#./}
    mv "$stage/$rel" "$stage/${hashed[$rel]}"
}

# CSS first (no imports between our stylesheets).
while IFS= read -r -d '' f; do
    rel=${f#"$stage"/}
    [ "$rel" = report.css ] && cp "$stage/$rel" "$stage/report.plain.css.keep"
    fingerprint "$rel"
done < <(find "$stage" -name '*.css' -print0)
[ -f "$stage/report.plain.css.keep" ] && mv "$stage/report.plain.css.keep" "$stage/report.css"

imports_of() {  # imports_of REL: the same-folder modules REL imports (./name.js), one per line
    grep -oE "[\"']\./[A-Za-z0-9_.-]+\.js[\"']" "$stage/$1" | tr -d "\"'" | sed 's|^\./||' | sort -u
}

# JS modules in dependency order: a module is fingerprinted once everything it imports is.
mapfile -d '' pending < <(find "$stage" -name '*.js' -print0 | sed -z "s|^$stage/||")
while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for rel in "${pending[@]}"; do
        dir=$(dirname "$rel")
        ready=1
        while IFS= read -r dep; do
            [ -n "$dep" ] || continue
            dep_rel=$dir/$dep; dep_rel=${dep_rel#./}
            [ -f "$stage/$dep_rel" ] || [ -n "${hashed[$dep_rel]:-}" ] || die "$rel imports ./$dep, which does not exist"
            [ -n "${hashed[$dep_rel]:-}" ] || { ready=0; break; }
        done < <(imports_of "$rel")
        if [ $ready = 0 ]; then left+=("$rel"); continue; fi
        # Rewrite ./dep.js -> ./dep.<hash>.js for every dependency, then fingerprint this module.
        while IFS= read -r dep; do
            [ -n "$dep" ] || continue
            dep_rel=$dir/$dep; dep_rel=${dep_rel#./}
            new=$(basename "${hashed[$dep_rel]}")
            DEP=$dep NEW=$new perl -pi -e 's/(["\x27])\.\/\Q$ENV{DEP}\E\1/$1.\/$ENV{NEW}$1/g' "$stage/$rel"
        done < <(imports_of "$rel")
        fingerprint "$rel"
    done
    [ ${#left[@]} -lt ${#pending[@]} ] || die "import cycle among: ${left[*]}"
    pending=("${left[@]}")
done

# HTML: point src/href at the fingerprinted names; a reference to a missing asset is an error.
while IFS= read -r -d '' page; do
    for rel in "${!hashed[@]}"; do
        REF=/$rel NEW=/${hashed[$rel]} perl -pi -e 's/((?:src|href)=")\Q$ENV{REF}\E"/$1$ENV{NEW}"/g' "$page"
    done
    if grep -oE '(src|href)="/[^"]+\.(js|css)"' "$page" | grep -vE '\.[0-9a-f]{10}\.(js|css)"$' | grep -v '"/report.css"'; then
        die "$(basename "$page") references an asset that was not built (see above)"
    fi
done < <(find "$stage" -name '*.html' -print0)

chmod -R a+rX "$stage"
if [ -d "$out" ]; then
    old=$(mktemp -d "$out.old.XXXXXX")
    mv "$out" "$old/www" && mv "$stage" "$out" && rm -rf "$old"
else
    mv "$stage" "$out"
fi
trap - EXIT
echo "build-web: wrote $out (${#hashed[@]} fingerprinted assets)"
