#!/usr/bin/env bash
# `make run`: the FastCGI pools and an unprivileged nginx on 127.0.0.1:${PORT:-8080}, state under var/.
# Nothing is written to /etc. Ctrl-C (or TERM) stops both cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VAR=${VAR:-$ROOT/var}
PORT=${PORT:-8080}
BIN=${BIN:-$ROOT/.build/release/mediscope}
mkdir -p "$VAR/nginx" "$VAR/run" "$VAR/log"

# One stack per state folder: a second master would take over the first one's sockets.
if [ -f "$VAR/run/mediscope.pid" ] && running=$(cat "$VAR/run/mediscope.pid" 2>/dev/null) && [ -n "$running" ] \
   && kill -0 "$running" 2>/dev/null; then
  echo "mediscope: another Mediscope (pid $running) is already running with the state folder $VAR;" \
       "stop it first, or give this one its own: VAR=/path/to/other-var PORT=8081 make run" >&2
  exit 1
fi

bash deploy/build-web.sh public "$VAR/www" >/dev/null
VAR="$VAR" LISTEN="127.0.0.1:$PORT" BODY_LIMIT="${BODY_LIMIT:-20m}" \
  ERROR_LOG="$VAR/log/nginx-error.log" ACCESS_LOG="$VAR/log/nginx-access.log" \
  bash deploy/render-nginx.sh nginx/local.conf.template "$VAR/nginx/nginx.conf" >/dev/null

# nginx's workers run as nobody when started by root, so the sockets must be open to them.
export MEDISCOPE_VAR="$VAR" MEDISCOPE_SOCKET_MODE="${MEDISCOPE_SOCKET_MODE:-0666}"
export MEDISCOPE_LOG_FILE="${MEDISCOPE_LOG_FILE:-$VAR/log/mediscope.log}"
# The configuration: MEDISCOPE_CONFIG's file (mediscope reads it itself), else ./mediscope.json if there is one.
config_args=()
[ -z "${MEDISCOPE_CONFIG:-}" ] && [ -f "$ROOT/mediscope.json" ] && config_args=(--config "$ROOT/mediscope.json")

# Only what this run adds to nginx's error log tells why it failed.
log_offset=$(stat -c %s "$VAR/log/nginx-error.log" 2>/dev/null || echo 0)
"$BIN" serve "${config_args[@]}" &
server=$!
nginx -c "$VAR/nginx/nginx.conf" -p "$VAR/nginx" -e "$VAR/log/nginx-error.log" -g 'daemon off;' &
nginx_pid=$!

stop() {
  trap - INT TERM
  echo
  echo "mediscope: stopping"
  kill -TERM "$server" 2>/dev/null || true
  kill -QUIT "$nginx_pid" 2>/dev/null || true
  wait "$server" "$nginx_pid" 2>/dev/null || true
  exit 0
}
trap stop INT TERM

fail() {
  trap - INT TERM
  echo "mediscope: $1" >&2
  kill -TERM "$server" 2>/dev/null || true
  kill -QUIT "$nginx_pid" 2>/dev/null || true
  wait "$server" "$nginx_pid" 2>/dev/null || true
  exit 1
}

# Our own nginx must hold the port: a health check alone would be answered by any other server
# already listening there. nginx retries a busy port for about 2.5 s, then exits.
owns_port() { ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -q "pid=$nginx_pid,"; }
for _ in $(seq 1 100); do
  owns_port && break
  kill -0 "$nginx_pid" 2>/dev/null || break
  sleep 0.1
done
if ! owns_port; then
  if tail -c "+$((log_offset + 1))" "$VAR/log/nginx-error.log" 2>/dev/null | grep -q "Address already in use"; then
    fail "port $PORT is already in use by another program; stop it or choose another port (PORT=8081 make run)"
  fi
  fail "nginx did not start listening on port $PORT; see $VAR/log/nginx-error.log"
fi
kill -0 "$server" 2>/dev/null || fail "the FastCGI pool did not start; see $VAR/log/mediscope.log"
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/health" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/health" || fail "the stack did not come up on port $PORT; see $VAR/log/"
if [ -z "$("$BIN" user list "${config_args[@]}" 2>/dev/null)" ]; then
  cat <<MSG
No accounts yet. Make the first admin (and a clinician) with:
  $BIN user add admin --role admin            # asks for a password (12+ characters)
  $BIN user add doctor --role clinician
MSG
fi
cat <<MSG
Mediscope is running at http://127.0.0.1:$PORT/
  dashboard:       open http://127.0.0.1:$PORT/ in a browser and sign in (clinicians analyse, admins manage users)
  API sign in:     curl -c jar -H 'Content-Type: application/json' -d '{"username":"doctor","password":"..."}' http://127.0.0.1:$PORT/api/session
  API token:       then POST /api/tokens with the cookie, Origin and X-CSRF-Token; scripts send Authorization: Bearer msk_...
  analyse a scan:  curl -H "Authorization: Bearer \$TOKEN" -F image=@scan.jpg -F patient_id=P-001 http://127.0.0.1:$PORT/api/analyses
  pool status:     curl http://127.0.0.1:$PORT/api/status
  logs:            $VAR/log/   (kill -USR1 $server reopens them)
  reload:          kill -HUP $server
Press Ctrl-C to stop.
MSG
# The pool ending on its own (even killed: `wait` then fails, which set -e must not turn into an exit
# that leaves nginx holding the port) stops nginx too.
wait "$server" || true
stop
