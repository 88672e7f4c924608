#!/bin/sh
# /usr/bin/mediscope: the installed command. It reads /etc/mediscope/mediscope.json unless --config or
# MEDISCOPE_CONFIG names another file, and run by root it runs as the service's user, so that what it
# makes (the first accounts, a restored store) stays readable by the service.
set -e
program=/usr/lib/mediscope/mediscope
MEDISCOPE_CONFIG=${MEDISCOPE_CONFIG:-/etc/mediscope/mediscope.json}
export MEDISCOPE_CONFIG
if [ "$(id -u)" = 0 ]; then
    exec runuser -u mediscope -- "$program" "$@"
fi
exec "$program" "$@"
