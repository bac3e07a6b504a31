#!/usr/bin/env bash
# A daemon started on backlogs: 150 queues already holding 400 messages each, consumed on ONE
# shared AMQP connection (amqp.connections: 1, pool_size 4). While the hub subscribes its 150
# consumers one RPC at a time, the consumers subscribed first are sent their prefetch, and
# rabbitmq-c queues those frames behind each RPC's reply: tens of thousands of queued frames.
# Every table ends with exactly its ids 1..400 within 180 s. (Before c9851a4 each delivery
# walked 150 channels x the queued frames: the hub's thread at 100% CPU for over ten minutes,
# no row written, /readyz ready.)
source "$(dirname "$0")/lib.sh"
PIPELINES=${HUB_BACKLOG_PIPELINES:-150}
N=${HUB_BACKLOG_MESSAGES:-400}

numbered_order_tables "$PIPELINES"
{
    config_header | sed "s/^postgres:/postgres:\n  pool_size: 4/" |
        sed "s/^amqp:/amqp:\n  connections: 1/"
    echo "pipelines:"
    for ((i = 1; i <= PIPELINES; i++)); do
        orders_pipeline "${TEST_ID}_$i" "${QUEUE}_$i" "public.${TABLE}_$i" mode=ignore workers=1 \
            prefetch="$N" max_messages=200
    done
} >"$WORK/rmq2pg.yaml"
grep -q "connections: 1" "$WORK/rmq2pg.yaml" || fail "config has no amqp.connections"
for ((i = 1; i <= PIPELINES; i++)); do
    publish --queue "${QUEUE}_$i" --declare-queue --generate orders --count 0
done
queues=$(numbered_queues "$PIPELINES")
"$RMQ2PG_BUILD_DIR/rmq2pg-bench" publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues "$queues" \
    --count "$N" >"$WORK/publisher.log" 2>&1 || fail "publisher failed: $(cat "$WORK/publisher.log")"
log "published $((PIPELINES * N)) messages before the daemon starts"
all_rows() { numbered_rows "$PIPELINES"; }
rows_reach() { (($(all_rows) >= $1)); }

started=$SECONDS
start_daemon "$WORK/rmq2pg.yaml"
wait_until 180 "$((PIPELINES * N)) rows" rows_reach $((PIPELINES * N))
log "every row written $((SECONDS - started)) s after the start"
daemon_alive || fail "daemon died"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
tables_exact "$PIPELINES" "$N"
log "PASS: $PIPELINES backlogs of $N drained through one shared connection"
