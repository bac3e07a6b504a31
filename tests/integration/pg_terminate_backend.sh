#!/usr/bin/env bash
# A worker whose PostgreSQL connection is killed by pg_terminate_backend recovers by itself:
# the batch is retried on a new connection and every message becomes a row exactly once.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
publish --queue "$QUEUE" --declare-queue --generate orders --count 2000
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "2000 rows" rows_equal "$TABLE" 2000
killed=$(sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE application_name LIKE 'rmq2pg/${TEST_ID}/%'")
log "terminated $killed backends"
((killed == 2)) || fail "expected the 2 workers' backends, found $killed"
publish --queue "$QUEUE" --generate orders --count 8000 --start 2001
wait_until 60 "10000 rows" rows_equal "$TABLE" 10000
daemon_alive || fail "daemon died"
grep -q "connected to PostgreSQL" "$DAEMON_LOG" || fail "no reconnect logged"
reconnects=$(grep -c "connected to PostgreSQL" "$DAEMON_LOG")
((reconnects >= 3)) || fail "expected the terminated workers to reconnect ($reconnects connects)"
wait_until 30 "queue empty" queue_ready_equal "$QUEUE" 0
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
[[ $(queue_ready "$QUEUE") == 0 ]] || fail "messages left in the queue"
log "PASS"
