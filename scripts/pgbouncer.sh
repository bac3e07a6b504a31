#!/usr/bin/env bash
# A private PgBouncer in transaction pooling in front of scripts/servers.sh's PostgreSQL, for the
# tests: its own ini, auth file, pid file, log and port under $RMQ2PG_SERVERS_DIR/pgbouncer. A
# system pgbouncer (/etc/pgbouncer, its service) is never read nor touched.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/pgbouncer.sh COMMAND [ARGS...]
  start          start (idempotent): 127.0.0.1:$RMQ2PG_TEST_PGBOUNCER_PORT -> the private PostgreSQL
  stop           stop (idempotent)
  status         running or not (exit 1 when not)
  admin SQL...   one command on the admin console (SHOW POOLS, RECONNECT, PAUSE...), as rmq2pg
  env            export lines: eval "$(scripts/pgbouncer.sh env)" sets RMQ2PG_TEST_PGBOUNCER_URL
settings (environment): RMQ2PG_SERVERS_DIR (/tmp/rmq2pg-servers), RMQ2PG_TEST_PGBOUNCER_PORT (21677),
  RMQ2PG_TEST_PG_PORT (21675, the PostgreSQL behind it), RMQ2PG_TEST_PGBOUNCER_POOL_SIZE (2, server
  connections per database and user), RMQ2PG_SERVERS_TIMEOUT (60, seconds a start or stop may take)
EOF
}

dir=${RMQ2PG_SERVERS_DIR:-/tmp/rmq2pg-servers}
[[ "$dir" == /* ]] || dir="$PWD/$dir"
bouncer_dir="$dir/pgbouncer"
port=${RMQ2PG_TEST_PGBOUNCER_PORT:-21677}
pg_port=${RMQ2PG_TEST_PG_PORT:-21675}
pool_size=${RMQ2PG_TEST_PGBOUNCER_POOL_SIZE:-2}
timeout_s=${RMQ2PG_SERVERS_TIMEOUT:-60}
ini="$bouncer_dir/pgbouncer.ini"
pid_file="$bouncer_dir/pgbouncer.pid"
log_file="$bouncer_dir/pgbouncer.log"
url="postgresql://rmq2pg:rmq2pg@127.0.0.1:$port/rmq2pg_test"

# PgBouncer refuses to run as root: as root, run it as the postgres user (as servers.sh runs
# PostgreSQL); as anyone else, as that user.
if ((EUID == 0)); then user=postgres; else user=$(id -un); fi

log() { printf 'pgbouncer: %s\n' "$*"; }
die() {
    printf 'pgbouncer: error: %s\n' "$*" >&2
    exit 1
}

port_open() { timeout 2 bash -c ": <>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# The pid of OUR pgbouncer: the pid file's process, alive, not a zombie, and started with our ini
# (a recycled pid, or another pgbouncer, is not ours).
our_pid() {
    local pid state
    [[ -r "$pid_file" ]] || return 1
    read -r pid <"$pid_file" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
    [[ "$state" != Z* ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$ini" || return 1
    echo "$pid"
}

write_config() {
    mkdir -p "$bouncer_dir"
    # The rmq2pg role of servers.sh (password rmq2pg). A plain password lets PgBouncer answer the
    # client's SCRAM exchange and run its own against PostgreSQL (scram-sha-256 there).
    printf '"rmq2pg" "rmq2pg"\n' >"$bouncer_dir/userlist.txt"
    chmod 600 "$bouncer_dir/userlist.txt"
    cat >"$ini" <<EOF
[databases]
rmq2pg_test = host=127.0.0.1 port=$pg_port dbname=rmq2pg_test

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
; no Unix socket: nothing outside this directory is created
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $bouncer_dir/userlist.txt
admin_users = rmq2pg
stats_users = rmq2pg
pool_mode = transaction
; small on purpose: several workers share few server connections, so consecutive transactions
; of one client land on different server connections
default_pool_size = $pool_size
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
; a server connection that broke is retried after 1 s (default 15) so tests stay short
server_login_retry = 1
; a client waits at most this long for a server connection
query_wait_timeout = 60
pidfile = $pid_file
logfile = $log_file
log_connections = 0
log_disconnections = 0
EOF
    if ((EUID == 0)); then
        chown -R "$user:" "$bouncer_dir"
    fi
}

start() {
    if our_pid >/dev/null && port_open "$port"; then
        log "already running (127.0.0.1:$port)"
        return 0
    fi
    if ! our_pid >/dev/null; then
        port_open "$port" && die "port $port is in use by another process: set RMQ2PG_TEST_PGBOUNCER_PORT"
        write_config
        rm -f "$pid_file"
        local mark
        mark=$(stat -c %s "$log_file" 2>/dev/null || echo 0)
        log "starting (127.0.0.1:$port -> 127.0.0.1:$pg_port, pool_mode transaction, pool $pool_size)"
        # -d: daemonizes once listening; not our stdout/stderr (a capturing caller would wait).
        if ((EUID == 0)); then
            runuser -u "$user" -- /usr/sbin/pgbouncer -d -q "$ini" </dev/null >/dev/null 2>&1 ||
                { tail -c +"$((mark + 1))" "$log_file" >&2 2>/dev/null; die "pgbouncer failed to start"; }
        else
            /usr/sbin/pgbouncer -d -q "$ini" </dev/null >/dev/null 2>&1 ||
                { tail -c +"$((mark + 1))" "$log_file" >&2 2>/dev/null; die "pgbouncer failed to start"; }
        fi
    fi
    local deadline=$((SECONDS + timeout_s))
    until our_pid >/dev/null && port_open "$port"; do
        ((SECONDS < deadline)) || die "pgbouncer did not listen on 127.0.0.1:$port within ${timeout_s}s (log $log_file)"
        sleep 0.1
    done
    log "running (127.0.0.1:$port, pid $(our_pid))"
}

stop() {
    local pid
    if ! pid=$(our_pid); then
        log "not running"
        return 0
    fi
    # SIGTERM: immediate shutdown (clients and servers are closed at once).
    kill -TERM "$pid"
    local deadline=$((SECONDS + timeout_s))
    while our_pid >/dev/null; do
        if ((SECONDS >= deadline)); then
            log "did not stop within ${timeout_s}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    log "stopped"
}

status() {
    local pid
    if pid=$(our_pid); then
        log "running (127.0.0.1:$port, pid $pid)"
    else
        log "stopped"
        return 1
    fi
}

admin() {
    (($# > 0)) || die "admin needs a command, e.g. admin SHOW POOLS"
    PGPASSWORD=rmq2pg PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$port" -U rmq2pg -d pgbouncer -XAt \
        -c "$*"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    admin)
        shift
        admin "$@"
        ;;
    env) echo "export RMQ2PG_TEST_PGBOUNCER_URL=$url" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
