#!/usr/bin/env bash
# A stream pipeline end to end (issue 15): the daemon starts before its stream exists (it says so
# and retries), reads it from `start: first` with 2 workers into a table without any unique key,
# fills $stream_offset, dead-letters poison to "<stream>.dead" and stores the next offset in
# rmq2pg_state.stream_offsets; a restart writes nothing again; `queue` with `streams` is a config
# error naming file and line; `rmq2pg replay --from OFFSET` while the daemon runs and
# `start: <offset>` each write exactly the range after that point.
source "$(dirname "$0")/lib.sh"
STREAM="s_${TEST_ID}"
N=5000
stream_table() {
    sql "DROP TABLE IF EXISTS \"$1\"; CREATE TABLE \"$1\" (id bigint, account varchar(64) NOT NULL,
           amount numeric(12,2), currency text, payload jsonb, stream_offset bigint)"
}
# stream_config FILE NAME TABLE START: one stream pipeline.
stream_config() {
    {
        config_header
        cat <<YAML
log: { level: info }
${HTTP_LINE:-}
pipelines:
  - name: $2
    streams: [$STREAM]
    start: $4
    lease_s: 3
    workers: 2
    batch: { max_messages: 500, max_delay_ms: 50 }
    table: public.$3
    mode: insert
    columns:
      id: /id
      account: /account
      amount: /amount
      currency: /currency
      payload: \$body
      stream_offset: \$stream_offset
YAML
    } >"$1"
}
stored_offset() {
    sql "SELECT next_offset FROM rmq2pg_state.stream_offsets WHERE pipeline = '$1' AND stream = '$STREAM'"
}
offset_equal() { [[ $(stored_offset "$1") == "$2" ]]; }
stream_table "$TABLE"
HTTP_PORT=$((RMQ2PG_TEST_AMQP_PORT + 23))
HTTP_LINE="http: { listen: \"127.0.0.1:$HTTP_PORT\" }"
stream_config "$WORK/rmq2pg.yaml" "$TEST_ID" "$TABLE" first
HTTP_LINE=""
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" >/dev/null 2>&1 ||
    fail "--migrate failed"

# Both `queue` and `streams`: a config error that names the file, line and key.
sed 's/^    streams: /    queue: q\n    streams: /' "$WORK/rmq2pg.yaml" >"$WORK/both.yaml"
status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/both.yaml" >"$WORK/both.out" 2>&1 ||
    status=$?
((status == 78)) || fail "queue + streams: exit $status, expected 78: $(cat "$WORK/both.out")"
grep -q "both.yaml:[0-9]*: pipelines\[0\].streams: a pipeline reads either a queue or streams" \
    "$WORK/both.out" || fail "queue + streams: unexpected message: $(cat "$WORK/both.out")"
log "queue + streams refused: $(head -1 "$WORK/both.out")"

# The stream does not exist yet: the daemon says so and keeps retrying.
start_daemon "$WORK/rmq2pg.yaml"
wait_until 30 "the missing stream reported" grep -q "NOT_FOUND" "$DAEMON_LOG"
log "missing stream reported: $(grep -m1 NOT_FOUND "$DAEMON_LOG" | cut -c1-160)"
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "$STREAM" \
    --declare-stream --generate orders --count $N --poison-percent 2 --seed 7 \
    >"$WORK/sent" 2>"$WORK/publisher.log" || fail "publisher: $(cat "$WORK/publisher.log")"
poison=$(sed -n 's/.*(\([0-9]*\) poison).*/\1/p' "$WORK/publisher.log")
good=$((N - poison))
log "published $N messages ($poison poison) to stream $STREAM"
wait_until 120 "$good rows" rows_equal "$TABLE" $good
wait_until 60 "$poison dead letters" queue_ready_equal "$STREAM.dead" "$poison"
wait_until 30 "offset $N stored" offset_equal "$TEST_ID" $N
[[ $(sql "SELECT count(DISTINCT id) FROM \"$TABLE\"") == "$good" ]] || fail "an id twice"
[[ $(sql "SELECT count(*) FROM \"$TABLE\" WHERE stream_offset = id - 1") == "$good" ]] ||
    fail "\$stream_offset is not the message's offset"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

# A restart reads on from the stored offset: nothing written twice, nothing dead-lettered again.
start_daemon "$WORK/rmq2pg.yaml"
publish --queue "$STREAM" --generate orders --count 100 --start $((N + 1))
wait_until 60 "$((good + 100)) rows" rows_equal "$TABLE" $((good + 100))
wait_until 30 "offset $((N + 100)) stored" offset_equal "$TEST_ID" $((N + 100))
[[ $(row_count "$TABLE") == $((good + 100)) ]] || fail "rows written twice after a restart"
[[ $(queue_ready "$STREAM.dead") == "$poison" ]] || fail "dead letters published twice"

# Observability: /readyz says ready once the stream has an owner, /metrics and /api/status show
# the stored offset and the owner.
ready() { curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null; }
wait_until 30 "/readyz ready" ready
metric_offset() {
    curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" |
        grep -q "^rmq2pg_stream_next_offset{pipeline=\"$TEST_ID\",stream=\"$STREAM\"} $((N + 100))$"
}
wait_until 30 "the offset in /metrics" metric_offset
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | grep -q "^rmq2pg_stream_owned{.*stream=\"$STREAM\",owner=\".* pid $DAEMON_PID\..*\"} 1$" ||
    fail "/metrics does not name the owner: $(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | grep rmq2pg_stream_owned)"
curl -sf "http://127.0.0.1:$HTTP_PORT/api/status" | grep -q "\"next_offset\":$((N + 100)),\"owner\":\"" ||
    fail "/api/status does not show the stream"
log "/readyz ready; /metrics: $(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | grep "^rmq2pg_stream_owned" | cut -c1-160)"

# Replay from an offset while the daemon runs: the rows from there are written again, once.
again=$(sql "SELECT count(*) FROM \"$TABLE\" WHERE stream_offset >= 4000")
"$RMQ2PG_BUILD_DIR/rmq2pg" replay --config "$WORK/rmq2pg.yaml" --pipeline "$TEST_ID" \
    --from 4000 >"$WORK/replay.out" 2>&1 || fail "replay: $(cat "$WORK/replay.out")"
replayed_at=$SECONDS
wait_until 30 "the replay picked up" rows_equal "$TABLE" $((good + 100 + again))
log "replay from offset 4000 picked up within $((SECONDS - replayed_at)) s"
wait_until 30 "offset $((N + 100)) stored again" offset_equal "$TEST_ID" $((N + 100))
[[ $(row_count "$TABLE") == $((good + 100 + again)) ]] || fail "replay wrote more than its range"
[[ $(sql "SELECT count(*) FROM (SELECT id FROM \"$TABLE\" GROUP BY id HAVING count(*) = 2) d") == "$again" ]] ||
    fail "replay did not write exactly offsets 4000.. again"
[[ $(sql "SELECT count(*) FROM (SELECT id FROM \"$TABLE\" GROUP BY id HAVING count(*) = 2) d WHERE id <= 4000") == 0 ]] ||
    fail "replay wrote offsets before 4000"
log "replay from offset 4000 wrote its $again rows again"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

# start: an offset, for a pipeline that never read the stream: exactly the messages from there.
TABLE2="${TABLE}_from"
stream_table "$TABLE2"
stream_config "$WORK/from.yaml" "${TEST_ID}_from" "$TABLE2" 1000
expected=$(sql "SELECT count(DISTINCT id) FROM \"$TABLE\" WHERE stream_offset >= 1000")
start_daemon "$WORK/from.yaml"
wait_until 60 "$expected rows from offset 1000" rows_equal "$TABLE2" "$expected"
(($(sql "SELECT min(stream_offset) FROM \"$TABLE2\"") >= 1000)) || fail "start: 1000 read earlier"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

# start: a time, mode upsert; then a replay from a time (an interval back from now) while the
# daemon runs: everything is written again onto itself and the table ends unchanged.
TABLE3="${TABLE}_upsert"
stream_table "$TABLE3"
sql "ALTER TABLE \"$TABLE3\" ADD PRIMARY KEY (id)"
stream_config "$WORK/upsert.yaml" "${TEST_ID}_upsert" "$TABLE3" "2000-01-01T00:00:00Z"
sed -i 's/^    mode: insert$/    mode: upsert\n    key: [id]/' "$WORK/upsert.yaml"
start_daemon "$WORK/upsert.yaml"
wait_until 60 "$good rows (start: a time)" rows_equal "$TABLE3" $((good + 100))
wait_until 30 "offset stored" offset_equal "${TEST_ID}_upsert" $((N + 100))
before=$(sql "SELECT md5(string_agg(id || ':' || stream_offset || ':' || amount, ',' ORDER BY id)) FROM \"$TABLE3\"")
first_id=$(sql "SELECT min(id) FROM \"$TABLE3\"")
sql "UPDATE \"$TABLE3\" SET currency = 'XXX' WHERE id = $first_id"
"$RMQ2PG_BUILD_DIR/rmq2pg" replay --config "$WORK/upsert.yaml" --pipeline "${TEST_ID}_upsert" \
    --from 1h --stream "$STREAM" >"$WORK/replay.out" 2>&1 || fail "replay: $(cat "$WORK/replay.out")"
log "$(cat "$WORK/replay.out")"
currency_restored() { [[ $(sql "SELECT currency FROM \"$TABLE3\" WHERE id = $first_id") != XXX ]]; }
wait_until 30 "the replay by time rewrote row $first_id" currency_restored
wait_until 30 "offset stored again" offset_equal "${TEST_ID}_upsert" $((N + 100))
[[ $(row_count "$TABLE3") == $((good + 100)) ]] || fail "upsert replay changed the row count"
[[ $(sql "SELECT md5(string_agg(id || ':' || stream_offset || ':' || amount, ',' ORDER BY id)) FROM \"$TABLE3\"") == "$before" ]] ||
    fail "upsert replay changed the table"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "start: a time and replay --from 1h (upsert): table unchanged"
sql "DROP TABLE \"$TABLE\"; DROP TABLE \"$TABLE2\"; DROP TABLE \"$TABLE3\""
log "PASS"
