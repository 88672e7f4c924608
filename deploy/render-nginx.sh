#!/usr/bin/env bash
# Render a Mediscope nginx template and validate it with `nginx -t`.
#
#   deploy/render-nginx.sh TEMPLATE OUT
#
# Replaces ${NAME} placeholders (upper-case names in braces only; nginx's own
# $variables are left alone) in TEMPLATE and in every nginx/snippets/*.conf,
# writes TEMPLATE to OUT and the snippets to SNIPPETS_DIR (default: a
# "snippets" folder next to OUT), then runs nginx -t on the result.
#
# Placeholders come from the environment; a missing one is an error:
#   VAR         state dir (sockets $VAR/run/*.sock, blobs $VAR/store/blobs,
#               local nginx pid/logs/temp files in $VAR/nginx)
#   LISTEN      local template only, e.g. 127.0.0.1:8080
#   BODY_LIMIT  largest upload, e.g. 20m
#   SERVER_NAME, TLS_CERT, TLS_KEY   production site only
# With defaults:
#   WEB_ROOT    $VAR/www (built from public/ by deploy/build-web.sh)
#   ERROR_LOG   $VAR/nginx/error.log
#   ACCESS_LOG  $VAR/nginx/access.log
#   SNIPPETS_DIR  "$(dirname OUT)/snippets" (becomes the ${SNIPPETS} placeholder)
# NGINX_TEST=0 skips the nginx -t step.
#
# Rendering and the test happen in a temp folder first; OUT and the snippets
# are written only when nginx -t passes. A template with a top-level "http {"
# block is a complete nginx.conf and is tested as is (nginx -t -c ... -p
# $VAR/nginx/ -e stderr); anything else is a site file and is tested inside a
# throw-away wrapper nginx.conf.
set -euo pipefail

die() { echo "render-nginx: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 TEMPLATE OUT"
template=$1
out=$2
[ -f "$template" ] || die "no such template: $template"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
snippet_src="$here/../nginx/snippets"
[ -d "$snippet_src" ] || die "no snippets folder: $snippet_src"

out_dir=$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd)
out="$out_dir/$(basename "$out")"
SNIPPETS_DIR=${SNIPPETS_DIR:-$out_dir/snippets}
case "$SNIPPETS_DIR" in /*) ;; *) SNIPPETS_DIR=$PWD/$SNIPPETS_DIR ;; esac
export SNIPPETS=$SNIPPETS_DIR

if [ -n "${VAR:-}" ]; then
    export WEB_ROOT=${WEB_ROOT:-$VAR/www}
    export ERROR_LOG=${ERROR_LOG:-$VAR/nginx/error.log}
    export ACCESS_LOG=${ACCESS_LOG:-$VAR/nginx/access.log}
fi

snippets=("$snippet_src"/*.conf)

# Every ${UPPER_CASE} name used by the template or a snippet must be set.
mapfile -t names < <(grep -ohE '\$\{[A-Z][A-Z0-9_]*\}' "$template" "${snippets[@]}" \
                       | tr -d '${}' | sort -u \
                       | awk '/^(ACCESS_LOG|ERROR_LOG|SNIPPETS|WEB_ROOT)$/ {late = late $0 "\n"; next} {print} END {printf "%s", late}')
missing=()
for n in "${names[@]}"; do
    [ -n "${!n:-}" ] || missing+=("$n")
done
[ ${#missing[@]} -eq 0 ] || die "unset placeholder variable(s): ${missing[*]} (needed by $template or nginx/snippets/)"

# Values end up unquoted in nginx syntax: refuse anything that would change its meaning.
for n in "${names[@]}"; do
    v=${!n}
    case "$n" in
        SERVER_NAME) re='^[A-Za-z0-9._* -]+$' ;;              # several names, space separated
        BODY_LIMIT)  re='^[0-9]+[kKmMgG]?$' ;;
        LISTEN)      re='^[][A-Za-z0-9.:_-]+$' ;;              # addr:port, [::1]:port, port
        *)           re='^[A-Za-z0-9._/+@:,=-]+$' ;;           # paths
    esac
    [[ $v =~ $re ]] || die "$n='$v' has characters nginx config cannot take unquoted"
    case "$n" in
        WEB_ROOT|VAR|ERROR_LOG|ACCESS_LOG|TLS_CERT|TLS_KEY|SNIPPETS)
            [[ $v == /* ]] || die "$n must be an absolute path (got '$v')" ;;
    esac
done
export "${names[@]}"

render() {  # render SRC DST
    perl -pe 's/\$\{([A-Z][A-Z0-9_]*)\}/exists $ENV{$1} ? $ENV{$1} : die "unset $1\n"/ge' "$1" > "$2.tmp"
    mv "$2.tmp" "$2"
}
render_all() {  # render_all OUT_FILE SNIPPETS_FOLDER
    mkdir -p "$2"
    for s in "${snippets[@]}"; do
        SNIPPETS=$2 render "$s" "$2/$(basename "$s")"
    done
    SNIPPETS=$2 render "$template" "$1"
}

# Render into a staging folder first and test that, so a broken result never
# replaces a working config (e.g. in /etc/nginx/sites-available).
stage=$(mktemp -d /tmp/render-nginx.XXXXXX)
trap 'rm -rf "$stage"' EXIT
staged="$stage/$(basename "$out")"
render_all "$staged" "$stage/snippets"

if [ "${NGINX_TEST:-1}" != 0 ]; then
    command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
    command -v nginx >/dev/null || die "nginx not found (set NGINX_TEST=0 to skip the check)"

    # nginx -t opens the log files, so their folders must exist.
    for f in "${ERROR_LOG:-}" "${ACCESS_LOG:-}"; do
        [ -n "$f" ] && mkdir -p "$(dirname "$f")"
    done

    if grep -qE '^[[:space:]]*http[[:space:]]*\{' "$staged"; then
        [ -n "${VAR:-}" ] || die "VAR is needed to test a complete nginx.conf"
        mkdir -p "$VAR/nginx"
        nginx -t -c "$staged" -p "$VAR/nginx/" -e stderr -g 'daemon off;' \
            || die "nginx -t failed; $out left unchanged"
    else
        # A site file: test it inside a throw-away http {} with private temp paths.
        cat > "$stage/wrapper.conf" <<EOF
pid $stage/nginx.pid;
lock_file $stage/nginx.lock;
error_log stderr;
events {}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path $stage/client_body_temp;
    fastcgi_temp_path $stage/fastcgi_temp;
    proxy_temp_path $stage/proxy_temp;
    uwsgi_temp_path $stage/uwsgi_temp;
    scgi_temp_path $stage/scgi_temp;
    include $staged;
}
EOF
        nginx -t -c "$stage/wrapper.conf" -p "$stage/" -e stderr -g 'daemon off;' \
            || die "nginx -t failed for site file (tested inside a minimal http {} wrapper); $out left unchanged"
        echo "render-nginx: site file OK in isolation; after enabling it, run 'nginx -t' on the real config"
    fi
fi

render_all "$out" "$SNIPPETS"
echo "render-nginx: wrote $out (snippets in $SNIPPETS)"
