# Shared helpers of the integration tests: private servers' URLs, a throw-away queue and table
# per test, the daemon started in the background, and bounded polling (no sleep is an assertion).
# Sourced by each test script; ctest passes RMQ2PG_SOURCE_DIR and RMQ2PG_BUILD_DIR.
set -euo pipefail

: "${RMQ2PG_SOURCE_DIR:?}" "${RMQ2PG_BUILD_DIR:?}"
eval "$("$RMQ2PG_SOURCE_DIR/scripts/servers.sh" env)"
# shellcheck source=scripts/lib/orders_pipeline.sh
source "$RMQ2PG_SOURCE_DIR/scripts/lib/orders_pipeline.sh"
export PGCONNECT_TIMEOUT=5

TEST_ID="$(basename "$0" .sh)_$$"
WORK="$(mktemp -d "/tmp/rmq2pg-${TEST_ID}-XXXX")"
QUEUE="q_${TEST_ID}"
TABLE="t_${TEST_ID}"
DAEMON_PID=""
DAEMON_LOG="$WORK/daemon.log"

log() { printf '[%s] %s\n' "$(date +%T.%3N)" "$*"; }

fail() {
    log "FAIL: $*"
    if [[ -f "$DAEMON_LOG" ]]; then
        echo "---- last daemon log lines ----"
        tail -n 40 "$DAEMON_LOG"
    fi
    exit 1
}

cleanup() {
    local status=$?
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -9 "$DAEMON_PID" 2>/dev/null || true
    fi
    if [[ $status -eq 0 ]]; then rm -rf "$WORK"; else log "work dir kept: $WORK"; fi
}
trap cleanup EXIT

sql() { psql "$RMQ2PG_TEST_PG_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

publish() {
    "$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" "$@" >/dev/null
}

# Ready messages in a queue (unacked ones are not counted by queue.declare passive).
# A queue that does not exist (yet) holds 0: "<queue>.dead" is declared at the first dead letter.
queue_ready() {
    local stats
    stats=$("$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --stats "$1" 2>/dev/null) ||
        stats=0
    echo "${stats%% *}"
}

# Ready + unacked, from the broker itself.
queue_total() {
    "$RMQ2PG_SOURCE_DIR/scripts/servers.sh" rabbitmqctl list_queues -q name messages |
        awk -v q="$1" '$1 == q { print $2 }'
}

row_count() { sql "SELECT count(*) FROM \"$1\""; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for: $what"
        sleep 0.2
    done
}

# The many-pipeline tests (pool_200, hub_reconnect, hub_backlog_start): pipeline i reads
# ${QUEUE}_i into ${TABLE}_i.
# numbered_order_tables K: creates ${TABLE}_1..K afresh, orders tables keyed by id.
numbered_order_tables() {
    sql "DO \$\$ BEGIN FOR i IN 1..$1 LOOP
           EXECUTE format('DROP TABLE IF EXISTS %I; CREATE TABLE %I (id bigint PRIMARY KEY,
             account varchar(64) NOT NULL, amount numeric(12,2), currency text, payload jsonb,
             routing_key text, message_id text)', '${TABLE}_' || i, '${TABLE}_' || i);
         END LOOP; END \$\$"
}
# numbered_queues K: ${QUEUE}_1..K, comma-separated (rmq2pg-bench publish --queues).
numbered_queues() {
    local i out=""
    for ((i = 1; i <= $1; i++)); do out+="${out:+,}${QUEUE}_$i"; done
    echo "$out"
}
# numbered_rows K: the rows of ${TABLE}_1..K together, in one query.
numbered_rows() {
    local i q="SELECT 0"
    for ((i = 1; i <= $1; i++)); do q+=" + (SELECT count(*) FROM ${TABLE}_$i)"; done
    sql "$q"
}
# tables_exact K N: each of ${TABLE}_1..K holds exactly ids 1..N (count, first and last id), in
# one query; fails naming the tables that do not.
tables_exact() {
    local parts="" wrong i
    for ((i = 1; i <= $1; i++)); do
        parts+="${parts:+ UNION ALL }SELECT $i AS i, count(*) AS n, min(id) AS lo, max(id) AS hi FROM ${TABLE}_$i"
    done
    wrong=$(sql "SELECT string_agg(i || ': ' || n || ' rows, ids ' || lo || '..' || hi, '; ')
                   FROM ($parts) t WHERE n <> $2 OR lo <> 1 OR hi <> $2")
    [[ -z $wrong ]] || fail "tables not exact (expected $2 rows, ids 1..$2): $wrong"
}
rows_at_least() { (($(row_count "$1") >= $2)); }
rows_equal() { (($(row_count "$1") == $2)); }
queue_ready_equal() { (($(queue_ready "$1") == $2)); }
# rows_plus_dead_equal TABLE QUEUE N: every message is either a row or in QUEUE's dead-letter queue.
rows_plus_dead_equal() { (($(row_count "$1") + $(queue_ready "$2.dead") == $3)); }

create_orders_table() {
    sql "DROP TABLE IF EXISTS \"$1\"; CREATE TABLE \"$1\" (
           id bigint ${2-PRIMARY KEY}, account varchar(64) NOT NULL, amount numeric(12,2),
           currency text, payload jsonb, routing_key text, message_id text,
           received_at timestamptz NOT NULL DEFAULT clock_timestamp())"
}

# config_header [AMQP_URL...]: the top of a test config: the private servers (or the brokers
# given), short timeouts and retries. RMQ2PG_TEST_POOL_SIZE sets postgres.pool_size (the
# "_pooled" registrations of a test run it with fewer connections than workers).
# shellcheck disable=SC2120 # the arguments are optional
config_header() {
    local urls="\"$RMQ2PG_TEST_AMQP_URL\"" url
    if (($#)); then
        urls=""
        for url in "$@"; do urls+="${urls:+, }\"$url\""; done
    fi
    cat <<YAML
amqp:
  urls: [$urls]
  heartbeat_s: 10
postgres:
  url: "$RMQ2PG_TEST_PG_URL"${RMQ2PG_TEST_POOL_SIZE:+
  pool_size: $RMQ2PG_TEST_POOL_SIZE}
shutdown_timeout_ms: 10000
retry: { initial_ms: 100, max_ms: 1000 }
YAML
}

# write_config FILE MODE WORKERS [EXTRA_YAML]: the test's one orders pipeline ($QUEUE into
# $TABLE, see create_orders_table). EXTRA_YAML follows the columns: more columns (indented by 6)
# or pipeline keys (by 4). For other settings, call orders_pipeline (scripts/lib) directly.
write_config() {
    local file=$1 mode=$2 workers=$3 extra=${4:-}
    {
        config_header
        echo "log: { level: info }"
        echo "pipelines:"
        orders_pipeline "$TEST_ID" "$QUEUE" "public.$TABLE" mode="$mode" workers="$workers" \
            extra="$extra"
    } >"$file"
}

start_daemon() {
    "$RMQ2PG_BUILD_DIR/rmq2pg" --config "$1" >>"$DAEMON_LOG" 2>&1 &
    DAEMON_PID=$!
    log "daemon started (pid $DAEMON_PID)"
}

daemon_alive() { kill -0 "$DAEMON_PID" 2>/dev/null; }

# pooled_as_asked: under RMQ2PG_TEST_POOL_SIZE, the daemon said its workers share the pool (a
# "_pooled" run that silently used a connection per worker would test nothing new).
pooled_as_asked() {
    [[ -z ${RMQ2PG_TEST_POOL_SIZE:-} ]] ||
        grep -q "share a pool of $RMQ2PG_TEST_POOL_SIZE PostgreSQL connections" "$DAEMON_LOG" ||
        fail "RMQ2PG_TEST_POOL_SIZE=$RMQ2PG_TEST_POOL_SIZE but the daemon did not use the pool"
}

# stop_daemon: SIGTERM, wait for exit, sets DAEMON_EXIT.
stop_daemon() {
    kill -TERM "$DAEMON_PID"
    local status=0
    wait "$DAEMON_PID" || status=$?
    DAEMON_EXIT=$status
    DAEMON_PID=""
}

# Chaos helpers (chaos.sh, stream_chaos.sh). Each draws its pauses from RANDOM, which the test
# seeds (CHAOS_SEED) so that a failing run can be replayed; call them in the same order.
SERVERS="$RMQ2PG_SOURCE_DIR/scripts/servers.sh"

# chaos_trap: on exit, start the servers again (a test that failed mid-restart must not leave
# them down for the next test), then the usual cleanup.
chaos_trap() {
    trap 'status=$?; "$SERVERS" start >/dev/null 2>&1 || true; set +e; (exit $status); cleanup' EXIT
}

# chaos_kills TIMES MIN_S SPREAD_S CONFIG TABLE: kill -9 the daemon TIMES times, each after MIN_S
# to MIN_S + SPREAD_S seconds (tenths drawn too), restarting it with CONFIG each time.
chaos_kills() {
    local times=$1 min_s=$2 spread_s=$3 config=$4 table=$5 kill_number
    for kill_number in $(seq 1 "$times"); do
        sleep "$((min_s + RANDOM % spread_s)).$((RANDOM % 10))"
        kill -9 "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null || true
        log "kill -9 #$kill_number at $(row_count "$table") rows"
        start_daemon "$config"
    done
}

# chaos_pg_restarts TIMES TABLE: restart PostgreSQL TIMES times, each after 1 to 3 seconds.
chaos_pg_restarts() {
    local times=$1 table=$2 restart
    for restart in $(seq 1 "$times"); do
        sleep "$((1 + RANDOM % 2)).$((RANDOM % 10))"
        "$SERVERS" pg-restart >/dev/null
        log "PostgreSQL restart #$restart at $(row_count "$table") rows"
    done
}
