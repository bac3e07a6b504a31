#!/usr/bin/env bash
# A row can be empty in COPY text (one text column holding ""): every such message is still one
# row, also after a poison message forces the batch to be re-sent without it.
source "$(dirname "$0")/lib.sh"
sql "DROP TABLE IF EXISTS \"$TABLE\"; CREATE TABLE \"$TABLE\" (t varchar(3))"
cat >"$WORK/rmq2pg.yaml" <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$RMQ2PG_TEST_PG_URL" }
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    batch: { max_messages: 100, max_delay_ms: 300 }
    table: $TABLE
    columns: { t: /t }
YAML
printf '%s\n' '{"t":""}' '{"t":""}' '{"t":"toolong"}' '{"t":""}' '{"t":"ok"}' >"$WORK/in.jsonl"
publish --queue "$QUEUE" --declare-queue --file "$WORK/in.jsonl"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 30 "4 rows" rows_equal "$TABLE" 4
stop_daemon
[[ $(sql "SELECT count(*) FROM \"$TABLE\" WHERE t = ''") == 3 ]] || fail "empty rows lost or merged"
[[ $(queue_ready "$QUEUE.dead") == 1 ]] || fail "the too-long value was not dead-lettered"
log "PASS"
