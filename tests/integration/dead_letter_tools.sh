#!/usr/bin/env bash
# `rmq2pg dead-letters` against real dead letters: 1 000 of four reasons made by the daemon in a
# classic "<queue>.dead"; `list` groups them with the right counts and leaves depth and order as
# they were; after an ALTER, `replay --reason` brings exactly that group in as rows and leaves
# the rest in order; `purge --reason` removes only its group. Then the same read-without-taking
# and replay on a quorum dead-letter queue, and a replay of 10 000 killed with -9 half-way:
# every message is a row or still a dead letter.
source "$(dirname "$0")/lib.sh"
RMQ2PG="$RMQ2PG_BUILD_DIR/rmq2pg"
CTL="$RMQ2PG_SOURCE_DIR/scripts/servers.sh"
N=1000
DEAD="$QUEUE.dead"

# A message's key: its x-test-id header (if any) and the order id in its body.
# show_keys FILE [QUEUE]: the keys `show` prints, in queue order (it takes nothing).
show_keys() {
    "$RMQ2PG" dead-letters show --config "$WORK/rmq2pg.yaml" --pipeline "$TEST_ID" --limit 100000 \
        ${2:+--queue "$2"} | awk '/^--- / { t = "" } /^x-test-id: / { t = $2 }
            /^body/ { match($0, /"id": [0-9]+/); print t "/" substr($0, RSTART + 6, RLENGTH - 6) }' >"$1"
}
# drain_keys QUEUE FILE: consumes QUEUE (an independent reader), the keys in order.
drain_keys() {
    "$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$1" \
        --headers x-test-id | awk -F'\t' '{ t = $1 == "-" ? "" : $1; match($2, /"id": [0-9]+/)
            print t "/" substr($2, RSTART + 6, RLENGTH - 6) }' >"$2"
}
group_count() { awk -v pat="$2" 'index($0, pat) && /^ +[0-9]+  / { print $1 }' "$1"; }

# ---------------------------------------------------------------- 1 000 dead letters, classic
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" insert 1
publish --queue "$QUEUE" --declare-queue --generate orders --count $N --poison-percent 100 --seed 3
start_daemon "$WORK/rmq2pg.yaml"
wait_until 120 "$N dead letters" queue_ready_equal "$DEAD" $N
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --stats "$DEAD" >/dev/null

# What each group must hold, from the bodies (show takes nothing; checked below).
"$RMQ2PG" dead-letters show --config "$WORK/rmq2pg.yaml" --limit $N >"$WORK/show.txt" ||
    fail "show failed"
grep '^body' "$WORK/show.txt" >"$WORK/bodies"
((n_json = $(grep -c 'broken' "$WORK/bodies"))) || true
((n_numeric = $(grep -c 'not-a-number' "$WORK/bodies"))) || true
((n_long = $(grep -c 'xxxxxxxxxx' "$WORK/bodies"))) || true
((n_null = $(grep -vc '"account"' "$WORK/bodies"))) || true
log "bodies: $n_json bad JSON, $n_numeric numeric, $n_null no account, $n_long too long"
((n_json + n_numeric + n_long + n_null == N)) || fail "show printed $(wc -l <"$WORK/bodies") bodies"
show_keys "$WORK/order_before"
[[ $(wc -l <"$WORK/order_before") == "$N" ]] || fail "show printed $(wc -l <"$WORK/order_before") ids"

"$RMQ2PG" dead-letters list --config "$WORK/rmq2pg.yaml" >"$WORK/list.txt" || fail "list failed"
cat "$WORK/list.txt"
[[ $(grep -cE '^ +[0-9]+  ' "$WORK/list.txt") == 4 ]] || fail "list shows $(grep -cE '^ +[0-9]+  ' "$WORK/list.txt") groups, not 4"
[[ $(group_count "$WORK/list.txt" "not JSON") == "$n_json" ]] || fail "bad-JSON group count"
[[ $(group_count "$WORK/list.txt" "22P02") == "$n_numeric" ]] || fail "numeric group count"
[[ $(group_count "$WORK/list.txt" "23502") == "$n_null" ]] || fail "NOT NULL group count"
[[ $(group_count "$WORK/list.txt" "22001") == "$n_long" ]] || fail "too-long group count"
grep -q "nothing taken" "$WORK/list.txt" || fail "list does not say it took nothing"
wait_until 10 "depth $N after list" queue_ready_equal "$DEAD" $N
show_keys "$WORK/order_after_list"
cmp -s "$WORK/order_before" "$WORK/order_after_list" || fail "list changed the queue's order"

# Fix the table for one group, replay it: exactly those rows come in.
"$RMQ2PG" dead-letters replay --config "$WORK/rmq2pg.yaml" --reason 22001 --dry-run \
    >"$WORK/dry.txt" || fail "dry run failed"
grep -q "would replay $n_long to exchange '' routing key '$QUEUE'" "$WORK/dry.txt" ||
    fail "dry run: $(cat "$WORK/dry.txt")"
wait_until 10 "depth $N after the dry run" queue_ready_equal "$DEAD" $N
sql "ALTER TABLE \"$TABLE\" ALTER COLUMN account TYPE text"
"$RMQ2PG" dead-letters replay --config "$WORK/rmq2pg.yaml" --reason 22001 >"$WORK/replay.txt" ||
    fail "replay failed: $(cat "$WORK/replay.txt")"
cat "$WORK/replay.txt"
grep -q "replayed $n_long to" "$WORK/replay.txt" || fail "replay did not report $n_long"
wait_until 60 "$n_long rows" rows_equal "$TABLE" "$n_long"
[[ $(sql "SELECT count(*) FROM \"$TABLE\" WHERE length(account) = 200") == "$n_long" ]] ||
    fail "the rows are not the too-long ones"
wait_until 10 "the rest stay" queue_ready_equal "$DEAD" $((N - n_long))
sleep 1
rows_equal "$TABLE" "$n_long" || fail "more rows than the replayed group"
# The rest: in their order, and the other groups replayed into nothing yet.
grep -v -F -x -f <(sql "SELECT '/' || id FROM \"$TABLE\"") "$WORK/order_before" >"$WORK/order_expected"
show_keys "$WORK/order_after_replay"
cmp -s "$WORK/order_expected" "$WORK/order_after_replay" || fail "replay changed the order of the rest"

"$RMQ2PG" dead-letters purge --config "$WORK/rmq2pg.yaml" --reason 23502 >"$WORK/purge.txt" ||
    fail "purge failed"
grep -q "purged $n_null;" "$WORK/purge.txt" || fail "purge: $(cat "$WORK/purge.txt")"
wait_until 10 "purge leaves the rest" queue_ready_equal "$DEAD" $((N - n_long - n_null))
"$RMQ2PG" dead-letters list --config "$WORK/rmq2pg.yaml" >"$WORK/list2.txt"
[[ $(grep -cE '^ +[0-9]+  ' "$WORK/list2.txt") == 2 ]] || fail "after purge: $(cat "$WORK/list2.txt")"
show_keys "$WORK/order_after_purge"
drain_keys "$DEAD" "$WORK/order_drained"
[[ $(wc -l <"$WORK/order_drained") == $((N - n_long - n_null)) ]] || fail "drained $(wc -l <"$WORK/order_drained")"
cmp -s "$WORK/order_after_purge" "$WORK/order_drained" || fail "show's order is not the queue's"
grep -v -F -x -f "$WORK/order_drained" "$WORK/order_expected" >"$WORK/purged" || true
[[ $(wc -l <"$WORK/purged") == "$n_null" ]] || fail "purge took $(wc -l <"$WORK/purged") of the rest, not $n_null"
grep -F -x -f "$WORK/order_drained" "$WORK/order_expected" | cmp -s - "$WORK/order_drained" ||
    fail "purge changed the order of the rest"
stop_daemon

# ---------------------------------------------------------------- quorum dead-letter queue
QDEAD="$QUEUE.qdead"
BACK="$QUEUE.back"
"$CTL" rabbitmqctl eval "rabbit_amqqueue:declare(rabbit_misc:r(<<\"/\">>, queue, <<\"$QDEAD\">>), true, false, [{<<\"x-queue-type\">>, longstr, <<\"quorum\">>}], none, <<\"dead_letter_tools\">>)." >/dev/null
publish --queue "$BACK" --declare-queue --count 0 --generate orders
for reason in A B C; do
    for i in 1 2 3; do
        publish --queue "$QDEAD" --generate orders --count 50 --start $((i * 1000)) \
            --message-id-prefix "$reason$i-" --header "x-test-id=$reason$i" \
            --header "x-rmq2pg-error=reason $reason: \"v$i\" (SQLSTATE 22000)" \
            --header "x-original-exchange=" --header "x-original-routing-key=$BACK"
    done
done
wait_until 10 "450 in the quorum queue" queue_ready_equal "$QDEAD" 450
show_keys "$WORK/q_before" "$QDEAD"
"$RMQ2PG" dead-letters list --config "$WORK/rmq2pg.yaml" --pipeline "$TEST_ID" --queue "$QDEAD" \
    >"$WORK/qlist.txt" || fail "quorum list failed"
cat "$WORK/qlist.txt"
[[ $(group_count "$WORK/qlist.txt" "reason B") == 150 ]] || fail "quorum: group B not 150"
show_keys "$WORK/q_after" "$QDEAD"
cmp -s "$WORK/q_before" "$WORK/q_after" || fail "quorum: list changed the order"
"$RMQ2PG" dead-letters replay --config "$WORK/rmq2pg.yaml" --pipeline "$TEST_ID" --queue "$QDEAD" \
    --reason "reason B" >/dev/null || fail "quorum replay failed"
wait_until 10 "150 back" queue_ready_equal "$BACK" 150
wait_until 10 "300 stay" queue_ready_equal "$QDEAD" 300
drain_keys "$QDEAD" "$WORK/q_rest"
grep -v '^B' "$WORK/q_before" >"$WORK/q_expected"
cmp -s "$WORK/q_expected" "$WORK/q_rest" || fail "quorum: the rest are out of order"
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$BACK" \
    --headers x-rmq2pg-replays,x-rmq2pg-error,x-test-id >"$WORK/back.tsv"
awk -F'\t' '$1 != "1" || $2 != "-" || $3 !~ /^B/ { bad = 1 } END { exit bad }' "$WORK/back.tsv" ||
    fail "replayed messages: wrong headers: $(head -n 3 "$WORK/back.tsv")"

# ---------------------------------------------------------------- kill -9 during 10 000
M=10000
sql "TRUNCATE \"$TABLE\""
write_config "$WORK/rmq2pg.yaml" upsert 1
publish --queue "$DEAD" --generate orders --count $M --pad 1000 --header "x-test-id=k" \
    --header "x-rmq2pg-error=synthetic (SQLSTATE 22000)" --header "x-original-exchange=" \
    --header "x-original-routing-key=$QUEUE"
wait_until 20 "$M dead letters" queue_ready_equal "$DEAD" $M
start_daemon "$WORK/rmq2pg.yaml"
"$RMQ2PG" dead-letters replay --config "$WORK/rmq2pg.yaml" --reason synthetic >"$WORK/k.txt" 2>&1 &
REPLAY_PID=$!
wait_until 60 "the replay under way" rows_at_least "$TABLE" 1000
kill -9 $REPLAY_PID
wait $REPLAY_PID || true
rows_at_kill=$(row_count "$TABLE")
log "replay killed with $rows_at_kill rows in"
wait_until 60 "daemon drained the replayed" queue_ready_equal "$QUEUE" 0
# The broker hands the killed consumer's unacked messages back at once (the socket closed).
rows_plus_dead_at_least() { (($(row_count "$TABLE") + $(queue_ready "$DEAD") >= M)); }
wait_until 30 "every message a row or a dead letter (none lost)" rows_plus_dead_at_least
rows=$(row_count "$TABLE")
left=$(queue_ready "$DEAD")
log "after kill -9: $rows rows, $left dead letters left ($((rows + left - M)) in both places)"
((left > 0)) || fail "the replay finished before the kill: nothing tested"
"$RMQ2PG" dead-letters replay --config "$WORK/rmq2pg.yaml" --reason synthetic >/dev/null ||
    fail "second replay failed"
wait_until 60 "every id a row" rows_equal "$TABLE" $M
[[ $(sql "SELECT count(DISTINCT id) FROM \"$TABLE\" WHERE id BETWEEN 1 AND $M") == "$M" ]] ||
    fail "ids missing"
stop_daemon
log "PASS"
