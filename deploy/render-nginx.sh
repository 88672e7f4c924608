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
#   STOW_BODY_LIMIT  64m: largest DICOMweb STOW-RS request (dicom.stow_max_bytes
#               must allow as much)
#   ERROR_LOG   $VAR/nginx/error.log
#   ACCESS_LOG  $VAR/nginx/access.log
#   SNIPPETS_DIR  "$(dirname OUT)/snippets" (becomes the ${SNIPPETS} placeholder)
#   SOCKET_DIR  $VAR/run: where this host's pools have their unix sockets (one box;
#               the Debian package's pools.*.listen say /run/mediscope)
# DESTDIR (packaging): OUT and the snippets are written below this folder, while the
#   rendered files name OUT's and SNIPPETS_DIR's own (absolute) paths; needs NGINX_TEST=0.
# NGINX_TEST=0 skips the nginx -t step. nginx -t binds LISTEN (and the
# production site's ports): render on the machine that will run this nginx.
#
# Where the API goes (written to SNIPPETS_DIR/mediscope-upstreams.conf, with the
# keep-alive and next-upstream settings in mediscope-fastcgi-upstream.conf; three
# upstream groups: mediscope_inference for uploads, mediscope_io for every other
# request, mediscope_io_reads for GET/HEAD of the io pool):
#   UPSTREAM_HOSTS  unset or empty: this host's pools on unix sockets in $VAR/run
#               (one box). Else the application hosts, space or comma
#               separated: IPv4, [IPv6] or a host name, each optionally
#               "=down" (drained: nginx sends it nothing new). Every host
#               listens on the same two TCP ports:
#   UPSTREAM_INFERENCE_PORT  default 9000 (pools.inference.listen)
#   UPSTREAM_IO_PORT         default 9001 (pools.io.listen)
#   UPSTREAM_INFERENCE_MAX_CONNS  default 5: uploads nginx lets one host hold at
#               once (pools.inference.workers + backlog); when every host holds
#               that many, the next upload is a 503 with Retry-After at once
#   UPSTREAM_IO_MAX_CONNS   default 0 (no limit)
#   UPSTREAM_MAX_FAILS / UPSTREAM_FAIL_TIMEOUT  default 2 / 10s: a host that
#               fails that many times within that time gets nothing for that time
#   UPSTREAM_KEEPALIVE  default 16: idle kept connections per nginx worker to
#               the io pools, for GET/HEAD only (see the comment in the output)
# CONN_PER_ADDRESS  default 64: requests in progress at once per client address
#               (nginx limit_conn; one more is a 429). A hospital's clinicians may
#               share one NAT address; an idle browser holds no slot (see
#               nginx/snippets/mediscope-locations.conf)
# UPLOAD_RATE_EXEMPT  networks whose uploads are not rate limited besides
#               loopback (space or comma separated CIDRs, e.g. 10.20.0.0/24),
#               written to SNIPPETS_DIR/mediscope-upload-exempt.conf; together
#               at most as large as one /8 (overlaps counted twice)
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

destdir=${DESTDIR:-}
if [ -n "$destdir" ]; then
    [ "${NGINX_TEST:-1}" = 0 ] || die "DESTDIR needs NGINX_TEST=0 (the rendered files name paths that exist only once installed)"
    [[ $out == /* && ${SNIPPETS_DIR:-} == /* ]] || die "with DESTDIR, OUT and SNIPPETS_DIR must be absolute paths"
    mkdir -p "$destdir"
    destdir=$(cd "$destdir" && pwd)
    out_dir=$(dirname "$out")
else
    out_dir=$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd)
    out="$out_dir/$(basename "$out")"
fi
SNIPPETS_DIR=${SNIPPETS_DIR:-$out_dir/snippets}
case "$SNIPPETS_DIR" in /*) ;; *) SNIPPETS_DIR=$PWD/$SNIPPETS_DIR ;; esac
export SNIPPETS=$SNIPPETS_DIR

if [ -n "${VAR:-}" ]; then
    SOCKET_DIR=${SOCKET_DIR:-$VAR/run}
    [[ $SOCKET_DIR =~ ^/[A-Za-z0-9._/+@:,=-]*$ ]] || die "SOCKET_DIR must be an absolute path nginx config can take unquoted (got '$SOCKET_DIR')"
    export WEB_ROOT=${WEB_ROOT:-$VAR/www}
    export STOW_BODY_LIMIT=${STOW_BODY_LIMIT:-64m}
    export ERROR_LOG=${ERROR_LOG:-$VAR/nginx/error.log}
    export ACCESS_LOG=${ACCESS_LOG:-$VAR/nginx/access.log}
fi

snippets=("$snippet_src"/*.conf)

# ---------------------------------------------------------------- upstreams
# Validated here because the values end up unquoted in nginx syntax.
number() {  # number NAME DEFAULT MIN
    local v=${!1:-$2}
    [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge "$3" ] || die "$1='$v' must be a whole number >= $3"
    printf '%s' "$v"
}
inference_port=$(number UPSTREAM_INFERENCE_PORT 9000 1)
io_port=$(number UPSTREAM_IO_PORT 9001 1)
[ "$inference_port" -le 65535 ] && [ "$io_port" -le 65535 ] || die "upstream ports must be 1...65535"
inference_max_conns=$(number UPSTREAM_INFERENCE_MAX_CONNS 5 1)
io_max_conns=$(number UPSTREAM_IO_MAX_CONNS 0 0)
max_fails=$(number UPSTREAM_MAX_FAILS 2 1)
keepalive=$(number UPSTREAM_KEEPALIVE 16 1)
fail_timeout=${UPSTREAM_FAIL_TIMEOUT:-10s}
CONN_PER_ADDRESS=$(number CONN_PER_ADDRESS 64 1)
[ "$CONN_PER_ADDRESS" -le 65535 ] || die "CONN_PER_ADDRESS must be 1...65535 (nginx's limit_conn)"
export CONN_PER_ADDRESS
[[ $fail_timeout =~ ^[0-9]+(ms|s|m)?$ ]] || die "UPSTREAM_FAIL_TIMEOUT='$fail_timeout' must be a time such as 10s"

upstream_hosts=()
one_line() { local v=${1//$'\n'/ }; v=${v//$'\t'/ }; printf '%s' "${v//,/ }"; }  # lists may span lines (YAML blocks)
read -r -a host_entries <<< "$(one_line "${UPSTREAM_HOSTS:-}")"  # split on spaces and commas, no globbing
for entry in ${host_entries[@]+"${host_entries[@]}"}; do
    host=${entry%=down}
    [[ $host =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$ ]] \
        || die "UPSTREAM_HOSTS entry '$entry' is not an IPv4 address, a [bracketed IPv6] address or a host name (optionally =down)"
    if [[ $host =~ ^[0-9.]+$ ]]; then  # numeric: a full dotted quad, or nginx would resolve "1.2.3" as 1.2.0.3
        IFS=. read -r -a octets <<< "$host"
        [ ${#octets[@]} -eq 4 ] || die "UPSTREAM_HOSTS entry '$entry' is not a full IPv4 address"
        for o in "${octets[@]}"; do
            [[ $o =~ ^(0|[1-9][0-9]{0,2})$ ]] && [ "$o" -le 255 ] || die "UPSTREAM_HOSTS entry '$entry' is not an IPv4 address"
        done
    fi
    for seen in ${upstream_hosts[@]+"${upstream_hosts[@]}"}; do
        [ "${seen%=down}" != "$host" ] || die "UPSTREAM_HOSTS names $host twice"
    done
    upstream_hosts+=("$entry")
done
if [ ${#upstream_hosts[@]} -gt 0 ]; then
    up=0
    for entry in "${upstream_hosts[@]}"; do [[ $entry == *=down ]] || up=$((up + 1)); done
    [ $up -gt 0 ] || die "every host in UPSTREAM_HOSTS is =down: nginx would answer every request with a 503"
fi

read -r -a upload_exempt <<< "$(one_line "${UPLOAD_RATE_EXEMPT:-}")"
# Together the exempt networks may cover at most as many addresses as one /8 (IPv4; for IPv6 as large
# a share of its space, counted in /64s): "0.0.0.0/1 128.0.0.0/1" is every client as surely as /0 is.
exempt_v4=0            # addresses
exempt_v6=0            # /64 networks
for net in ${upload_exempt[@]+"${upload_exempt[@]}"}; do
    [[ $net =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)(/[0-9]{1,3})?$ ]] \
        || die "UPLOAD_RATE_EXEMPT entry '$net' is not an IPv4 or IPv6 address or network"
    [[ $net == */0 ]] && die "UPLOAD_RATE_EXEMPT entry '$net' exempts every client; list the networks that need it"
    address=${net%/*}
    if [[ $address == *:* ]]; then
        prefix=128; [[ $net == */* ]] && prefix=$((10#${net##*/}))
        [ "$prefix" -le 128 ] || die "UPLOAD_RATE_EXEMPT entry '$net' has a prefix longer than 128"
        [ "$prefix" -ge 8 ] || die "UPLOAD_RATE_EXEMPT entry '$net' is larger than a /8; list the networks that need it"
        [ "$prefix" -lt 64 ] && exempt_v6=$((exempt_v6 + (1 << (64 - prefix)))) || exempt_v6=$((exempt_v6 + 1))
        [ "$exempt_v6" -le $((1 << 56)) ] \
            || die "UPLOAD_RATE_EXEMPT's IPv6 networks together are larger than a /8; list the networks that need it"
    else
        prefix=32; [[ $net == */* ]] && prefix=$((10#${net##*/}))
        [ "$prefix" -le 32 ] || die "UPLOAD_RATE_EXEMPT entry '$net' has a prefix longer than 32"
        exempt_v4=$((exempt_v4 + (1 << (32 - prefix))))
        [ "$exempt_v4" -le $((1 << 24)) ] \
            || die "UPLOAD_RATE_EXEMPT's networks together cover more addresses than a /8 ($exempt_v4); list the networks that need it"
    fi
done
write_upload_exempt() {  # write_upload_exempt FILE
    {
        echo "# Rendered by deploy/render-nginx.sh from UPLOAD_RATE_EXEMPT; inside geo \$mediscope_upload_exempt."
        for net in ${upload_exempt[@]+"${upload_exempt[@]}"}; do echo "$net 1;"; done
    } > "$1"
}

upstream_group() {  # upstream_group NAME PORT MAX_CONNS [KEEPALIVE]
    local entry conns=""
    [ "$3" -gt 0 ] && conns=" max_conns=$3"
    echo "upstream $1 {"
    echo "    zone $1 64k;"
    echo "    least_conn;"
    for entry in "${upstream_hosts[@]}"; do
        if [[ $entry == *=down ]]; then
            echo "    server ${entry%=down}:$2 down;"
        else
            echo "    server $entry:$2 max_fails=$max_fails fail_timeout=$fail_timeout$conns;"
        fi
    done
    if [ -n "${4:-}" ]; then
        echo "    keepalive $4;"
        echo "    keepalive_timeout 50s;"
    fi
    echo "}"
}

write_upstreams() {  # write_upstreams FILE
    {
        echo "# Rendered by deploy/render-nginx.sh; set UPSTREAM_* and render again rather than edit this."
        if [ ${#upstream_hosts[@]} -eq 0 ]; then
            cat <<EOF
# One box: this host's pools on their unix sockets. One FastCGI connection per
# request (cheap to open) and no second attempt: there is one place to go.
upstream mediscope_inference { server unix:$SOCKET_DIR/inference.sock; }
upstream mediscope_io        { server unix:$SOCKET_DIR/io.sock; }
upstream mediscope_io_reads  { server unix:$SOCKET_DIR/io.sock; }
EOF
            return
        fi
        echo "# Application hosts: ${upstream_hosts[*]}. Shared-memory zones keep failure and"
        echo "# connection counts across nginx's workers."
        echo "#"
        echo "# Uploads: fresh connections only, never kept. A retiring worker may close a kept"
        echo "# connection just as nginx sends on it, and nginx never sends a POST twice, so"
        echo "# that upload would fail; a GET/HEAD is replayed on another connection."
        upstream_group mediscope_inference "$inference_port" "$inference_max_conns"
        echo "# Every other request but GET/HEAD (sign-in, edits, deletes): fresh connections too."
        upstream_group mediscope_io "$io_port" "$io_max_conns"
        echo "# GET/HEAD: kept connections (FCGI_KEEP_CONN)."
        upstream_group mediscope_io_reads "$io_port" "$io_max_conns" "$keepalive"
    } > "$1"
}

# Location-level companions of the upstream groups (included by mediscope-fastcgi.conf, so they
# never leak into other sites of a shared http {}).
write_fastcgi_upstream() {  # write_fastcgi_upstream FILE
    {
        echo "# Rendered by deploy/render-nginx.sh with mediscope-upstreams.conf; included by mediscope-fastcgi.conf."
        if [ ${#upstream_hosts[@]} -eq 0 ]; then
            cat <<'EOF'
# One box: a connection per request (unix sockets are cheap to open), no second attempt.
fastcgi_keep_conn off;
fastcgi_next_upstream off;
EOF
            return
        fi
        cat <<'EOF'
# Several hosts: FCGI_KEEP_CONN (kept only by mediscope_io_reads, which has a
# keepalive cache). Next host on a failed connect or a timeout: nginx never
# replays a POST (an upload, a sign-in) once it was sent; a GET/HEAD is replayed
# until every host was tried. Also on a 404: a record is readable on the host
# that took it before its outbox has delivered it everywhere (a 404 never marks
# a host as failed). Every host saturated (max_conns) or failed: a 502, which
# @overloaded answers with a 503 and Retry-After.
fastcgi_keep_conn on;
fastcgi_next_upstream error timeout http_404;
fastcgi_next_upstream_timeout 30s;
EOF
    } > "$1"
}

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
        BODY_LIMIT|STOW_BODY_LIMIT)  re='^[0-9]+[kKmMgG]?$' ;;
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
# Server-level: /hosts/ADDRESS/api/{health,ready,status,metrics} reach one application host (a
# drained one too), for checks and per-host Prometheus scrapes; the app's own rules apply
# (status and metrics: admins, or the balancer's loopback).
write_host_locations() {  # write_host_locations FILE SNIPPETS_FOLDER
    local entry host bare pattern
    {
        echo "# Rendered by deploy/render-nginx.sh from UPSTREAM_HOSTS; included by mediscope-locations.conf."
        for entry in ${upstream_hosts[@]+"${upstream_hosts[@]}"}; do
            host=${entry%=down}
            bare=${host#[}; bare=${bare%]}
            pattern=$(printf '%s' "$bare" | sed 's/\./\\./g')
            cat <<EOF
location ~ ^/hosts/$pattern/api/(?:health|ready|status|metrics)\$ {
    rewrite ^/hosts/[^/]+(/api/[a-z]+)\$ \$1 break;
    include $2/mediscope-fastcgi.conf;
    fastcgi_pass $host:$io_port;
    fastcgi_read_timeout 25s;
    error_page 429 = @rate_limited;
    error_page 502 504 = @overloaded;
    error_log $ERROR_LOG alert;
    include $2/security-headers.conf;
    add_header Cache-Control \$mediscope_api_cache_control always;
}
EOF
        done
    } > "$1"
}

render_all() {  # render_all OUT_FILE SNIPPETS_FOLDER [DESTDIR]: files written below DESTDIR name SNIPPETS_FOLDER
    local prefix=${3:-} s
    mkdir -p "$prefix$2"
    [ -z "$prefix" ] || mkdir -p "$prefix$(dirname "$1")"
    for s in "${snippets[@]}"; do
        SNIPPETS=$2 render "$s" "$prefix$2/$(basename "$s")"
    done
    write_upstreams "$prefix$2/mediscope-upstreams.conf"
    write_fastcgi_upstream "$prefix$2/mediscope-fastcgi-upstream.conf"
    write_upload_exempt "$prefix$2/mediscope-upload-exempt.conf"
    write_host_locations "$prefix$2/mediscope-hosts.conf" "$2"
    SNIPPETS=$2 render "$template" "$prefix$1"
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
        # A site file cannot set events {}: every connection, also one that never finishes its header,
        # takes one of the including nginx.conf's worker_connections (Debian's: 768).
        wc=$(sed -n 's/^[[:space:]]*worker_connections[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p' /etc/nginx/nginx.conf 2>/dev/null | head -n 1)
        if [ -n "$wc" ] && [ "$wc" -lt 2048 ]; then
            echo "render-nginx: note: /etc/nginx/nginx.conf allows worker_connections $wc; raise it to 2048 and add" \
                 "'worker_rlimit_nofile 8192;' so that slow clients cannot use them all up (see the top of $template)" >&2
        fi
    fi
fi

render_all "$out" "$SNIPPETS" "$destdir"
echo "render-nginx: wrote $destdir$out (snippets in $destdir$SNIPPETS)"
