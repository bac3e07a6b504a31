#!/usr/bin/env bash
# Big messages: a 64 MiB value becomes a row (max_message_bytes 65 MiB here, so the JSON around it
# fits); a 70 MiB body, over max_message_bytes, is poison with a reason saying so and is
# dead-lettered whole; afterwards the daemon's RSS is back under 2 × its baseline (the buffers of
# a large batch are released).
source "$(dirname "$0")/lib.sh"
sql "DROP TABLE IF EXISTS \"$TABLE\"; CREATE TABLE \"$TABLE\" (id bigint PRIMARY KEY, payload text)"
{
    config_header
    cat <<YAML
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    workers: 1
    prefetch: 100
    batch: { max_messages: 100, max_bytes: 1048576, max_delay_ms: 50 }
    table: public.$TABLE
    mode: ignore
    key: [id]
    max_message_bytes: 68157440
    columns: { id: /id, payload: \$body }
YAML
} >"$WORK/rmq2pg.yaml"
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
body_of() {  # body_of ID MIB: a JSON line of about MIB MiB
    printf '{"id": %d, "note": "' "$1"
    head -c $(($2 * 1024 * 1024)) /dev/zero | tr '\0' 'b'
    printf '"}\n'
}

seq 1 100 | awk '{ printf "{\"id\": %d, \"note\": \"small\"}\n", $1 }' >"$WORK/small.jsonl"
publish --queue "$QUEUE" --declare-queue --file "$WORK/small.jsonl"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "100 small rows" rows_equal "$TABLE" 100
sleep 1
baseline=$(rss_kib)
log "baseline RSS ${baseline} KiB"

body_of 1000 64 | publish --queue "$QUEUE"
wait_until 120 "the 64 MiB row" rows_equal "$TABLE" 101
len=$(sql "SELECT length(payload) FROM \"$TABLE\" WHERE id = 1000")
((len > 64 * 1024 * 1024)) || fail "the 64 MiB row holds $len bytes"
body_of 1001 70 | publish --queue "$QUEUE"
wait_until 120 "the 70 MiB message dead-lettered" queue_ready_equal "$QUEUE.dead" 1
peak=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DAEMON_PID/status")
# Small messages after the big ones: the worker keeps going, and its buffers stay small.
seq 2001 2100 | awk '{ printf "{\"id\": %d, \"note\": \"small\"}\n", $1 }' | publish --queue "$QUEUE"
wait_until 60 "100 more small rows" rows_equal "$TABLE" 201
sleep 2
after=$(rss_kib)
log "RSS: baseline ${baseline} KiB, peak ${peak} KiB, after ${after} KiB"
((after < 2 * baseline)) || fail "RSS ${after} KiB is not back under 2 x the baseline ${baseline} KiB"

"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-error | cut -c1-300 >"$WORK/dead.txt"
grep -q "exceeds max_message_bytes 68157440" "$WORK/dead.txt" || fail "reason: $(cut -c1-200 "$WORK/dead.txt")"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS (baseline ${baseline} KiB, peak ${peak} KiB, after ${after} KiB)"
