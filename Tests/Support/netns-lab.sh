#!/usr/bin/env bash
# A small network of simulated hosts on this machine: Linux network namespaces
# joined by veth pairs to one bridge. Used by the scale-out tests and bench/.
#
#   netns-lab.sh up LAB NAME...   namespaces LAB-NAME at 10.231.N.2, .3, ... in
#                                 order, this (root) namespace at 10.231.N.1;
#                                 prints "NAME ADDRESS" per line, "root" first
#   netns-lab.sh down LAB         kills every process in LAB's namespaces and
#                                 removes them (and so every veth and the bridge)
#   netns-lab.sh sweep            "down" for every lab whose owner process is gone
#
# LAB is "msl" + the owner's pid, optionally "n" + a number (msl4711, msl4711n2):
# sweep uses the pid to find labs left by a process that was killed before it
# could clean up. N is picked from
# the pid among the 10.231.0.0/16 subnets no route uses yet. The namespaces
# reach each other and this namespace only: no default route, no forwarding.
# Needs root and iproute2.
set -euo pipefail

die() { echo "netns-lab: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (ip netns)"
command -v ip >/dev/null || PATH=$PATH:/usr/sbin:/sbin

namespaces_of() {  # namespaces_of LAB
    ip netns list | awk '{print $1}' | grep -E "^$1-" || true
}

down() {
    local lab=$1 ns
    for ns in $(namespaces_of "$lab"); do
        # A namespace lives on while a process is in it: kill them first.
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    done
    for ns in $(namespaces_of "$lab"); do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
            sleep 0.1
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "${lab}r" 2>/dev/null || true   # gone with its peer already, normally
}

case "${1:-}" in
up)
    [ $# -ge 3 ] || die "usage: $0 up LAB NAME..."
    lab=$2; shift 2
    [[ $lab =~ ^msl[0-9]{1,7}(n[0-9]{1,2})?$ ]] || die "LAB must be msl<pid> or msl<pid>n<number> (got '$lab')"
    [ -z "$(namespaces_of "$lab")" ] || die "lab $lab exists already"
    [ $# -le 200 ] || die "at most 200 hosts"
    pid=${lab#msl}; pid=${pid%n*}
    subnet=""
    for i in $(seq 0 249); do
        n=$(( (pid + i) % 250 ))
        ip route show | grep -q "^10\.231\.$n\." && continue
        subnet=10.231.$n; break
    done
    [ -n "$subnet" ] || die "no free 10.231.N.0/24 subnet"
    trap 'down "$lab"' ERR
    sw=$lab-sw
    ip netns add "$sw"
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    # This namespace's leg: the tests and benchmarks talk to the lab from here.
    ip link add "${lab}r" type veth peer name root netns "$sw"
    ip -n "$sw" link set root master br0 up
    ip addr add "$subnet.1/24" dev "${lab}r"
    ip link set "${lab}r" up
    echo "root $subnet.1"
    host=2
    for name in "$@"; do
        [[ $name =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "host name '$name' must be 1-8 lower-case letters and digits"
        ns=$lab-$name
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip link add eth0 netns "$ns" type veth peer name "h$name" netns "$sw"
        ip -n "$sw" link set "h$name" master br0 up
        ip -n "$ns" addr add "$subnet.$host/24" dev eth0
        ip -n "$ns" link set eth0 up
        echo "$name $subnet.$host"
        host=$((host + 1))
    done
    ;;
down)
    [ $# -eq 2 ] || die "usage: $0 down LAB"
    down "$2"
    ;;
sweep)
    for lab in $(ip netns list | awk '{print $1}' | sed -nE 's/^(msl[0-9]+(n[0-9]+)?)-.*/\1/p' | sort -u); do
        pid=${lab#msl}; pid=${pid%n*}
        [ -d "/proc/$pid" ] || down "$lab"
    done
    ;;
*)
    die "usage: $0 up LAB NAME... | down LAB | sweep"
    ;;
esac
