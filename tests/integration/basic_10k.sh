#!/usr/bin/env bash
# 10 000 messages published with confirms become exactly 10 000 rows, and the queue ends empty.
source "$(dirname "$0")/lib.sh"
N=10000
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" insert 2
publish --queue "$QUEUE" --declare-queue --generate orders --count $N
log "published $N"
started=$(date +%s.%N)
start_daemon "$WORK/rmq2pg.yaml"
wait_until 120 "$N rows" rows_equal "$TABLE" $N
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
log "$N rows in ${elapsed}s (including daemon start): $(echo "$N / $elapsed" | bc) msg/s"
wait_until 30 "queue empty" queue_ready_equal "$QUEUE" 0
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
# After the daemon closed its connection anything unacked would be back in the queue.
[[ $(queue_ready "$QUEUE") == 0 ]] || fail "messages left in the queue after stop"
[[ $(sql "SELECT count(DISTINCT id) FROM \"$TABLE\"") == "$N" ]] || fail "duplicate ids"
[[ $(sql "SELECT min(id) || '-' || max(id) FROM \"$TABLE\"") == "1-$N" ]] || fail "wrong ids"
[[ $(sql "SELECT count(*) FROM \"$TABLE\" WHERE message_id = 'msg-' || id AND routing_key = '$QUEUE'") == "$N" ]] ||
    fail "metadata columns not mapped"
log "PASS"
