#!/usr/bin/env bash
# PostgreSQL stopped while messages arrive: nothing is acked meanwhile, and once PostgreSQL is
# back every message arrives without restarting the daemon.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
publish --queue "$QUEUE" --declare-queue --generate orders --count 1000
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "first 1000 rows" rows_equal "$TABLE" 1000
trap 'status=$?; "$RMQ2PG_SOURCE_DIR/scripts/servers.sh" pg-start >/dev/null 2>&1 || true; set +e; (exit $status); cleanup' EXIT
"$RMQ2PG_SOURCE_DIR/scripts/servers.sh" pg-stop >/dev/null
log "PostgreSQL stopped"
publish --queue "$QUEUE" --generate orders --count 5000 --start 1001
# Give the workers time to receive, fail and retry (the assertion below is not timed: it holds
# at any moment of the outage).
wait_until 30 "daemon retrying" grep -q "not written, retrying" "$DAEMON_LOG"
sleep 2
total=$(queue_total "$QUEUE")
log "during the outage the broker still holds $total messages (ready + unacked)"
((total == 5000)) || fail "expected all 5000 messages unacked or ready during the outage, got $total"
daemon_alive || fail "daemon died during the outage"
"$RMQ2PG_SOURCE_DIR/scripts/servers.sh" pg-start >/dev/null
log "PostgreSQL started again"
wait_until 120 "6000 rows" rows_equal "$TABLE" 6000
daemon_alive || fail "daemon restarted"
wait_until 30 "queue empty" queue_ready_equal "$QUEUE" 0
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
[[ $(queue_ready "$QUEUE") == 0 ]] || fail "messages left in the queue"
log "PASS"
