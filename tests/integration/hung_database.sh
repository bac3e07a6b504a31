#!/usr/bin/env bash
# A hung database (every PostgreSQL process SIGSTOPped, as a frozen VM or a network black hole
# looks) for 3 × postgres.write_timeout_ms while messages arrive: /readyz turns 503 within the
# deadline + 5 s, the write is cut and logged, the broker never closes a worker's connection for
# missed heartbeats (heartbeat_s 2: without the write guard it would after ~4 s), and after
# SIGCONT every message is a row exactly once (ignore mode), without a daemon restart.
source "$(dirname "$0")/lib.sh"
DEADLINE_MS=3000
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
RABBIT_LOG="$RMQ2PG_SERVERS_DIR/rabbitmq/log/$RMQ2PG_TEST_RABBIT_NODE.log"
PG_PID_FILE="$RMQ2PG_SERVERS_DIR/postgres/data/postmaster.pid"

create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
sed -i 's/^  heartbeat_s: 10$/  heartbeat_s: 2/' "$WORK/rmq2pg.yaml"
sed -i "s|^  url: \"$RMQ2PG_TEST_PG_URL\"\$|&\n  write_timeout_ms: $DEADLINE_MS\n  connect_timeout_s: 2|" \
    "$WORK/rmq2pg.yaml"
grep -q "heartbeat_s: 2" "$WORK/rmq2pg.yaml" || fail "could not set heartbeat_s"
grep -q "write_timeout_ms: $DEADLINE_MS" "$WORK/rmq2pg.yaml" || fail "could not set the deadline"
echo "http: { listen: \"127.0.0.1:$PORT\" }" >>"$WORK/rmq2pg.yaml"

publish --queue "$QUEUE" --declare-queue --generate orders --count 2000
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "first 2000 rows" rows_equal "$TABLE" 2000
ready_code() { curl -s -m 2 -o /dev/null -w '%{http_code}' "$BASE/readyz" || true; }
ready_is() { [[ $(ready_code) == "$1" ]]; }
wait_until 30 "/readyz 200" ready_is 200
rabbit_log_mark=$(stat -c %s "$RABBIT_LOG")

pg_pids() {
    local postmaster
    postmaster=$(head -n 1 "$PG_PID_FILE")
    echo "$postmaster" $(pgrep -P "$postmaster")
}
# Whatever happens, PostgreSQL is not left frozen for the next test.
trap 'status=$?; kill -CONT $(pg_pids) 2>/dev/null || true; set +e; (exit $status); cleanup' EXIT

# Frozen first, then messages: the workers receive them and start a write that cannot finish
# (an idle worker does not touch PostgreSQL, so a freeze between batches would show nothing yet).
kill -STOP $(pg_pids)
stopped_at=$SECONDS
stopped_ms=$(date +%s%3N)
log "PostgreSQL frozen (SIGSTOP)"
publish --queue "$QUEUE" --generate orders --count 3000 --start 2001

wait_until $((DEADLINE_MS / 1000 + 5)) "/readyz 503 while the database hangs" \
    ready_is 503
not_ready_ms=$(($(date +%s%3N) - stopped_ms))
log "/readyz 503 after ${not_ready_ms} ms (deadline ${DEADLINE_MS} ms)"
curl -s -m 2 "$BASE/readyz" | tee "$WORK/readyz.txt"
echo
live=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$BASE/healthz" || true)
[[ $live == 200 ]] || fail "/healthz is $live during a database hang (an outage, not a wedged daemon)"

# Hold the freeze for 3 × the deadline in all.
while ((SECONDS - stopped_at < 3 * DEADLINE_MS / 1000)); do sleep 0.2; done
daemon_alive || fail "daemon died while the database hung"
kill -CONT $(pg_pids)
log "PostgreSQL resumed (SIGCONT) after $((SECONDS - stopped_at)) s"

grep -q "took longer than $DEADLINE_MS ms" "$DAEMON_LOG" ||
    fail "no log line names the write deadline"
wait_until 120 "5000 rows" rows_equal "$TABLE" 5000
distinct=$(sql "SELECT count(DISTINCT id) FROM \"$TABLE\" WHERE id BETWEEN 1 AND 5000")
((distinct == 5000)) || fail "expected ids 1..5000 once each, got $distinct distinct"
wait_until 30 "/readyz 200 again" ready_is 200
wait_until 30 "queue empty" queue_ready_equal "$QUEUE" 0

missed=$(tail -c +"$((rabbit_log_mark + 1))" "$RABBIT_LOG" | grep -c "missed heartbeats" || true)
log "broker log lines about missed heartbeats since the freeze: $missed"
((missed == 0)) || fail "the broker closed a connection for missed heartbeats"
redelivered=$(curl -s -m 2 "$BASE/metrics" |
    awk -v m="rmq2pg_messages_redelivered_total{pipeline=\"$TEST_ID\"}" '$1 == m { print $2 }')
log "redelivered during the test: ${redelivered:-?}"
stop_daemon
pooled_as_asked
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS (readyz 503 after ${not_ready_ms} ms)"
