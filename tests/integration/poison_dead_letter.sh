#!/usr/bin/env bash
# 20 000 messages, 1% poison (bad JSON, wrong type, NOT NULL violation, too-long varchar): every
# good one becomes a row, every bad one lands in <queue>.dead with the headers saying why, and
# the queue ends empty. Mode ignore, so NOT NULL violations surface in INSERT ... SELECT and are
# found by bisection, the others by the COPY line PostgreSQL blames.
source "$(dirname "$0")/lib.sh"
N=20000
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
publish --queue "$QUEUE" --declare-queue --generate orders --count $N --poison-percent 1 --seed 7
start_daemon "$WORK/rmq2pg.yaml"
wait_until 120 "queue drained" queue_ready_equal "$QUEUE" 0
wait_until 60 "rows + dead-lettered == $N" rows_plus_dead_equal "$TABLE" "$QUEUE" $N
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
pooled_as_asked
rows=$(row_count "$TABLE")
dead=$(queue_ready "$QUEUE.dead")
log "$rows rows, $dead dead-lettered"
((dead >= 100 && dead <= 320)) || fail "expected about 1% (200) poison messages, got $dead"
[[ $(queue_ready "$QUEUE") == 0 ]] || fail "queue not empty"

"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-pipeline,x-rmq2pg-table,x-original-exchange,x-original-routing-key,x-rmq2pg-failed-at,x-rmq2pg-error \
    >"$WORK/dead.tsv"
[[ $(wc -l <"$WORK/dead.tsv") == "$dead" ]] || fail "drained $(wc -l <"$WORK/dead.tsv") of $dead"
awk -F'\t' -v p="$TEST_ID" -v t="public.$TABLE" -v q="$QUEUE" '
    $1 != p || $2 != t || $3 != "" || $4 != q || $5 !~ /^20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T/ || $6 == "-" {
        print "bad headers: " $0; bad = 1 }
    END { exit bad }' "$WORK/dead.tsv" || fail "dead-letter headers wrong"
# Each kind of poison carries its own reason.
grep -q "not JSON" "$WORK/dead.tsv" || fail "no bad-JSON reason"
grep -q "22P02" "$WORK/dead.tsv" || fail "no invalid-numeric reason (SQLSTATE 22P02)"
grep -q "23502" "$WORK/dead.tsv" || fail "no NOT NULL reason (SQLSTATE 23502)"
grep -q "22001" "$WORK/dead.tsv" || fail "no too-long reason (SQLSTATE 22001)"
# No good message was lost: every id not dead-lettered is a row.
cut -f7 "$WORK/dead.tsv" | grep -o '"id": [0-9]*' | awk '{print $2}' | sort -n >"$WORK/dead_ids"
sql "SELECT id FROM \"$TABLE\"" | sort -n >"$WORK/row_ids"
sort -n -m "$WORK/dead_ids" "$WORK/row_ids" | uniq >"$WORK/all_ids"
[[ $(wc -l <"$WORK/all_ids") == "$N" ]] || fail "ids missing: $(wc -l <"$WORK/all_ids") of $N"
log "PASS"
