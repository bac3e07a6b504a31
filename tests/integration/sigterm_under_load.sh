#!/usr/bin/env bash
# SIGTERM under load: exit 0 within shutdown_timeout_ms, every acked message has its row, the
# rest are still in the queue (mode insert: a duplicate would show as rows + ready > N).
source "$(dirname "$0")/lib.sh"
N=60000
create_orders_table "$TABLE" ""
write_config "$WORK/rmq2pg.yaml" insert 2
publish --queue "$QUEUE" --declare-queue --generate orders --count $N
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "some rows" rows_at_least "$TABLE" 2000
t0=$(date +%s%N)
stop_daemon
ms=$((($(date +%s%N) - t0) / 1000000))
log "daemon exited $DAEMON_EXIT after ${ms} ms"
((DAEMON_EXIT == 0)) || fail "exit status $DAEMON_EXIT"
((ms < 10000)) || fail "shutdown took ${ms} ms, more than shutdown_timeout_ms"
grep -q "stopped cleanly" "$DAEMON_LOG" || fail "no clean stop logged"
rows=$(row_count "$TABLE")
((rows < N)) || fail "the stop came too late to test anything"
[[ $(sql "SELECT count(DISTINCT id) FROM \"$TABLE\"") == "$rows" ]] || fail "duplicate rows"
# The broker requeues what the closed connection left unacked; the sum must reach N exactly.
sum_is_n() { (($(queue_ready "$QUEUE") + rows == N)); }
wait_until 15 "rows + queued == $N" sum_is_n
log "$rows rows + $(queue_ready "$QUEUE") still queued = $N"
((rows + $(queue_ready "$QUEUE") == N)) || fail "written twice or acked without a row"
log "PASS"
