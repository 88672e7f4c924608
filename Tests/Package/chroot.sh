#!/usr/bin/env bash
# A clean Debian 12 root for the package test (Tests/IntegrationTests/PackageInstallTests.swift): made
# with debootstrap once and cached in Tests/Package/cache/, copied afresh for every run.
#
#   chroot.sh prepare WORK        WORK/root: a copy of the cached Debian 12 root (debootstrap on the first
#                                 run), /proc, /sys (read-only), /run, /dev/shm and apt's archive cache
#                                 mounted, apt's lists updated from deb.debian.org
#   chroot.sh run WORK CMD...     CMD as root inside (standard input passed on), a clean environment
#   chroot.sh start WORK          mediscope.service as systemd would start it (its User, Group, UMask,
#                                 WorkingDirectory, Runtime/State/LogsDirectory, ExecStart, read from the
#                                 installed unit), then nginx; systemd cannot boot in a chroot
#   chroot.sh reload WORK         the unit's ExecReload for the running service ($MAINPID from its pid file)
#   chroot.sh stop WORK           stops both and waits for them (by deadline)
#   chroot.sh cleanup WORK        kills whatever still runs in WORK/root, turns off swap files inside it,
#                                 unmounts, removes WORK (KEEP_WORK=1 keeps it to look at)
#   chroot.sh sweep               cleanup of every WORK under Tests/Package/work (runs a killed test left)
#
# The root shares the host's network: nginx must listen on free loopback ports (the test edits the
# installed site's listen lines as an admin would), and policy-rc.d keeps every service of the
# packages it installs from starting by itself (a chroot's "services" must not take the host's ports).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=$here/cache
work_root=$here/work
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
base=$cache/debian-12-minbase

die() { echo "chroot.sh: $*" >&2; exit 1; }
log() { echo "chroot.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"

# wait_for SECONDS CMD...: polls CMD (every 0.2 s) until it succeeds; fails once SECONDS have passed.
wait_for() {
    local timeout=$1; shift
    local deadline=$(( $(date +%s) + timeout ))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# The cached root: debootstrap --variant=minbase of Debian 12, with the security and updates suites
# and a policy-rc.d that keeps services from starting. A run that was cut off leaves no stamp, and
# the next one starts over.
make_base() {
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9
    if [ -f "$base/.complete" ]; then
        return
    fi
    rm -rf "$base" "$base.new"
    log "debootstrap $suite (minbase) from $mirror into $base (cached for the next runs)"
    debootstrap --variant=minbase "$suite" "$base.new" "$mirror" > "$cache/debootstrap.log" 2>&1 \
        || { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
    cat > "$base.new/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
    # Services of the packages installed here must not start: they would take the host's ports.
    printf '#!/bin/sh\n# The package test: no service starts inside this chroot by itself.\nexit 101\n' > "$base.new/usr/sbin/policy-rc.d"
    chmod 0755 "$base.new/usr/sbin/policy-rc.d"
    # apt keeps what it downloaded (the archive cache is mounted from the test's cache folder).
    echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > "$base.new/etc/apt/apt.conf.d/90package-test"
    rm -rf "$base.new/var/cache/apt/archives"/*.deb
    touch "$base.new/.complete"
    mv "$base.new" "$base"
}

root_of() { echo "$1/root"; }

# Closes every descriptor above 2 (but bash's own script descriptor): a daemon started from here must not
# keep open what this script inherited, or whoever waits for this script to end (Foundation's Process
# watches a descriptor its children inherit) would wait for the daemon too.
close_inherited() {
    local fd
    for fd in $(ls "/proc/$BASHPID/fd"); do
        [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ] && eval "exec $fd>&-" 2>/dev/null || true
    done
}

mounted_under() {  # mount points at or below $1, deepest first
    awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

do_mount() {
    local root=$1
    mount -t proc proc "$root/proc"
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
    mkdir -p "$cache/apt-archives/partial"
    mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
}

prepare() {
    local work=$1 root
    root=$(root_of "$work")
    cleanup "$work"
    make_base
    mkdir -p "$work"
    cp -a "$base" "$root"
    rm -f "$root/.complete"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    do_mount "$root"
    in_root "$root" apt-get update -qq > "$work/apt-update.log" 2>&1 \
        || { cat "$work/apt-update.log" >&2; die "apt-get update failed inside the root"; }
    # The archive cache keeps only what the archive still has (a point release replaces packages).
    in_root "$root" apt-get autoclean -qq >> "$work/apt-update.log" 2>&1 || true
}

in_root() {  # in_root ROOT CMD...: CMD as root in ROOT with a clean environment (no systemd there)
    local root=$1; shift
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

unit_value() {  # unit_value ROOT KEY: the installed mediscope.service's KEY= (empty when unset)
    sed -n "s/^$2=//p" "$1/lib/systemd/system/mediscope.service" | tail -n 1
}

service_pid() {  # the running master's pid (its pid file), if it runs
    local root=$1 pid
    pid=$(cat "$root/run/mediscope/mediscope.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
    local work=$1 root user group umask workdir exec_start name mode kind
    root=$(root_of "$work")
    user=$(unit_value "$root" User); group=$(unit_value "$root" Group)
    umask=$(unit_value "$root" UMask); workdir=$(unit_value "$root" WorkingDirectory)
    exec_start=$(unit_value "$root" ExecStart)
    [ -n "$user" ] && [ -n "$exec_start" ] || die "the installed mediscope.service names no User= or ExecStart="
    # What systemd makes before ExecStart: /run, /var/lib and /var/log folders the service's user owns.
    for kind in Runtime:/run State:/var/lib Logs:/var/log; do
        name=$(unit_value "$root" "${kind%%:*}Directory")
        mode=$(unit_value "$root" "${kind%%:*}DirectoryMode")
        [ -z "$name" ] || in_root "$root" install -d -o "$user" -g "$group" -m "${mode:-0755}" "${kind#*:}/$name"
    done
    # setsid: the service outlives this script, as under systemd; its output is the "journal".
    (
        close_inherited
        exec setsid chroot --userspec="$user:$group" "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            /bin/sh -c "umask ${umask:-0022}; cd '${workdir:-/}' && exec $exec_start" >> "$work/mediscope.journal" 2>&1 < /dev/null
    ) &
    wait_for 60 test -S "$root/run/mediscope/io.sock" -a -S "$root/run/mediscope/inference.sock" \
        || { tail -n 30 "$work/mediscope.journal" >&2; die "mediscope.service's sockets did not appear in /run/mediscope"; }
    in_root "$root" nginx -t -q || die "nginx -t fails inside the root"
    ( close_inherited; exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin nginx ) < /dev/null > /dev/null 2>&1 \
        || die "nginx did not start inside the root"
    wait_for 30 test -s "$root/run/nginx.pid" || die "nginx wrote no pid file"
}

reload() {
    local work=$1 root pid command
    root=$(root_of "$work")
    pid=$(service_pid "$root") || die "mediscope.service is not running"
    command=$(unit_value "$root" ExecReload)
    [ -n "$command" ] || die "the installed mediscope.service has no ExecReload="
    in_root "$root" /bin/sh -c "${command//\$MAINPID/$pid}"
}

stop() {
    local work=$1 root pid
    root=$(root_of "$work")
    if [ -s "$root/run/nginx.pid" ]; then
        pid=$(cat "$root/run/nginx.pid")
        in_root "$root" nginx -s quit || true
        wait_for 30 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    if pid=$(service_pid "$root"); then
        kill -TERM "$pid"
        wait_for 40 gone "$pid" || { kill -KILL "$pid" 2>/dev/null || true; die "mediscope did not stop within 40 s of TERM"; }
    fi
}

processes_in() {  # pids whose root folder is $1 (or below it)
    local root=$1 p link
    for p in /proc/[0-9]*; do
        link=$(readlink "$p/root" 2>/dev/null) || continue
        case $link in "$root"|"$root"/*) echo "${p#/proc/}" ;; esac
    done
}

none_in() { [ -z "$(processes_in "$1")" ]; }
gone() {  # the process ended (a zombie nobody reaped yet counts as ended)
    ! kill -0 "$1" 2>/dev/null || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

cleanup() {
    local work=$1 root pid swap m left
    [ -d "$work" ] || return 0
    root=$(cd "$work" && pwd)/root
    if [ -d "$root" ]; then
        for pid in $(processes_in "$root"); do kill -TERM "$pid" 2>/dev/null || true; done
        if ! wait_for 20 none_in "$root"; then
            for pid in $(processes_in "$root"); do kill -KILL "$pid" 2>/dev/null || true; done
            wait_for 10 none_in "$root" || die "processes still run in $root: $(processes_in "$root" | tr '\n' ' ')"
        fi
        # Swap files the test enabled inside the root (the kernel's table names them by their full path).
        for swap in $(awk 'NR > 1 { print $1 }' /proc/swaps); do
            case $swap in "$root"/*) swapoff "$swap" || log "could not swapoff $swap" ;; esac
        done
        for m in $(mounted_under "$root"); do
            umount "$m" 2>/dev/null || umount -l "$m"
        done
        left=$(mounted_under "$root")
        [ -z "$left" ] || die "still mounted: $left"
    fi
    if [ "${KEEP_WORK:-0}" != 1 ]; then
        rm -rf --one-file-system "$work"
    fi
}

command=${1:-}
case $command in
    prepare|start|stop|reload|cleanup)
        [ $# -eq 2 ] || die "usage: $0 $command WORK"
        "$command" "$2" ;;
    run)
        [ $# -ge 3 ] || die "usage: $0 run WORK CMD..."
        work=$2; shift 2
        in_root "$(root_of "$work")" "$@" ;;
    sweep)
        for w in "$work_root"/*/; do
            [ -d "$w" ] && cleanup "${w%/}"
        done ;;
    *)
        die "usage: $0 prepare|run|start|reload|stop|cleanup WORK ... | sweep" ;;
esac
