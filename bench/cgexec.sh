#!/usr/bin/env bash
# cgexec.sh "DIR1 DIR2 ..." COMMAND [ARGS...]: put this shell into each cgroup directory
# (writes its own pid to DIR/cgroup.procs), then exec COMMAND so it and all its children run there.
set -euo pipefail
for d in $1; do echo $$ > "$d/cgroup.procs"; done
shift
exec "$@"
