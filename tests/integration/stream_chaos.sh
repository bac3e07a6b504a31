#!/usr/bin/env bash
# Exactly once on a stream (issue 15): 100 000 messages in mode insert into a table WITHOUT any
# unique key, 2 workers, while the daemon is kill -9'd at 10 seeded random moments (restarted
# each time), PostgreSQL is restarted twice and RabbitMQ once. The stored offset commits with
# the rows, so the table ends with exactly 100 000 rows, each id once. Seeded (CHAOS_SEED).
source "$(dirname "$0")/lib.sh"
RANDOM=${CHAOS_SEED:-4242}
STREAM="s_${TEST_ID}"
N=100000
STREAMED=60000 # published at a steady rate while the daemon is killed and PostgreSQL restarts
RATE=2000
create_orders_table "$TABLE" "" # no primary key, no unique index: nothing absorbs a duplicate
{
    config_header
    cat <<YAML
log: { level: info }
pipelines:
  - name: $TEST_ID
    streams: [$STREAM]
    start: first
    lease_s: 3
    workers: 2
    batch: { max_messages: 500, max_delay_ms: 50 }
    table: public.$TABLE
    mode: insert
    columns: { id: /id, account: /account, amount: /amount, currency: /currency, payload: \$body }
YAML
} >"$WORK/rmq2pg.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" >/dev/null 2>&1 ||
    fail "--migrate failed"
chaos_trap
publish --queue "$STREAM" --declare-stream --count 0 --generate orders
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "$STREAM" \
    --generate orders --count $STREAMED --rate $RATE >/dev/null 2>"$WORK/publisher.log" &
publisher=$!
start_daemon "$WORK/rmq2pg.yaml"
chaos_kills 10 2 3 "$WORK/rmq2pg.yaml" "$TABLE"
chaos_pg_restarts 2 "$TABLE"
wait "$publisher" || fail "publisher failed: $(cat "$WORK/publisher.log")"
log "streamed $STREAMED messages; publishing the last $((N - STREAMED)) and restarting RabbitMQ"
publish --queue "$STREAM" --generate orders --count $((N - STREAMED)) --start $((STREAMED + 1))
"$SERVERS" rabbit-restart >/dev/null
log "RabbitMQ restarted at $(row_count "$TABLE") rows"
wait_until 300 "$N rows" rows_equal "$TABLE" $N
daemon_alive || fail "daemon died"
sleep 3 # a duplicate would show up now: the offset is stored, nothing more may arrive
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
[[ $(sql "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || min(id) || ' ' || max(id) FROM \"$TABLE\"") == "$N $N 1 $N" ]] ||
    fail "rows, distinct ids, min, max: $(sql "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || min(id) || ' ' || max(id) FROM \"$TABLE\"")"
[[ $(sql "SELECT next_offset FROM rmq2pg_state.stream_offsets WHERE pipeline = '$TEST_ID'") == "$N" ]] ||
    fail "stored offset is not $N"
sql "DROP TABLE \"$TABLE\""
log "PASS: $N rows, each id once, in insert mode without a key"
