#!/usr/bin/env bash
# `start:` in each form against the real broker (issue 15): one daemon reads one stream through
# six pipelines starting at first, last, next, an offset, an RFC 3339 time and an interval, each
# into its own table; each writes exactly the range its form names. Then the lag the broker
# tells: 0 once caught up, exactly the messages behind a pipeline paused on poison (on_error:
# stop), in /metrics, /api/status and on the status page. Last, a stream that does not exist:
# the error names it, the daemon stays live (/healthz) and not ready (/readyz) and reads it as
# soon as it is declared.
source "$(dirname "$0")/lib.sh"
STREAM="s_${TEST_ID}"
A=1000 # before the time and the interval
B=1000 # after them
C=100  # published once every pipeline consumes
FORMS=(first last next offset time interval)
HTTP_PORT=$((RMQ2PG_TEST_AMQP_PORT + 24))
http() { curl -s -m 5 "http://127.0.0.1:$HTTP_PORT$1"; }
http_status() { curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT$1"; }
table_of() { echo "${TABLE}_$1"; }
stream_table() {
    sql "DROP TABLE IF EXISTS \"$1\"; CREATE TABLE \"$1\" (id bigint, account varchar(64) NOT NULL,
           amount numeric(12,2), currency text, stream_offset bigint)"
}
# pipeline NAME STREAM START TABLE [EXTRA]: one stream pipeline of one worker.
pipeline() {
    cat <<YAML
  - name: $1
    streams: [$2]
    start: $3
    lease_s: 3
    workers: 1
    batch: { max_messages: 200, max_delay_ms: 50 }
    table: public.$4
    mode: insert
    columns: { id: /id, account: /account, amount: /amount, currency: /currency, stream_offset: \$stream_offset }
${5:-}
YAML
}
range_of() { sql "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || coalesce(min(id), 0) || ' ' || coalesce(max(id), 0) FROM \"$1\""; }

publish --queue "$STREAM" --declare-stream --generate orders --count $A --start 1
log "published ids 1..$A"
sleep 10
TIME=$(date -u +%Y-%m-%dT%H:%M:%SZ) # whole seconds: 10 s after the first part, 10 s before the second
sleep 10
publish --queue "$STREAM" --generate orders --count $B --start $((A + 1))
log "published ids $((A + 1))..$((A + B)); start time $TIME between them"
for form in "${FORMS[@]}"; do stream_table "$(table_of "$form")"; done
{
    config_header
    echo "log: { level: info }"
    echo "http: { listen: \"127.0.0.1:$HTTP_PORT\" }"
    echo "pipelines:"
    pipeline "${TEST_ID}_first" "$STREAM" first "$(table_of first)" "    on_error: stop"
    pipeline "${TEST_ID}_last" "$STREAM" last "$(table_of last)"
    pipeline "${TEST_ID}_next" "$STREAM" next "$(table_of next)"
    pipeline "${TEST_ID}_offset" "$STREAM" 1500 "$(table_of offset)"
    pipeline "${TEST_ID}_time" "$STREAM" "\"$TIME\"" "$(table_of time)"
    # 10 s back from the claim, made within a few seconds of the second part: between the parts.
    pipeline "${TEST_ID}_interval" "$STREAM" 10s "$(table_of interval)"
} >"$WORK/rmq2pg.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" >/dev/null 2>&1 ||
    fail "--migrate failed"
start_daemon "$WORK/rmq2pg.yaml"
# /readyz says ready once every worker of every pipeline consumes: each consumer is registered
# (its `next` fixed). The broker's own consumer count of a stream lags and even stays up after a
# consumer left (3.10), so it cannot tell.
ready() { [[ $(http_status /readyz) == 200 ]]; }
wait_until 60 "six pipelines consuming (/readyz)" ready
publish --queue "$STREAM" --generate orders --count $C --start $((A + B + 1))
N=$((A + B + C))
log "every pipeline consumes; published ids $((A + B + 1))..$N"

wait_until 60 "first: $N rows" rows_equal "$(table_of first)" $N
[[ $(range_of "$(table_of first)") == "$N $N 1 $N" ]] || fail "first: $(range_of "$(table_of first)")"
wait_until 60 "offset: $((N - 1500)) rows" rows_equal "$(table_of offset)" $((N - 1500))
[[ $(range_of "$(table_of offset)") == "$((N - 1500)) $((N - 1500)) 1501 $N" ]] ||
    fail "offset 1500: $(range_of "$(table_of offset)")"
wait_until 60 "time: $((B + C)) rows" rows_equal "$(table_of time)" $((B + C))
[[ $(range_of "$(table_of time)") == "$((B + C)) $((B + C)) $((A + 1)) $N" ]] ||
    fail "time $TIME: $(range_of "$(table_of time)")"
wait_until 60 "interval: $((B + C)) rows" rows_equal "$(table_of interval)" $((B + C))
[[ $(range_of "$(table_of interval)") == "$((B + C)) $((B + C)) $((A + 1)) $N" ]] ||
    fail "interval 10s: $(range_of "$(table_of interval)")"
wait_until 60 "next: $C rows" rows_equal "$(table_of next)" $C
[[ $(range_of "$(table_of next)") == "$C $C $((A + B + 1)) $N" ]] || fail "next: $(range_of "$(table_of next)")"
# last: from the last chunk written before the claim (a chunk is what the broker wrote at once):
# some of the second part, then everything after, each once, none of the first part.
last_complete() { (($(sql "SELECT max(id) FROM \"$(table_of last)\"") == N)); }
wait_until 60 "last: up to id $N" last_complete
read -r count distinct low high <<<"$(range_of "$(table_of last)")"
((count == distinct && high == N && count == N - low + 1 && low > A + 1 && low <= A + B)) ||
    fail "last: rows, distinct, min, max: $count $distinct $low $high"
log "first, last (from id $low), next, offset 1500, time $TIME and interval 10s: each its range, once"

# The lag: 0 everywhere once caught up; then a poison message and 9 good ones: the pipeline
# that stops on poison stays 10 behind, the others dead-letter it and catch up.
lag_of() {
    http /metrics | sed -n "s/^rmq2pg_stream_lag_messages{pipeline=\"${TEST_ID}_$1\",stream=\"$STREAM\"} //p"
}
lag_equal() { [[ $(lag_of "$1") == "$2" ]]; }
for form in "${FORMS[@]}"; do wait_until 40 "lag 0 for $form" lag_equal "$form" 0; done
echo '{"id": 999999, "account": "acct-1", broken' >"$WORK/poison.json"
publish --queue "$STREAM" --file "$WORK/poison.json"
publish --queue "$STREAM" --generate orders --count 9 --start $((N + 1))
wait_until 60 "next: $((C + 9)) rows" rows_equal "$(table_of next)" $((C + 9))
wait_until 40 "lag 10 for the paused pipeline" lag_equal first 10
wait_until 40 "lag 0 for next" lag_equal next 0
http /api/status | grep -q "\"stream\":\"$STREAM\",\"next_offset\":$N,\"owner\":[^,]*,\"lease_changes\":[0-9]*,\"end_offset\":$((N + 10)),\"lag\":10," ||
    fail "/api/status does not show the lag: $(http /api/status | grep -o "\"streams\":[^]]*]" | head -c 600)"
page=$(http /)
[[ $page == *"<th>lag</th>"* ]] || fail "the status page has no lag column"
log "lag: 0 when caught up, 10 behind the poison (/metrics, /api/status)"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

# A stream that does not exist: named in the log and /api/status, live but not ready, and read
# as soon as it is declared.
MISSING="${STREAM}_missing"
stream_table "$(table_of missing)"
{
    config_header
    echo "log: { level: info }"
    echo "http: { listen: \"127.0.0.1:$HTTP_PORT\" }"
    echo "pipelines:"
    pipeline "${TEST_ID}_missing" "$MISSING" first "$(table_of missing)"
} >"$WORK/missing.yaml"
start_daemon "$WORK/missing.yaml"
wait_until 30 "the missing stream reported" grep -q "NOT_FOUND.*$MISSING" "$DAEMON_LOG"
log "reported: $(grep -m1 "NOT_FOUND.*$MISSING" "$DAEMON_LOG" | cut -c1-200)"
sleep 5 # several retries: the daemon must stay live through them
daemon_alive || fail "the daemon died on a missing stream"
[[ $(http_status /healthz) == 200 ]] || fail "/healthz on a missing stream: $(http /healthz)"
[[ $(http_status /readyz) == 503 ]] || fail "/readyz ready without its stream: $(http /readyz)"
[[ $(http /api/status) == *NOT_FOUND*"$MISSING"* ]] || fail "/api/status does not name the missing stream"
publish --queue "$MISSING" --declare-stream --generate orders --count 10
wait_until 60 "10 rows once the stream exists" rows_equal "$(table_of missing)" 10
wait_until 30 "/readyz ready" ready
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "missing stream: reported, live, not ready; read once declared"
for form in "${FORMS[@]}" missing; do sql "DROP TABLE \"$(table_of "$form")\""; done
log "PASS"
