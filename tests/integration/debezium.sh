#!/usr/bin/env bash
# format: debezium through real servers. (1) The documented PostgreSQL and MySQL change events
# (tests/fixtures/debezium: snapshot reads, creates, updates, deletes, tombstones, a truncate),
# with and without the schema wrapper, published newest first: each target table equals the
# source's final state row by row, and nothing is dead-lettered. (2) Every logical type, compared
# exactly. (3) Bad envelopes are dead-lettered with a reason that says which.
source "$(dirname "$0")/lib.sh"
FIX="$RMQ2PG_SOURCE_DIR/tests/fixtures/debezium"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config /dev/null 2>/dev/null || true

tables=(pgw pgb myw myb)
for t in "${tables[@]}"; do
    sql "DROP TABLE IF EXISTS ${TABLE}_$t; CREATE TABLE ${TABLE}_$t (
           id int PRIMARY KEY, first_name text, last_name text, email text,
           _rmq2pg_version numeric)"
done
sql "DROP TABLE IF EXISTS ${TABLE}_types; CREATE TABLE ${TABLE}_types (
       id bigint PRIMARY KEY, price numeric(10,2), ratio numeric, born date,
       at time, created timestamp, zoned timestamptz, doc jsonb, uid uuid, mood text,
       blob bytea, _rmq2pg_version numeric)"

{
    config_header
    echo "pipelines:"
    for t in "${tables[@]}" types; do
        cat <<YAML
  - name: ${TEST_ID}_$t
    queue: ${QUEUE}_$t
    format: debezium
    table: public.${TABLE}_$t
    mode: upsert
    batch: { max_messages: 50, max_delay_ms: 20 }
YAML
    done
} >"$WORK/rmq2pg.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" || fail "--migrate failed"

# One event per line, newest first: the version guard, not the queue's order, decides.
events() {  # events SUFFIX FILE...
    local suffix=$1 f
    shift
    for f in "$@"; do python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' \
        "$FIX/${f}${suffix}.json"; done | tac
}
pg=(postgres_snapshot_read_1 postgres_snapshot_read_2 postgres_snapshot_read_3 postgres_create
    postgres_update postgres_create_1005 postgres_delete_1005)
my=(mysql_snapshot_read mysql_snapshot_read_1004 mysql_update mysql_create mysql_delete)
{ events "" "${pg[@]}"; echo default; cat "$FIX/postgres_tombstone.json";
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' \
      "$FIX/postgres_truncate.json"; } >"$WORK/pgw.jsonl"
{ events _bare "${pg[@]}"; echo default; } >"$WORK/pgb.jsonl"
{ events "" "${my[@]}"; echo default; } >"$WORK/myw.jsonl"
{ events _bare "${my[@]}"; } >"$WORK/myb.jsonl"
events "" postgres_types >"$WORK/types.jsonl"
for t in "${tables[@]}" types; do
    publish --queue "${QUEUE}_$t" --declare-queue --file "$WORK/$t.jsonl"
done

start_daemon "$WORK/rmq2pg.yaml"
for t in "${tables[@]}" types; do
    wait_until 60 "queue ${QUEUE}_$t drained" queue_ready_equal "${QUEUE}_$t" 0
done
sleep 1
for t in "${tables[@]}" types; do
    [[ $(queue_ready "${QUEUE}_$t.dead") == 0 ]] || fail "$t: changes were dead-lettered"
done

rows() { sql "SELECT id, first_name, last_name, email FROM ${TABLE}_$1 ORDER BY id"; }
expected_pg="1001|Sally|Thomas|sally.thomas@acme.com
1002|George|Bailey|gbailey@foobar.com
1003|Edward|Walker|ed@walker.com
1004|Anne Marie|Kretchmar|annek@noanswer.org"
expected_my="1001|Sally|Thomas|sally.thomas@acme.com
1004|Anne Marie|Kretchmar|annek@noanswer.org"
[[ "$(rows pgw)" == "$expected_pg" ]] || fail "postgres (schema wrapper): $(rows pgw)"
[[ "$(rows pgb)" == "$expected_pg" ]] || fail "postgres (bare): $(rows pgb)"
[[ "$(rows myw)" == "$expected_my" ]] || fail "mysql (schema wrapper): $(rows myw)"
[[ "$(rows myb)" == "$expected_my" ]] || fail "mysql (bare): $(rows myb)"
[[ $(sql "SELECT _rmq2pg_version FROM ${TABLE}_myw WHERE id = 1004") == \
    "30000000000000000048400000000000000000000" ]] || fail "mysql position not stored"
[[ $(sql "SELECT count(*) FROM rmq2pg_state.tombstones WHERE table_name = 'public.${TABLE}_pgw'
          AND key = '[1005]' AND version = '46523200'") == 1 ]] || fail "no tombstone for 1005"
log "fixtures: postgres and mysql, with and without the schema wrapper, equal the final state"

actual_types=$(sql "SELECT id, price::text, ratio::text, born::text, at::text,
    to_char(created, 'YYYY-MM-DD HH24:MI:SS.US'), extract(epoch from zoned)::text, doc::text,
    uid::text, mood, encode(blob, 'hex') FROM ${TABLE}_types")
expected_types="1|-123.45|-0.0000000001|1969-12-31|23:59:59.999999|1969-12-31 23:59:59.999999|1529501823.000000|{\"a\": [1, 2]}|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|happy|010203"
[[ "$actual_types" == "$expected_types" ]] ||
    fail "logical types differ:
  expected $expected_types
  actual   $actual_types"
log "logical types: exact"

# Bad envelopes: dead-lettered with the reason.
printf '%s\n' '{"after":{"id":1},"source":{"lsn":1}}' '{"op":"x","after":{"id":1},"source":{"lsn":1}}' \
    '{"op":"u","before":{"id":1},"source":{"lsn":1}}' >"$WORK/bad.jsonl"
publish --queue "${QUEUE}_pgb" --file "$WORK/bad.jsonl"
wait_until 30 "3 dead letters" bash -c "(( \$(\"$RMQ2PG_BUILD_DIR/rmq2pg-publish\" --url \"$RMQ2PG_TEST_AMQP_URL\" --stats ${QUEUE}_pgb.dead | cut -d' ' -f1) == 3 ))"
grep -q "no op field" "$DAEMON_LOG" || fail "no reason for a missing op"
grep -q "unknown op x" "$DAEMON_LOG" || fail "no reason for an unknown op"
grep -q "op u without an after image" "$DAEMON_LOG" || fail "no reason for a missing after"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS"
