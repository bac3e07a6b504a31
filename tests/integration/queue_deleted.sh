#!/usr/bin/env bash
# The broker cancels the consumer when its queue is deleted: the workers log it, retry until the
# queue exists again, and resume consuming without a restart.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
publish --queue "$QUEUE" --declare-queue --generate orders --count 1000
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "1000 rows" rows_equal "$TABLE" 1000
"$RMQ2PG_SOURCE_DIR/scripts/servers.sh" rabbitmqctl delete_queue "$QUEUE" >/dev/null
wait_until 30 "cancel noticed" grep -q "cancelled the consumer\|NOT_FOUND" "$DAEMON_LOG"
publish --queue "$QUEUE" --declare-queue --generate orders --count 1000 --start 1001
wait_until 60 "2000 rows" rows_equal "$TABLE" 2000
daemon_alive || fail "daemon died"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS"
