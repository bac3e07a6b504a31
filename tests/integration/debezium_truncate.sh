#!/usr/bin/env bash
# format: debezium, on_truncate: truncate. (1) One batch holding changes older and newer than a
# truncate, delivered before and after it: the table ends with the newer changes only. (2) The
# same truncate redelivered after a newer change committed keeps that change's row. (3) A newer
# truncate empties the table, and a change after it is written. Each applied truncate is logged.
# (4) A refused truncate is dead-lettered and the changes it would have erased are written.
source "$(dirname "$0")/lib.sh"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config /dev/null 2>/dev/null || true
sql "DROP TABLE IF EXISTS $TABLE; CREATE TABLE $TABLE (id int PRIMARY KEY, name text,
       _rmq2pg_version numeric)"
{
    config_header
    cat <<YAML
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    format: debezium
    on_truncate: truncate
    table: public.$TABLE
    mode: upsert
    batch: { max_messages: 100, max_delay_ms: 1500 }
YAML
} >"$WORK/rmq2pg.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" || fail "--migrate failed"

change() {  # change OP ID LSN: a bare PostgreSQL change event
    python3 -c 'import json,sys
op, id, lsn = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
row = {"id": id, "name": "n%d" % id}
e = {"op": op, "ts_ms": 1, "source": {"connector": "postgresql", "lsn": lsn}}
if op in "cru": e["after"] = row
if op == "d": e["before"] = row
print(json.dumps(e))' "$@"
}
ids() { sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM $TABLE"; }

# Delivery order is not the log's: 6 (position 35) comes before the truncate (30), 1 after it.
{ change c 1 10; change c 2 20; change c 6 35; change t 0 30; change u 1 25; change c 3 40; } \
    >"$WORK/one.jsonl"
publish --queue "$QUEUE" --declare-queue --file "$WORK/one.jsonl"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 30 "queue drained" queue_ready_equal "$QUEUE" 0
wait_until 30 "truncate applied" grep -q "truncate event (tag [0-9]*, position 30) applied" "$DAEMON_LOG"
sleep 2
[[ $(ids) == "3,6" ]] || fail "one batch with a truncate in the middle: ids $(ids), expected 3,6"
log "a truncate in the middle of a batch erases the batch's older changes, not the newer ones"

change c 4 50 >"$WORK/two.jsonl"
publish --queue "$QUEUE" --file "$WORK/two.jsonl"
wait_until 30 "id 4 written" bash -c "[[ \$(psql '$RMQ2PG_TEST_PG_URL' -XAtqc 'SELECT count(*) FROM $TABLE WHERE id = 4') == 1 ]]"
change t 0 30 >"$WORK/again.jsonl"
publish --queue "$QUEUE" --file "$WORK/again.jsonl"
wait_until 30 "redelivered truncate settled" bash -c "(( \$(grep -c 'position 30) applied' '$DAEMON_LOG') == 2 ))"
[[ $(ids) == "3,4,6" ]] || fail "a redelivered older truncate erased newer rows: ids $(ids)"
log "a redelivered truncate keeps the rows of later changes"

{ change t 0 60; change c 5 70; } >"$WORK/three.jsonl"
publish --queue "$QUEUE" --file "$WORK/three.jsonl"
wait_until 30 "truncate at 60 applied" grep -q "position 60) applied" "$DAEMON_LOG"
wait_until 30 "id 5 written" bash -c "[[ \$(psql '$RMQ2PG_TEST_PG_URL' -XAtqc 'SELECT count(*) FROM $TABLE WHERE id = 5') == 1 ]]"
[[ $(ids) == "5" ]] || fail "a newer truncate: ids $(ids), expected 5"
[[ $(queue_ready "$QUEUE.dead") == 0 ]] || fail "changes were dead-lettered"
log "a newer truncate empties the table"

# (4) A truncate PostgreSQL refuses (a foreign key references the table) is dead-lettered with
# the reason; the changes it would have erased (7, older) and the newer one (8) are written.
sql "DROP TABLE IF EXISTS ${TABLE}_ref; CREATE TABLE ${TABLE}_ref (id int REFERENCES $TABLE (id))"
{ change c 7 80; change t 0 90; change c 8 100; } >"$WORK/four.jsonl"
publish --queue "$QUEUE" --file "$WORK/four.jsonl"
wait_until 30 "refused truncate dead-lettered" queue_ready_equal "$QUEUE.dead" 1
wait_until 30 "ids 7 and 8 written" bash -c "[[ \$(psql '$RMQ2PG_TEST_PG_URL' -XAtqc 'SELECT count(*) FROM $TABLE WHERE id IN (7, 8)') == 2 ]]"
[[ $(ids) == "5,7,8" ]] || fail "a refused truncate: ids $(ids), expected 5,7,8"
grep -q "truncate refused" "$DAEMON_LOG" || fail "the refusal's reason was not logged"
sql "DROP TABLE ${TABLE}_ref"
log "a refused truncate is poison and the changes it would have erased are written"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS"
