#!/usr/bin/env bash
# Chaos: while 100 000 messages stream through 2 workers, kill -9 the daemon at 10 random moments
# (restarting it each time), then restart PostgreSQL twice, then RabbitMQ once. With mode ignore
# the final table holds every published id exactly once and no message is left in the queue.
# Seeded (CHAOS_SEED) so a failing run can be replayed.
source "$(dirname "$0")/lib.sh"
RANDOM=${CHAOS_SEED:-4242}
N=100000
STREAMED=60000 # published at a steady rate while the daemon is killed and PostgreSQL restarts
RATE=2000
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
chaos_trap
publish --queue "$QUEUE" --declare-queue --count 0 --generate orders
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "$QUEUE" \
    --generate orders --count $STREAMED --rate $RATE >/dev/null 2>"$WORK/publisher.log" &
publisher=$!
start_daemon "$WORK/rmq2pg.yaml"
chaos_kills 10 1 2 "$WORK/rmq2pg.yaml" "$TABLE"
chaos_pg_restarts 2 "$TABLE"
wait "$publisher" || fail "publisher failed: $(cat "$WORK/publisher.log")"
log "streamed $STREAMED messages; publishing the last $((N - STREAMED)) and restarting RabbitMQ"
publish --queue "$QUEUE" --generate orders --count $((N - STREAMED)) --start $((STREAMED + 1))
"$SERVERS" rabbit-restart >/dev/null
log "RabbitMQ restarted at $(row_count "$TABLE") rows"
wait_until 240 "$N rows" rows_equal "$TABLE" $N
daemon_alive || fail "daemon died"
wait_until 60 "queue empty" queue_ready_equal "$QUEUE" 0
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
[[ $(queue_ready "$QUEUE") == 0 ]] || fail "messages left unacked"
[[ $(sql "SELECT count(DISTINCT id) || ' ' || min(id) || ' ' || max(id) FROM \"$TABLE\"") == "$N 1 $N" ]] ||
    fail "ids missing or wrong"
log "PASS: $N distinct rows, 0 missing, 0 duplicated, queue empty"
