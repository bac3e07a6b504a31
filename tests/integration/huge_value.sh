#!/usr/bin/env bash
# One 256 KiB value that PostgreSQL refuses (a string into a numeric column: its error repeats
# the value twice) among 199 good messages: the good ones commit, the bad one is dead-lettered
# with a reason bounded to ~2 KiB that keeps the SQLSTATE, no log line carries the value; then,
# with log.redact_values: true, a second bad value reaches neither the headers nor the log.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2

huge=$(head -c 262144 /dev/zero | tr '\0' 'x')
{
    for id in $(seq 1 200); do
        if ((id == 100)); then
            printf '{"id": 100, "account": "a", "amount": "%s", "currency": "EUR"}\n' "$huge"
        else
            printf '{"id": %d, "account": "a", "amount": 1.5, "currency": "EUR"}\n' "$id"
        fi
    done
} >"$WORK/batch1.jsonl"
publish --queue "$QUEUE" --declare-queue --file "$WORK/batch1.jsonl"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "199 rows + 1 dead letter" rows_plus_dead_equal "$TABLE" "$QUEUE" 200
rows=$(row_count "$TABLE")
((rows == 199)) || fail "expected the 199 batch-mates as rows, got $rows"
[[ $(sql "SELECT count(*) FROM \"$TABLE\" WHERE id = 100") == 0 ]] || fail "id 100 written"

"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-error >"$WORK/dead.tsv"
[[ $(wc -l <"$WORK/dead.tsv") == 1 ]] || fail "expected 1 dead letter"
reason=$(cut -f1 "$WORK/dead.tsv")
log "reason header: ${#reason} bytes: ${reason:0:160}…"
((${#reason} <= 2200)) || fail "reason header of ${#reason} bytes, not bounded"
[[ $reason == *22P02* ]] || fail "the bounded reason lost the SQLSTATE: $reason"
[[ $reason == *"bytes in all)"* ]] || fail "the reason does not say it was cut"
body_len=$(cut -f2 "$WORK/dead.tsv" | wc -c)
((body_len > 262144)) || fail "the dead letter lost its body ($body_len bytes)"
longest=$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$DAEMON_LOG")
log "longest daemon log line: $longest bytes"
((longest <= 4096)) || fail "a log line of $longest bytes"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

# Redacted: the value is in neither the header nor the log.
sed -i 's/^log: { level: info }$/log: { level: info, redact_values: true }/' "$WORK/rmq2pg.yaml"
grep -q "redact_values: true" "$WORK/rmq2pg.yaml" || fail "could not set redact_values"
printf '{"id": 201, "account": "a", "amount": "SECRET-%s", "currency": "EUR"}\n' "${huge:0:5000}" |
    publish --queue "$QUEUE"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "1 more dead letter" queue_ready_equal "$QUEUE.dead" 1
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-error >"$WORK/dead2.tsv"
reason=$(cut -f1 "$WORK/dead2.tsv")
log "redacted reason: $reason"
[[ $reason != *SECRET* ]] || fail "redact_values left the value in the header"
[[ $reason == *22P02* ]] || fail "the redacted reason lost the SQLSTATE"
! grep -q SECRET "$DAEMON_LOG" || fail "redact_values left the value in the log"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS"
