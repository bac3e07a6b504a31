#!/usr/bin/env bash
# format: protobuf: messages of tests/fixtures/protobuf/readings.proto (every scalar type, a
# nested message, a repeated message written as children, an enum, a Timestamp, bytes), built by
# python3-protobuf from a descriptor set protoc makes here, land with every value exact (int64
# and uint64 boundaries, NaN and infinities, bytes with 0x00 and 0xff, timestamps with
# microseconds and before 1970); some arrive gzip-compressed. A garbage body and a truncated one
# are dead-lettered with the parser's reason, and their batch-mates commit.
source "$(dirname "$0")/lib.sh"
N=300
CHILD="${TABLE}_samples"
# Debian's python3-protobuf is for /usr/bin/python3; a python3 earlier on PATH may lack it.
PY=python3
$PY -c 'import google.protobuf' 2>/dev/null || PY=/usr/bin/python3

protoc --include_imports --descriptor_set_out="$WORK/readings.pb" \
    -I "$RMQ2PG_SOURCE_DIR/tests/fixtures/protobuf" readings.proto
$PY "$(dirname "$0")/protobuf_messages.py" generate "$WORK/readings.pb" "$WORK" "$N"

sql "DROP TABLE IF EXISTS \"$CHILD\"; DROP TABLE IF EXISTS \"$TABLE\";
     CREATE TABLE \"$TABLE\" (id bigint PRIMARY KEY, device text, f_double double precision,
       f_float real, f_int32 integer, f_int64 bigint, f_uint32 bigint, f_uint64 numeric,
       f_sint32 integer, f_sint64 bigint, f_fixed32 bigint, f_fixed64 numeric,
       f_sfixed32 integer, f_sfixed64 bigint, f_bool boolean, f_string text, f_bytes bytea,
       site text, floor integer, quality text, taken_at timestamptz, taken_local timestamp,
       maybe integer, doc jsonb);
     CREATE TABLE \"$CHILD\" (reading_id bigint REFERENCES \"$TABLE\" ON DELETE CASCADE,
       n integer, channel bigint, value double precision, raw bytea,
       PRIMARY KEY (reading_id, n))"
{
    config_header
    cat <<YAML
log: { level: info }
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    format: protobuf
    protobuf: { descriptor_set: $WORK/readings.pb, message: rmq2pg.test.Reading }
    table: public.$TABLE
    mode: upsert
    key: [id]
    batch: { max_messages: 50 }
    columns:
      id: /id
      device: /deviceId            # lowerCamel
      f_double: /f_double
      f_float: /fFloat
      f_int32: /f_int32
      f_int64: /f_int64
      f_uint32: /f_uint32
      f_uint64: /f_uint64
      f_sint32: /f_sint32
      f_sint64: /f_sint64
      f_fixed32: /f_fixed32
      f_fixed64: /f_fixed64
      f_sfixed32: /f_sfixed32
      f_sfixed64: /f_sfixed64
      f_bool: /f_bool
      f_string: /f_string
      f_bytes: /f_bytes
      site: /location/site
      floor: /location/floor
      quality: /quality
      taken_at: /taken_at
      taken_local: /takenAt
      maybe: /maybe
      doc: \$body
    children:
      - table: public.$CHILD
        from: /samples
        key: [reading_id, n]
        columns: { reading_id: \$parent.id, n: \$index, channel: /channel, value: /value, raw: /raw }
        replace: true
YAML
} >"$WORK/rmq2pg.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/rmq2pg.yaml" --check-config >/dev/null ||
    fail "--check-config refused the config"

# Messages 1..N in order, every 7th gzip-compressed; the two bad bodies in the middle.
# Message 1 cut inside its f_string (which starts at byte 104).
head -c 114 "$WORK/msg/1" >"$WORK/truncated"
printf '\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x0f garbage' >"$WORK/garbage"
plain=() gz=()
for ((i = 1; i <= N; i++)); do
    if ((i % 7 == 0)); then
        gzip -c "$WORK/msg/$i" >"$WORK/msg/$i.gz"
        gz+=(--body-file "$WORK/msg/$i.gz")
    else
        plain+=(--body-file "$WORK/msg/$i")
    fi
    ((i == N / 2)) && plain+=(--body-file "$WORK/garbage" --body-file "$WORK/truncated")
done
publish --queue "$QUEUE" --declare-queue "${plain[@]}"
publish --queue "$QUEUE" --content-encoding gzip "${gz[@]}"

# rmq2pg suggest reads the protobuf samples as the daemon does (their JSON form) and keeps the
# pipeline's format in what it writes; the messages stay in the queue.
"$RMQ2PG_BUILD_DIR/rmq2pg" suggest --config "$WORK/rmq2pg.yaml" --pipeline "$TEST_ID" \
    --samples 5 >"$WORK/suggested.yaml" 2>"$WORK/suggest.err" ||
    fail "suggest failed: $(cat "$WORK/suggest.err")"
grep -q "^    format: protobuf$" "$WORK/suggested.yaml" || fail "suggest lost format: protobuf"
grep -q "^      f_int64: /f_int64 " "$WORK/suggested.yaml" &&
    grep -q "^      f_string: /f_string " "$WORK/suggested.yaml" ||
    fail "suggest did not map the protobuf fields: $(cat "$WORK/suggested.yaml")"

start_daemon "$WORK/rmq2pg.yaml"
wait_until 120 "every message written or dead-lettered" rows_plus_dead_equal "$TABLE" "$QUEUE" $((N + 2))
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

[[ $(row_count "$TABLE") == "$N" ]] || fail "$(row_count "$TABLE") rows, expected $N"
export PGOPTIONS="-c timezone=UTC"
sql "COPY (SELECT id, device, f_double, f_float, f_int32, f_int64, f_uint32, f_uint64, f_sint32,
        f_sint64, f_fixed32, f_fixed64, f_sfixed32, f_sfixed64, f_bool, f_string,
        encode(f_bytes, 'hex'), site, floor, quality,
        (extract(epoch FROM taken_at) * 1000000)::bigint, maybe FROM \"$TABLE\") TO STDOUT" \
    >"$WORK/readings.tsv"
sql "COPY (SELECT reading_id, n, channel, value, encode(raw, 'hex') FROM \"$CHILD\") TO STDOUT" \
    >"$WORK/samples.tsv"
$PY "$(dirname "$0")/protobuf_messages.py" compare "$WORK" "$WORK/readings.tsv" "$WORK/samples.tsv" ||
    fail "rows differ from the messages sent"
# timestamp without time zone takes the same UTC wall time; $body is the canonical JSON form,
# 64-bit integers as strings.
[[ $(sql "SELECT count(*) FROM \"$TABLE\" WHERE taken_local IS DISTINCT FROM (taken_at AT TIME ZONE 'UTC')") == 0 ]] ||
    fail "taken_local differs from taken_at"
[[ $(sql "SELECT doc->>'f_uint64' || ' ' || (doc->'location'->>'floor') FROM \"$TABLE\" WHERE id = 1") == "18446744073709551615 -2" ]] ||
    fail "\$body of message 1: $(sql "SELECT doc FROM \"$TABLE\" WHERE id = 1")"

"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-error >"$WORK/dead.tsv" 2>/dev/null || true
[[ $(wc -l <"$WORK/dead.tsv") == 2 ]] || fail "expected 2 dead letters, got $(cat "$WORK/dead.tsv")"
grep -q "is not a valid rmq2pg.test.Reading protobuf message: invalid field tag at byte 0" "$WORK/dead.tsv" ||
    fail "no reason for the garbage body: $(cat "$WORK/dead.tsv")"
grep -q "is not a valid rmq2pg.test.Reading protobuf message: .*bytes, only .* follow" "$WORK/dead.tsv" ||
    fail "no reason for the truncated body: $(cat "$WORK/dead.tsv")"
log "PASS"
