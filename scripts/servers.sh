#!/usr/bin/env bash
# Private RabbitMQ 3.10 and PostgreSQL 15 on loopback for the tests and the demo. Everything lives
# under $RMQ2PG_SERVERS_DIR (stop + rm -rf is a full cleanup); system instances are left alone.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/servers.sh COMMAND [ARGS...]
  start | stop | status | clean          both servers (start/stop are idempotent; clean = stop + rm -rf)
  start --fresh                          stop, remove both servers' data, start (ctest's fixture)
  pg-start | pg-stop | pg-restart        PostgreSQL only (stop is a fast shutdown)
  rabbit-start | rabbit-stop | rabbit-restart
  env                                    export lines: eval "$(scripts/servers.sh env)"
  rabbitmqctl ARGS...                    rabbitmqctl against the private node
  psql ARGS...                           psql on the private database as rmq2pg
settings (environment): RMQ2PG_SERVERS_DIR (/tmp/rmq2pg-servers), RMQ2PG_TEST_AMQP_PORT (21672),
  RMQ2PG_TEST_RABBIT_DIST_PORT (21673), RMQ2PG_TEST_EPMD_PORT (21674),
  RMQ2PG_TEST_RABBIT_NODE (rmq2pg-test@localhost), RMQ2PG_TEST_PG_PORT (21675),
  RMQ2PG_SERVERS_TIMEOUT (60, seconds a start or stop may take),
  RMQ2PG_TEST_RABBIT_EXTRA_CONF, RMQ2PG_TEST_PG_EXTRA_CONF (lines appended to the generated
  rabbitmq.conf / postgresql settings at each start, e.g. a TLS listener; files they name must
  be readable by the server's user)
EOF
}

dir=${RMQ2PG_SERVERS_DIR:-/tmp/rmq2pg-servers}
# The servers are started from inside $dir and their config files name paths: make it absolute.
[[ "$dir" == /* ]] || dir="$PWD/$dir"
# Ports below 32768: outside Linux's ephemeral range, so no outgoing connection of the tests
# can hold one of them when a server restarts and binds it again.
amqp_port=${RMQ2PG_TEST_AMQP_PORT:-21672}
dist_port=${RMQ2PG_TEST_RABBIT_DIST_PORT:-21673}
# A private epmd (Erlang's node-name registry), so a system RabbitMQ's epmd on 4369 is never
# used, and so the one ours starts can be ended with it.
epmd_port=${RMQ2PG_TEST_EPMD_PORT:-21674}
node=${RMQ2PG_TEST_RABBIT_NODE:-rmq2pg-test@localhost}
pg_port=${RMQ2PG_TEST_PG_PORT:-21675}
timeout_s=${RMQ2PG_SERVERS_TIMEOUT:-60}
rabbit_extra_conf=${RMQ2PG_TEST_RABBIT_EXTRA_CONF:-}
pg_extra_conf=${RMQ2PG_TEST_PG_EXTRA_CONF:-}

pg_bin=/usr/lib/postgresql/15/bin
rabbit_bin=/usr/lib/rabbitmq/bin

rabbit_dir="$dir/rabbitmq"
rabbit_pid_file="$rabbit_dir/rabbitmq.pid"
rabbit_log="$rabbit_dir/log/$node.log"
rabbit_startup_log="$rabbit_dir/log/startup.log"
pg_dir="$dir/postgres"
pg_data="$pg_dir/data"
pg_socket_dir="$pg_dir/run"
pg_log="$pg_dir/postgres.log"

amqp_url="amqp://rmq2pg:rmq2pg@127.0.0.1:$amqp_port/"
pg_url="postgresql://rmq2pg:rmq2pg@127.0.0.1:$pg_port/rmq2pg_test"

log_prefix=servers
# shellcheck source=scripts/lib/servers_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/servers_common.sh"

# Both servers refuse to run as root (or drop to their own user): see as_user.
if ((EUID == 0)); then
    rabbit_user=rabbitmq
    pg_user=postgres
else
    rabbit_user=$(id -un)
    pg_user=$rabbit_user
fi

# Keeps the binaries' absence from turning into obscure errors later on.
need_packages() {
    [[ -x "$pg_bin/pg_ctl" ]] || die "PostgreSQL 15 is not installed: run scripts/deps.sh"
    if ((EUID == 0)) && ! id -u postgres >/dev/null 2>&1; then
        die "user postgres missing: run scripts/deps.sh"
    fi
    need_rabbitmq
}

# ---------------------------------------------------------------- RabbitMQ

rabbit_workdir=$rabbit_dir
rabbit_node_env "$rabbit_dir" "$rabbit_dir/home" "$amqp_port" "$dist_port" "$epmd_port"

rabbit_pid() { pid_in_file "$rabbit_pid_file"; }

rabbit_fail() {
    show_log "$rabbit_startup_log"
    show_log "$rabbit_log" errors
    # A node whose boot failed keeps its Erlang VM running: end it so the next start is clean.
    local pid
    pid=$(rabbit_pid || true)
    if [[ -n "$pid" ]]; then
        end_process "$pid" 10
        rm -f "$rabbit_pid_file"
    fi
    die "$*"
}

rabbit_prepare() {
    rabbit_cookie "$rabbit_dir/home"
    rabbit_node_files "$rabbit_dir" "$amqp_port" "$rabbit_extra_conf"
}

rabbit_start() {
    local pid
    pid=$(rabbit_pid || true)
    if [[ -n "$pid" ]] && port_open "$amqp_port"; then
        log "rabbitmq already running (pid $pid, amqp 127.0.0.1:$amqp_port)"
        return 0
    fi
    mark_logs "$rabbit_startup_log" "$rabbit_log"
    if [[ -n "$pid" ]]; then
        # Still booting (an earlier start was interrupted) or its app was stopped (stop_app):
        # the wait below covers the first; the second fails it and the node is ended, so the
        # next start begins afresh.
        log "rabbitmq node up (pid $pid) but 127.0.0.1:$amqp_port closed: waiting for it"
    else
        local p
        for p in "$amqp_port" "$dist_port"; do
            port_open "$p" && die "port $p is in use by another process (not our node): set RMQ2PG_TEST_AMQP_PORT/RMQ2PG_TEST_RABBIT_DIST_PORT"
        done
        rabbit_prepare
        rm -f "$rabbit_pid_file"
        log "starting rabbitmq node $node (amqp 127.0.0.1:$amqp_port)"
        rabbit_boot "$rabbit_startup_log" || rabbit_fail "rabbitmq-server -detached failed"
    fi
    # One CLI call that waits for the pid file, then for the rabbit application to be up; it
    # gives up by itself if the process dies.
    if ! rabbit_ctl_within "$((timeout_s + 10))" wait --timeout "$timeout_s" "$rabbit_pid_file" \
        >>"$rabbit_startup_log" 2>&1; then
        rabbit_fail "rabbitmq node $node failed to start (limit ${timeout_s}s)"
    fi
    local deadline=$((SECONDS + 10))
    until port_open "$amqp_port"; do
        ((SECONDS < deadline)) || rabbit_fail "rabbitmq is up but 127.0.0.1:$amqp_port does not accept connections"
        sleep 0.2
    done
    log "rabbitmq running (pid $(rabbit_pid || echo '?'), amqp 127.0.0.1:$amqp_port)"
}

rabbit_stop() {
    local pid
    pid=$(rabbit_pid || true)
    if [[ -z "$pid" ]]; then
        log "rabbitmq not running"
    else
        log "stopping rabbitmq (pid $pid)"
        rabbit_halt "$pid" 10 "$rabbit_startup_log"
        rm -f "$rabbit_pid_file"
        log "rabbitmq stopped"
    fi
    # The private epmd the node (or a CLI call) started; it refuses while a node is registered.
    epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
}

rabbit_status() {
    local pid
    pid=$(rabbit_pid || true)
    if [[ -n "$pid" ]] && port_open "$amqp_port"; then
        log "rabbitmq: running (pid $pid, node $node, amqp 127.0.0.1:$amqp_port)"
    elif [[ -n "$pid" ]]; then
        log "rabbitmq: starting or unhealthy (pid $pid, amqp port $amqp_port closed)"
        return 1
    else
        log "rabbitmq: stopped"
        return 1
    fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_ctl_as_owner() { (cd "$pg_dir" && as_user "$pg_user" "$pg_bin/pg_ctl" -D "$pg_data" "$@"); }
pg_ready() { "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -t 2; }
# The postmaster's pid from its lock file (not "pg_ctl status", which counts a zombie as running).
pg_pid() { pid_in_file "$pg_data/postmaster.pid"; }
pg_running() { pg_pid >/dev/null; }

# Live processes working in the data directory (every postgres process chdirs there): after a
# killed postmaster, its backends linger until they notice.
pg_data_users() {
    local link pid real
    real=$(realpath -m "$pg_data")
    for link in /proc/[0-9]*/cwd; do
        [[ "$(readlink "$link" 2>/dev/null)" == "$real" ]] || continue
        pid=${link#/proc/}
        pid=${pid%/cwd}
        pid_alive "$pid" && echo "$pid"
    done
    return 0
}

pg_fail() {
    show_log "$pg_log"
    die "$*"
}

pg_prepare() {
    mkdir -p "$pg_dir" "$pg_socket_dir"
    ((EUID == 0)) && chown "$pg_user:" "$pg_dir" "$pg_socket_dir"
    if [[ ! -f "$pg_data/PG_VERSION" ]]; then
        log "initdb $pg_data"
        rm -rf "$pg_data" # a half-made one from an interrupted initdb
        # Password auth on TCP (what the daemon and tests use), trust on the private socket
        # (this script's own admin connection as postgres).
        (cd "$pg_dir" && as_user "$pg_user" "$pg_bin/initdb" -D "$pg_data" -U postgres \
            --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
            >"$pg_dir/initdb.log" 2>&1) || {
            cat "$pg_dir/initdb.log" >&2
            die "initdb failed"
        }
        echo "include = 'rmq2pg.conf'" >>"$pg_data/postgresql.conf"
    fi
    # Rewritten each start so changed settings take effect on an existing cluster.
    cat >"$pg_data/rmq2pg.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg_socket_dir'
max_connections = 200
fsync = on
EOF
    if [[ -n "$pg_extra_conf" ]]; then
        printf '%s\n' "$pg_extra_conf" >>"$pg_data/rmq2pg.conf"
    fi
    ((EUID == 0)) && chown "$pg_user:" "$pg_data/rmq2pg.conf"
    return 0
}

# The rmq2pg role (superuser: tests create tables and terminate backends) and its database.
pg_ensure_db() {
    (cd "$pg_dir" && as_user "$pg_user" "$pg_bin/psql" -h "$pg_socket_dir" -p "$pg_port" -U postgres \
        -d postgres -Xq -v ON_ERROR_STOP=1) <<'EOF'
SELECT 'CREATE ROLE rmq2pg' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rmq2pg')\gexec
ALTER ROLE rmq2pg WITH LOGIN SUPERUSER PASSWORD 'rmq2pg';
SELECT 'CREATE DATABASE rmq2pg_test OWNER rmq2pg'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'rmq2pg_test')\gexec
EOF
}

pg_start() {
    if pg_running && pg_ready; then
        log "postgresql already running (127.0.0.1:$pg_port)"
        return 0
    fi
    if ! pg_running; then
        port_open "$pg_port" && die "port $pg_port is in use by another process (not our cluster): set RMQ2PG_TEST_PG_PORT"
        pg_prepare
        if [[ -f "$pg_data/postmaster.pid" ]]; then
            # Left by a killed postmaster, as is the socket's lock file. Postgres would refuse
            # to start while that pid is still a zombie (its check is kill -0 too), so remove
            # them, but only once the old postmaster's backends are gone: the lock file is what
            # protects the data from them.
            local deadline=$((SECONDS + 15))
            while [[ -n "$(pg_data_users)" ]]; do
                ((SECONDS < deadline)) || die "processes $(pg_data_users | xargs) still use $pg_data"
                sleep 0.2
            done
            rm -f "$pg_data/postmaster.pid" "$pg_socket_dir/.s.PGSQL.$pg_port" \
                "$pg_socket_dir/.s.PGSQL.$pg_port.lock"
        fi
        mark_logs "$pg_log"
        log "starting postgresql (127.0.0.1:$pg_port, data $pg_data)"
        # -w: returns once the server accepts connections (or has failed).
        detach pg_ctl_as_owner -l "$pg_log" -w -t "$timeout_s" start >/dev/null 2>&1 ||
            pg_fail "postgresql failed to start (pg_ctl start, limit ${timeout_s}s)"
    fi
    local deadline=$((SECONDS + timeout_s))
    until pg_ready; do
        ((SECONDS < deadline)) || pg_fail "postgresql did not answer on 127.0.0.1:$pg_port within ${timeout_s}s"
        sleep 0.2
    done
    pg_ensure_db || pg_fail "could not create role/database rmq2pg"
    log "postgresql running (127.0.0.1:$pg_port, database rmq2pg_test)"
}

pg_stop() {
    if ! pg_running; then
        log "postgresql not running"
        return 0
    fi
    log "stopping postgresql (fast)"
    if ! pg_ctl_as_owner -m fast -w -t "$timeout_s" stop >/dev/null 2>&1; then
        log "fast shutdown timed out: immediate shutdown"
        pg_ctl_as_owner -m immediate -w -t "$timeout_s" stop >/dev/null 2>&1 || die "postgresql did not stop"
    fi
    log "postgresql stopped"
}

pg_status() {
    if pg_running && pg_ready; then
        log "postgresql: running (127.0.0.1:$pg_port, socket dir $pg_socket_dir)"
    elif pg_running; then
        log "postgresql: starting or unhealthy (not answering on 127.0.0.1:$pg_port)"
        return 1
    else
        log "postgresql: stopped"
        return 1
    fi
}

# ---------------------------------------------------------------- commands

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
    start)
        need_packages
        take_lock
        if [[ "${1:-}" == --fresh ]]; then
            # The test fixture's start: what an earlier run left (a queue whose recovery crashes
            # after an unclean stop, tables, users) must not decide whether this run can begin.
            rabbit_stop
            pg_stop
            rm -rf "$rabbit_dir" "$pg_dir"
            log "removed the data of earlier runs ($rabbit_dir, $pg_dir)"
        fi
        # Side by side: RabbitMQ's boot (~3 s) hides PostgreSQL's (initdb ~1.5 s the first
        # time). Each reports its own failure; either one fails the start.
        pg_start &
        pg_job=$!
        rabbit_start &
        rabbit_job=$!
        rc=0
        wait "$pg_job" || rc=1
        wait "$rabbit_job" || rc=1
        exit "$rc"
        ;;
    stop)
        take_lock existing
        rabbit_stop
        pg_stop
        ;;
    clean)
        take_lock existing
        rabbit_stop
        pg_stop
        rm -rf "$dir"
        log "removed $dir"
        ;;
    status)
        rc=0
        pg_status || rc=3
        rabbit_status || rc=3
        exit "$rc"
        ;;
    pg-start | pg-restart)
        need_packages
        take_lock
        if [[ "$cmd" == pg-restart ]]; then pg_stop; fi
        pg_start
        ;;
    pg-stop)
        take_lock existing
        pg_stop
        ;;
    rabbit-start | rabbit-restart)
        need_packages
        take_lock
        if [[ "$cmd" == rabbit-restart ]]; then rabbit_stop; fi
        rabbit_start
        ;;
    rabbit-stop)
        take_lock existing
        rabbit_stop
        ;;
    env)
        printf 'export %s=%q\n' \
            RMQ2PG_SERVERS_DIR "$dir" \
            RMQ2PG_TEST_AMQP_URL "$amqp_url" \
            RMQ2PG_TEST_PG_URL "$pg_url" \
            RMQ2PG_TEST_RABBIT_NODE "$node" \
            RMQ2PG_TEST_AMQP_PORT "$amqp_port" \
            RMQ2PG_TEST_PG_PORT "$pg_port"
        ;;
    rabbitmqctl)
        need_packages
        [[ -f "$rabbit_dir/home/.erlang.cookie" ]] || die "no node here yet: scripts/servers.sh start"
        rabbit_ctl_within 0 "$@"
        ;;
    psql)
        need_packages
        exec "$pg_bin/psql" "$pg_url" "$@"
        ;;
    -h | --help | help)
        usage
        ;;
    *)
        usage >&2
        exit 64
        ;;
esac
