#!/usr/bin/env bash
# Every common column type, through real PostgreSQL: valid values land exactly (numeric digits,
# arrays with awkward strings, epoch and RFC 3339 times, json objects, bytea), null/missing give
# NULL or the configured default, and invalid values or missing required fields are dead-lettered
# with PostgreSQL's reason (or the mapper's, for a number the column's type cannot hold) while
# their batch-mates commit; 1e400 lands exactly in numeric, text and jsonb; a leading byte order
# mark is skipped.
source "$(dirname "$0")/lib.sh"
sql "DROP TABLE IF EXISTS \"$TABLE\"; CREATE TABLE \"$TABLE\" (
       id bigint PRIMARY KEY, t text, vc varchar(5), si smallint, i integer, n numeric,
       r real, d double precision, b boolean, u uuid, dt date, ts timestamp, tstz timestamptz,
       j json, jb jsonb, by bytea, ta text[], ba bigint[], dflt text, req text)"
cat >"$WORK/rmq2pg.yaml" <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$RMQ2PG_TEST_PG_URL" }
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    batch: { max_messages: 100, max_delay_ms: 200 }
    table: $TABLE
    mode: ignore
    key: [id]
    columns:
      id: /id
      t: /t
      vc: /vc
      si: /si
      i: /i
      n: /n
      r: /r
      d: /d
      b: /b
      u: /u
      dt: /dt
      ts: /ts
      tstz: /tstz
      j: /j
      jb: /jb
      by: /by
      ta: /ta
      ba: /ba
      dflt: { from: /dflt, default: "fallback" }
      req: { from: /req, required: true }
YAML
cat >"$WORK/messages.jsonl" <<'JSON'
{"id":1,"t":"tab\there \"quoted\" back\\slash","vc":"abcde","si":-32768,"i":2147483647,"n":123456789012345678901234567890.123450,"r":1.5,"d":-2.25e-3,"b":true,"u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","dt":"2024-02-29","ts":"2024-05-01T12:34:56.789","tstz":"2024-05-01T12:34:56Z","j":{"a":[1,2,{"b":null}]},"jb":"just a string","by":"AB","ta":["a","b,c","{x}","NULL","q\"uote","back\\slash",""],"ba":[1,-2,9007199254740993],"dflt":"given","req":"r"}
{"id":2,"tstz":0,"ts":1700000000.5,"dt":86400,"jb":[1,"two",null],"ta":[],"ba":[],"b":false,"req":"r"}
{"id":3,"t":null,"n":null,"dflt":null,"req":"r"}
{"id":4,"si":40000,"req":"r"}
{"id":5,"u":"not-a-uuid","req":"r"}
{"id":6,"vc":"toolong","req":"r"}
{"id":7,"dt":"2024-13-45","req":"r"}
{"id":8,"i":"12x","req":"r"}
{"id":9,"b":"maybe","req":"r"}
{"id":10,"t":"no req field"}
{"id":11,"req":"r","ba":["x"]}
{"id":12,"n":1e400,"t":1E+400,"jb":{"big":-1e400},"req":"r"}
{"id":13,"d":1e400,"req":"r"}
JSON
printf '\xEF\xBB\xBF{"id":14,"t":"after a byte order mark","req":"r"}\n' >>"$WORK/messages.jsonl"
publish --queue "$QUEUE" --declare-queue --file "$WORK/messages.jsonl"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "5 good rows" rows_equal "$TABLE" 5
dead_is_9() { (($(queue_ready "$QUEUE.dead") == 9)); }
wait_until 60 "9 dead letters" dead_is_9
stop_daemon
check() { # check SQL EXPECTED
    local got
    got=$(sql "$1")
    [[ "$got" == "$2" ]] || fail "$1: expected [$2], got [$got]"
}
q="FROM \"$TABLE\" WHERE id ="
check "SELECT t $q 1" $'tab\there "quoted" back\\slash'
check "SELECT vc || si || ',' || i $q 1" "abcde-32768,2147483647"
check "SELECT n::text $q 1" "123456789012345678901234567890.123450"
check "SELECT r || ',' || d $q 1" "1.5,-0.00225"
check "SELECT b::text || ',' || u $q 1" "true,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
check "SELECT dt || ',' || ts $q 1" "2024-02-29,2024-05-01 12:34:56.789"
check "SELECT extract(epoch FROM tstz) $q 1" "1714566896.000000"
check "SELECT j::text $q 1" '{"a":[1,2,{"b":null}]}'
check "SELECT jb::text $q 1" '"just a string"'
check "SELECT encode(by, 'hex') $q 1" "4142"
check "SELECT array_length(ta, 1) || ':' || ta[2] || '|' || ta[3] || '|' || ta[4] || '|' || ta[5] || '|' || ta[6] || '|' || (ta[7] = '') $q 1" \
    $'7:b,c|{x}|NULL|q"uote|back\\slash|true'
check "SELECT (ta[4] IS NULL)::text $q 1" "false"
check "SELECT ba::text $q 1" "{1,-2,9007199254740993}"
check "SELECT dflt $q 1" "given"
check "SELECT extract(epoch FROM tstz) || ',' || ts || ',' || dt $q 2" "0.000000,2023-11-14 22:13:20.5,1970-01-02"
check "SELECT jb::text || ',' || cardinality(ta) || ',' || cardinality(ba) || ',' || b $q 2" '[1, "two", null],0,0,false'
check "SELECT (t IS NULL AND n IS NULL)::text || ',' || dflt $q 3" "true,fallback"
check "SELECT dflt $q 2" "fallback"
# A number beyond a double keeps its digits where the column can hold them (docs/config.md).
check "SELECT length(n::text) || ',' || t || ',' || length(jb->>'big') $q 12" "401,1E+400,402"
check "SELECT t $q 14" "after a byte order mark"
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-error >"$WORK/dead.tsv"
for expected in "smallint" "uuid" "22001" "date" "integer" "boolean" "required" "bigint" \
    "1e400 is out of range for double precision"; do
    grep -qi "$expected" "$WORK/dead.tsv" || fail "no dead letter mentions '$expected': $(cut -c1-200 "$WORK/dead.tsv")"
done
log "PASS"
