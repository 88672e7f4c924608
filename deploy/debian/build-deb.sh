#!/usr/bin/env bash
# `make deb`: mediscope_<version>_amd64.deb from this checkout, with debhelper.
#
#   deploy/debian/build-deb.sh [--version VERSION] [--out DIR]
#
# The version is deploy/debian/changelog's (the one place it is kept); --version adds an entry on top
# of the staged copy's changelog (a newer build for an upgrade test). The .deb goes to DIR (default:
# the repository's root); the staged tree is .build/deb/.
#
# Needs what `make deb` makes first: the release build (.build/release/mediscope and
# libMediscopeTorch.so, from `make build`), the models (`make model model-int8`), and debhelper and
# patchelf (deploy/install-deps.sh). What goes where:
#   /usr/lib/mediscope/       the program, the libtorch shim, the Swift runtime libraries it links
#                             (from the toolchain: Debian 12 has no package of them; RUNPATH $ORIGIN),
#                             backup.sh and swap.sh
#   /usr/bin/mediscope        the command (deploy/debian/mediscope.sh: the settings in /etc, run as the
#                             service's user when called by root)
#   /usr/share/mediscope/     models/ (both manifests, the weights, input checks, the int8 fidelity
#                             report), templates/, www/ (deploy/build-web.sh)
#   /etc/mediscope/mediscope.json, /etc/default/mediscope   conffiles (deploy/debian/etc/)
#   /etc/nginx/sites-available/mediscope, /etc/nginx/snippets/mediscope/   nginx/production rendered
#   /usr/lib/sysctl.d/90-mediscope.conf, units (deploy/systemd/), logrotate (deploy/logrotate/)
set -euo pipefail

die() { echo "build-deb: $*" >&2; exit 1; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
version=""
out=$root
while [ $# -gt 0 ]; do
    case $1 in
        --version) [ $# -ge 2 ] || die "--version needs a value"; version=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || die "--out needs a folder"; out=$2; shift 2 ;;
        *) die "usage: $0 [--version VERSION] [--out DIR]" ;;
    esac
done
release=${MEDISCOPE_RELEASE_DIR:-$root/.build/release}
models=$root/models
for f in "$release/mediscope" "$release/libMediscopeTorch.so"; do
    [ -f "$f" ] || die "no $f: run 'make build' (or 'make deb', which does)"
done
for tool in dpkg-buildpackage dh patchelf; do
    command -v "$tool" >/dev/null || die "$tool is missing: run deploy/install-deps.sh"
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

stage=$root/.build/deb
rm -rf "$stage"
src=$stage/mediscope
files=$src/files
mkdir -p "$src/debian/source" "$files"

# ---------------------------------------------------------------- debian/
cp "$here"/{control,rules,copyright,README.Debian,mediscope.1,mediscope.manpages} "$src/debian/"
cp "$here"/mediscope.{preinst,postinst,prerm,postrm,lintian-overrides} "$src/debian/"
cp "$here/source/format" "$src/debian/source/format"
if [ -n "$version" ]; then
    [[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "--version '$version' is not a Debian version of a native package"
    {
        printf 'mediscope (%s) bookworm; urgency=medium\n\n  * A newer build of the same tree (upgrade tests).\n\n' "$version"
        printf ' -- Mediscope maintainers <maintainers@mediscope.example.org>  %s\n\n' "$(date -u -R)"
        cat "$here/changelog"
    } > "$src/debian/changelog"
else
    cp "$here/changelog" "$src/debian/changelog"
fi
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
cp "$root/deploy/systemd/mediscope.service" "$src/debian/mediscope.service"
for unit in mediscope-backup.service mediscope-backup.timer mediscope-swap.service mediscope-inference.socket mediscope-io.socket; do
    cp "$root/deploy/systemd/$unit" "$src/debian/mediscope.$unit"
done
cp "$root/deploy/logrotate/mediscope" "$src/debian/mediscope.logrotate"
cp "$root/deploy/systemd/mediscope.tmpfiles" "$src/debian/mediscope.tmpfiles"

# ---------------------------------------------------------------- the program
lib=$files/usr/lib/mediscope
install -d "$lib" "$files/usr/bin"
install -m 0755 "$release/mediscope" "$lib/mediscope"
install -m 0644 "$release/libMediscopeTorch.so" "$lib/libMediscopeTorch.so"
# The Swift runtime: every library either links that Debian does not provide (the toolchain's).
mapfile -t runtime < <(ldd "$release/mediscope" "$release/libMediscopeTorch.so" \
                         | awk '$2 == "=>" && $3 ~ /^\// && $3 !~ /^\/(usr\/)?lib(64)?\// { print $3 }' | sort -u)
[ ${#runtime[@]} -gt 0 ] || die "found no Swift runtime library in ldd's output"
for so in "${runtime[@]}"; do
    install -m 0644 "$so" "$lib/$(basename "$so")"
done
# Found beside each other, never in /opt/swift: a toolchain installed there (another version) must not
# be picked up.
for f in "$lib/mediscope" "$lib"/*.so; do
    if [ -n "$(patchelf --print-rpath "$f")" ] || [ "$f" = "$lib/mediscope" ] || [ "$f" = "$lib/libMediscopeTorch.so" ]; then
        patchelf --set-rpath '$ORIGIN' "$f"
    fi
done
missing=$(ldd "$lib/mediscope" "$lib/libMediscopeTorch.so" | grep -E 'not found|/opt/' || true)
[ -z "$missing" ] || die "the staged program does not find its libraries in /usr/lib/mediscope: $missing"
install -m 0755 "$here/mediscope.sh" "$files/usr/bin/mediscope"
install -m 0755 "$root/deploy/backup.sh" "$lib/backup.sh"
install -m 0755 "$root/deploy/swap.sh" "$lib/swap.sh"

# ---------------------------------------------------------------- models, templates, web root
share=$files/usr/share/mediscope
install -d "$share/models"
for manifest in manifest.json manifest-int8.json; do
    [ -f "$models/$manifest" ] || die "no models/$manifest"
    install -m 0644 "$models/$manifest" "$share/models/$manifest"
    # Each model's weights, its input check (checked against the manifest's SHA-256) and its fidelity report.
    while IFS=$'\t' read -r kind name digest; do
        [ -f "$models/$name" ] || die "models/$manifest names $name, which is missing: run 'make model model-int8'"
        if [ "$kind" = inputCheck ] && [ "$(sha256sum < "$models/$name" | cut -d' ' -f1)" != "$digest" ]; then
            die "models/$name does not match the SHA-256 models/$manifest pins"
        fi
        install -m 0644 "$models/$name" "$share/models/$name"
    done < <(python3 - "$models/$manifest" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1]))["models"]:
    print("file", m["file"], "", sep="\t")
    if "inputCheck" in m:
        print("inputCheck", m["inputCheck"]["file"], m["inputCheck"]["sha256"], sep="\t")
    if "fidelity" in m:
        print("fidelity", m["fidelity"]["report"], "", sep="\t")
PY
)
done
install -d "$share/templates"
cp -a "$root/templates/." "$share/templates/"
bash "$root/deploy/build-web.sh" "$root/public" "$share/www" >/dev/null
find "$share" -type d -exec chmod 0755 {} + && find "$share" -type f -exec chmod 0644 {} +

# ---------------------------------------------------------------- configuration
cp -a "$here/etc/." "$files/etc/"
chmod 0644 "$files/etc/mediscope/mediscope.json" "$files/etc/default/mediscope"
install -D -m 0644 "$root/deploy/sysctl/90-mediscope.conf" "$files/usr/lib/sysctl.d/90-mediscope.conf"
# The production site for one box: the pools' sockets in /run/mediscope, the web root this package
# ships, any server name and Debian's snakeoil certificate (ssl-cert) until the admin sets theirs.
DESTDIR=$files NGINX_TEST=0 VAR=/var/lib/mediscope WEB_ROOT=/usr/share/mediscope/www SOCKET_DIR=/run/mediscope \
    BODY_LIMIT=20m SERVER_NAME=_ \
    TLS_CERT=/etc/ssl/certs/ssl-cert-snakeoil.pem TLS_KEY=/etc/ssl/private/ssl-cert-snakeoil.key \
    ACCESS_LOG=/var/log/nginx/mediscope/access.log ERROR_LOG=/var/log/nginx/mediscope/error.log \
    SNIPPETS_DIR=/etc/nginx/snippets/mediscope \
    bash "$root/deploy/render-nginx.sh" "$root/nginx/production/mediscope.conf" /etc/nginx/sites-available/mediscope >/dev/null
chmod 0644 "$files/etc/nginx/sites-available/mediscope" "$files"/etc/nginx/snippets/mediscope/*.conf

# ---------------------------------------------------------------- pack
(cd "$src" && dpkg-buildpackage -b --no-sign) > "$stage/dpkg-buildpackage.log" 2>&1 \
    || { tail -n 40 "$stage/dpkg-buildpackage.log" >&2; die "dpkg-buildpackage failed (log: $stage/dpkg-buildpackage.log)"; }
deb=mediscope_${version}_amd64.deb
[ -f "$stage/$deb" ] || die "dpkg-buildpackage made no $deb"
mv "$stage/$deb" "$out/$deb"
echo "$out/$deb"
