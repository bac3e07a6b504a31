#!/usr/bin/env bash
# SIGTERM while PostgreSQL is down: the open batch cannot commit, so after shutdown_timeout_ms
# the daemon gives up, acks nothing, exits 1, and every message is still in the queue.
source "$(dirname "$0")/lib.sh"
SERVERS="$RMQ2PG_SOURCE_DIR/scripts/servers.sh"
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 1
sed -i 's/^shutdown_timeout_ms: .*/shutdown_timeout_ms: 3000/' "$WORK/rmq2pg.yaml"
trap 'status=$?; "$SERVERS" pg-start >/dev/null 2>&1 || true; set +e; (exit $status); cleanup' EXIT
publish --queue "$QUEUE" --declare-queue --generate orders --count 10
start_daemon "$WORK/rmq2pg.yaml"
wait_until 30 "10 rows" rows_equal "$TABLE" 10
"$SERVERS" pg-stop >/dev/null
publish --queue "$QUEUE" --generate orders --count 500 --start 11
wait_until 30 "daemon retrying" grep -q "not written, retrying" "$DAEMON_LOG"
t0=$(date +%s%N)
stop_daemon
ms=$((($(date +%s%N) - t0) / 1000000))
log "exit $DAEMON_EXIT after $ms ms"
((DAEMON_EXIT == 1)) || fail "expected exit 1 when work had to be abandoned, got $DAEMON_EXIT"
((ms < 3000 + 2000)) || fail "took $ms ms, shutdown_timeout_ms is 3000"
grep -q "messages not committed; they return to the queue" "$DAEMON_LOG" || fail "no abandon log line"
"$SERVERS" pg-start >/dev/null
all_back() { (($(queue_ready "$QUEUE") == 500)); }
wait_until 15 "500 messages back in the queue" all_back
((  $(row_count "$TABLE") == 10 )) || fail "rows written during the outage?"
log "PASS"
