#!/usr/bin/env bash
# Effectively-once by message id: the same 5 000 message ids published twice (the second time
# with different bodies) give 5 000 rows and 5 000 inbox entries; pruning empties the inbox once
# the retention has passed.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE" ""
write_config "$WORK/rmq2pg.yaml" insert 2 "    dedupe: message_id
    dedupe_retention_s: 4"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" || fail "--migrate failed"
sql "DELETE FROM rmq2pg_state.inbox WHERE pipeline = '$TEST_ID'"
publish --queue "$QUEUE" --declare-queue --generate orders --count 5000 --seed 1
publish --queue "$QUEUE" --generate orders --count 5000 --seed 2
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "queue drained" queue_ready_equal "$QUEUE" 0
wait_until 30 "5000 rows" rows_equal "$TABLE" 5000
inbox=$(sql "SELECT count(*) FROM rmq2pg_state.inbox WHERE pipeline = '$TEST_ID'")
((inbox == 5000)) || fail "inbox holds $inbox ids"
[[ $(sql "SELECT count(DISTINCT message_id) FROM \"$TABLE\"") == 5000 ]] || fail "duplicate ids"
log "5000 rows, 5000 inbox ids; waiting for the 4 s retention to prune them"
inbox_empty() { [[ $(sql "SELECT count(*) FROM rmq2pg_state.inbox WHERE pipeline = '$TEST_ID'") == 0 ]]; }
wait_until 30 "inbox pruned" inbox_empty
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS"
