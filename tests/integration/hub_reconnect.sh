#!/usr/bin/env bash
# 50 pipelines consume on ONE shared AMQP connection (amqp.connections: 1, pool_size 8). While
# they drain, the broker cuts every connection three times (rabbitmqctl close_all_connections).
# Every table ends with exactly its ids 1..N (mode ignore: a delivery redelivered after its
# COMMIT is written once), every queue empty, and the hub reconnected each time (the
# connection's generation in its log).
source "$(dirname "$0")/lib.sh"
PIPELINES=${HUB_TEST_PIPELINES:-50}
N=${HUB_TEST_MESSAGES:-2000}
HALF=$((N / 2))

numbered_order_tables "$PIPELINES"
{
    config_header | sed "s/^postgres:/postgres:\n  pool_size: 8/" |
        sed "s/^amqp:/amqp:\n  connections: 1/"
    echo "pipelines:"
    for ((i = 1; i <= PIPELINES; i++)); do
        # Small batches and prefetch: the drain takes long enough for the cuts to land in it.
        orders_pipeline "${TEST_ID}_$i" "${QUEUE}_$i" "public.${TABLE}_$i" mode=ignore workers=1 \
            prefetch=50 max_messages=50
    done
} >"$WORK/rmq2pg.yaml"
grep -q "connections: 1" "$WORK/rmq2pg.yaml" || fail "config has no amqp.connections"
chaos_trap
for ((i = 1; i <= PIPELINES; i++)); do
    publish --queue "${QUEUE}_$i" --declare-queue --generate orders --count 0
done
queues=$(numbered_queues "$PIPELINES")
bench_publish() {
    "$RMQ2PG_BUILD_DIR/rmq2pg-bench" publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues "$queues" \
        --count "$1" --start "$2" >"$WORK/publisher.log" 2>&1 ||
        fail "publisher failed: $(cat "$WORK/publisher.log")"
}
all_rows() { numbered_rows "$PIPELINES"; }
rows_reach() { (($(all_rows) >= $1)); }
generation_reached() { grep -q "rmq2pg shared connection 0 .*connected to .*(generation $1)" "$DAEMON_LOG"; }

bench_publish $HALF 1
log "published $((PIPELINES * HALF)) messages (the first half)"
start_daemon "$WORK/rmq2pg.yaml"
grep -q "consume on 1 shared AMQP connection" "$DAEMON_LOG" ||
    wait_until 30 "one shared connection" grep -q "consume on 1 shared AMQP connection" "$DAEMON_LOG"
# Three cuts: as soon as rows arrive, 2 s later, and 2 s after the second half is published.
wait_until 120 "the first rows" rows_reach 1
cut_connections() {
    "$SERVERS" rabbitmqctl close_all_connections "hub_reconnect test cut $1" >/dev/null
    log "cut $1: every broker connection closed at $(all_rows) of $((PIPELINES * N)) rows"
    wait_until 60 "the hub's reconnect $1" generation_reached $(($1 + 1))
}
cut_connections 1
sleep 2
cut_connections 2
bench_publish $HALF $((HALF + 1))
log "published the second half"
sleep 2
cut_connections 3
wait_until 300 "$((PIPELINES * N)) rows" rows_reach $((PIPELINES * N))
daemon_alive || fail "daemon died"
grep -q "consumers lose their channel" "$DAEMON_LOG" || fail "the hub never saw its connection lost"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

tables_exact "$PIPELINES" "$N"
"$SERVERS" rabbitmqctl list_queues -q name messages >"$WORK/queues"
left=$(awk -v p="${QUEUE}_" 'index($1, p) == 1 && $2 != 0' "$WORK/queues")
[[ -z $left ]] || fail "queues not empty: $left"
redelivered=$(grep -c "unsettled messages return to the queue" "$DAEMON_LOG" || true)
log "PASS: $PIPELINES tables of exactly $N rows after 3 cuts of the shared connection" \
    "($redelivered workers dropped an unsettled batch)"
