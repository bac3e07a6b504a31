#!/usr/bin/env bash
# kill -9 mid-stream, restart: every published message ends up as a row (mode ignore makes the
# count exact), and at the moment of the kill no message had been acked without its row.
source "$(dirname "$0")/lib.sh"
N=20000
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
publish --queue "$QUEUE" --declare-queue --generate orders --count 0
# Published at a steady rate while the daemon runs, so the kill lands mid-stream however fast
# the daemon drains.
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "$QUEUE" \
    --generate orders --count $N --rate 5000 >/dev/null 2>"$WORK/publisher.log" &
publisher=$!
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "some rows" rows_at_least "$TABLE" 3000
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
wait "$publisher" || fail "publisher failed: $(cat "$WORK/publisher.log")"
# The broker requeues the dead connection's unacked messages; once it has, every message is
# either a row or back in the queue (both, for ones committed but not yet acked).
rows=$(row_count "$TABLE")
wait_until 30 "unacked messages requeued" bash -c \
    "(( \$(\"$RMQ2PG_BUILD_DIR/rmq2pg-publish\" --url '$RMQ2PG_TEST_AMQP_URL' --stats '$QUEUE' | cut -d' ' -f1) + $rows >= $N ))"
ready=$(queue_ready "$QUEUE")
log "after kill -9: $rows rows, $ready messages ready (sum $((rows + ready)) >= $N)"
((rows < N)) || fail "the kill came too late to test anything ($rows rows)"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 120 "$N rows after restart" rows_equal "$TABLE" $N
wait_until 30 "queue empty" queue_ready_equal "$QUEUE" 0
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
pooled_as_asked
[[ $(queue_ready "$QUEUE") == 0 ]] || fail "messages left in the queue"
[[ $(sql "SELECT count(DISTINCT id) FROM \"$TABLE\"") == "$N" ]] || fail "missing ids"
log "PASS"
