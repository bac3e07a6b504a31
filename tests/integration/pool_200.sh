#!/usr/bin/env bash
# 200 pipelines (200 queues into 200 tables, 2 000 messages each) on postgres.pool_size 16 and
# amqp.connections 4: the daemon never holds more than 16 PostgreSQL connections
# (pg_stat_activity sampled every second for the whole run) nor more than 4 AMQP connections
# (its sockets every second, the broker's list as often as rabbitmqctl answers: no poison, so
# no dead-letter publisher opens one), and every table ends with exactly its 2 000 rows.
source "$(dirname "$0")/lib.sh"
PIPELINES=${POOL_TEST_PIPELINES:-200}
N=${POOL_TEST_MESSAGES:-2000}
POOL=16
AMQP_CONNECTIONS=${POOL_TEST_AMQP_CONNECTIONS:-4}

numbered_order_tables "$PIPELINES"
{
    config_header | sed "s/^postgres:/postgres:\n  pool_size: $POOL/" |
        sed "s/^amqp:/amqp:\n  connections: $AMQP_CONNECTIONS/"
    echo "log: { level: info }"
    echo "pipelines:"
    for ((i = 1; i <= PIPELINES; i++)); do
        orders_pipeline "${TEST_ID}_$i" "${QUEUE}_$i" "public.${TABLE}_$i" mode=ignore workers=1 \
            prefetch=500
    done
} >"$WORK/rmq2pg.yaml"
grep -q "pool_size: $POOL" "$WORK/rmq2pg.yaml" || fail "config has no pool_size"
grep -q "connections: $AMQP_CONNECTIONS" "$WORK/rmq2pg.yaml" || fail "config has no amqp.connections"

# The queues exist before the daemon starts; the messages arrive while it runs, so the samples
# see the pool under load.
for ((i = 1; i <= PIPELINES; i++)); do
    publish --queue "${QUEUE}_$i" --declare-queue --generate orders --count 0
done

# Every second: the daemon's PostgreSQL connections (pg_stat_activity) and its AMQP connections
# (its established sockets to the broker's port: rabbitmqctl takes far longer than a second to
# answer on a loaded machine, so it is sampled too, as often as it answers, and both count).
sample_every_second() {
    while :; do
        sql "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'rmq2pg%'" \
            >>"$WORK/pg_samples" 2>/dev/null || true
        if [[ -n $DAEMON_PID ]]; then
            ss -Htnp state established "( dport = :$RMQ2PG_TEST_AMQP_PORT )" 2>/dev/null |
                grep -c "pid=$DAEMON_PID," >>"$WORK/amqp_samples" || true
        fi
        sleep 1
    done
}
sample_broker() {
    while :; do
        "$RMQ2PG_SOURCE_DIR/scripts/servers.sh" rabbitmqctl list_connections -q client_properties \
            2>/dev/null | grep -cE "pid ${DAEMON_PID}([^0-9]|$)" >>"$WORK/amqp_samples" || true
        sleep 1
    done
}
samplers=()
stop_samplers() {
    ((${#samplers[@]} == 0)) || kill "${samplers[@]}" 2>/dev/null || true
    ((${#samplers[@]} == 0)) || wait "${samplers[@]}" 2>/dev/null || true
    samplers=()
}
# The samplers end with the test, whatever its outcome.
# shellcheck disable=SC2154 # status is assigned inside the trap
trap 'status=$?; set +e; stop_samplers; (exit $status); cleanup' EXIT

started=$(date +%s.%N)
start_daemon "$WORK/rmq2pg.yaml"
sample_every_second &
samplers+=($!)
sample_broker &
samplers+=($!)
wait_until 120 "daemon ready" bash -c "grep -q 'share a pool of $POOL PostgreSQL connections' '$DAEMON_LOG'"
grep -q "consume on $AMQP_CONNECTIONS shared AMQP connection" "$DAEMON_LOG" ||
    fail "the daemon did not share $AMQP_CONNECTIONS AMQP connections"
# One publisher, each message to every queue in turn (windowed confirms): the pipelines fill
# together, as a fleet of services would fill them.
queues=$(numbered_queues "$PIPELINES")
"$RMQ2PG_BUILD_DIR/rmq2pg-bench" publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues "$queues" \
    --count "$N" >"$WORK/publisher.log" 2>&1 || fail "publisher failed: $(cat "$WORK/publisher.log")"
log "published $((PIPELINES * N)) messages"

all_rows() { (($(numbered_rows "$PIPELINES") == PIPELINES * N)); }
wait_until 600 "$((PIPELINES * N)) rows" all_rows
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
log "$((PIPELINES * N)) rows in ${elapsed}s"
stop_samplers
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

# Every table exact (count, first and last id), in one query; every queue empty, in one listing.
tables_exact "$PIPELINES" "$N"
"$RMQ2PG_SOURCE_DIR/scripts/servers.sh" rabbitmqctl list_queues -q name messages >"$WORK/queues"
listed=$(awk -v p="${QUEUE}_" 'index($1, p) == 1' "$WORK/queues" | wc -l)
((listed == PIPELINES)) || fail "$listed of $PIPELINES queues listed"
left=$(awk -v p="${QUEUE}_" 'index($1, p) == 1 && $2 != 0' "$WORK/queues")
[[ -z $left ]] || fail "queues not empty: $left"
pg_max=$(sort -n "$WORK/pg_samples" | tail -1)
amqp_max=$(sort -n "$WORK/amqp_samples" | tail -1)
log "$(wc -l <"$WORK/pg_samples") PostgreSQL samples, max $pg_max connections (pool_size $POOL);" \
    "$(wc -l <"$WORK/amqp_samples") AMQP samples, max $amqp_max connections" \
    "(amqp.connections $AMQP_CONNECTIONS)"
(($(wc -l <"$WORK/pg_samples") >= 5)) || fail "too few samples"
((pg_max <= POOL)) || fail "$pg_max PostgreSQL connections, more than pool_size $POOL"
((pg_max >= 1)) || fail "the sampler never saw the daemon's connections"
((amqp_max <= AMQP_CONNECTIONS)) ||
    fail "$amqp_max AMQP connections, more than amqp.connections $AMQP_CONNECTIONS"
((amqp_max >= 1)) || fail "the samplers never saw the daemon's AMQP connections"
log "PASS"
