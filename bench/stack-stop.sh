# Sourced by the bench scripts: stop_stack stops what they started ($server_pid: mediscope serve,
# $nginx_pid, optional $worker_pids): TERM / QUIT, up to 30 s to finish, then KILL what is left.
# The caller's log() prints to stderr.
stop_stack() {
    [ -z "$server_pid$nginx_pid" ] && return 0
    [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null || true
    local i
    for i in $(seq 1 300); do   # at most 30 s
        { [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; } || { [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; } || break
        sleep 0.1
    done
    for p in $server_pid $nginx_pid $worker_pids; do kill -0 "$p" 2>/dev/null && { log "killing leftover pid $p"; kill -KILL "$p" 2>/dev/null || true; }; done
    wait $server_pid $nginx_pid 2>/dev/null || true
    server_pid="" nginx_pid="" worker_pids=""
}
