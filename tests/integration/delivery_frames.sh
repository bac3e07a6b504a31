#!/usr/bin/env bash
# The delivery read path against a real broker: bodies larger than one AMQP frame (frame_max
# 128 KiB) arrive whole, a header maps onto a column, and a dead-lettered message keeps the
# headers it was published with next to the reason.
source "$(dirname "$0")/lib.sh"
N=300
PAD=300000  # ~2.3 frames per body
create_orders_table "$TABLE"
sql "ALTER TABLE \"$TABLE\" ADD COLUMN tenant text"
write_config "$WORK/rmq2pg.yaml" insert 2 "      tenant: \$header.x-tenant"
publish --queue "$QUEUE" --declare-queue --generate orders --count $N --pad $PAD \
    --poison-percent 5 --seed 11 --header x-tenant=acme --header x-trace=trace-7
start_daemon "$WORK/rmq2pg.yaml"
wait_until 120 "rows + dead-lettered == $N" rows_plus_dead_equal "$TABLE" "$QUEUE" $N
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
rows=$(row_count "$TABLE")
dead=$(queue_ready "$QUEUE.dead")
log "$rows rows, $dead dead-lettered"
((dead > 0 && rows > 0)) || fail "expected both rows and dead letters"
# Whole bodies: every pad has its PAD bytes, every row its header.
read -r short no_tenant < <(sql "SELECT count(*) FILTER (WHERE length(payload->>'pad') <> $PAD),
    count(*) FILTER (WHERE tenant IS DISTINCT FROM 'acme') FROM \"$TABLE\"" | tr '|' ' ')
((short == 0)) || fail "$short rows with a cut body"
((no_tenant == 0)) || fail "$no_tenant rows without the x-tenant header"
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-tenant,x-trace,x-rmq2pg-error >"$WORK/dead.tsv"
[[ $(wc -l <"$WORK/dead.tsv") == "$dead" ]] || fail "drained $(wc -l <"$WORK/dead.tsv") of $dead"
awk -F'\t' '$1 != "acme" || $2 != "trace-7" || $3 == "-" { print "bad: " substr($0, 1, 200); bad = 1 }
    END { exit bad }' "$WORK/dead.tsv" || fail "dead letters lost their original headers"
log "PASS"
