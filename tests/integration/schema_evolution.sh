#!/usr/bin/env bash
# schema_evolution: basic (format: debezium with the schema wrapper). (1) One daemon: the first
# change creates the missing table from its schema (types from the type table, primary key from
# key:, the version column); a later change with a new field adds a nullable column; a field
# whose type conflicts with its column is dead-lettered with the reason. (2) Two daemons of 2
# workers each race on a fresh table, then on a new column: both succeed, nothing is
# dead-lettered, and the table equals the per-key latest state computed here independently.
# With RMQ2PG_EVOLUTION_VIA_PGBOUNCER=1 everything goes through PgBouncer in transaction mode.
source "$(dirname "$0")/lib.sh"
PG_URL=$RMQ2PG_TEST_PG_URL
if [[ ${RMQ2PG_EVOLUTION_VIA_PGBOUNCER:-0} == 1 ]]; then
    BOUNCER="$RMQ2PG_SOURCE_DIR/scripts/pgbouncer.sh"
    eval "$("$BOUNCER" env)"
    "$BOUNCER" start >/dev/null || fail "pgbouncer did not start"
    PG_URL=$RMQ2PG_TEST_PGBOUNCER_URL
fi
SECOND_PID=""
# set +e: the handler must reach cleanup (which kills the daemon) whatever the status.
trap 'status=$?; set +e; [[ -n $SECOND_PID ]] && kill -9 "$SECOND_PID" 2>/dev/null;
      [[ -n ${BOUNCER:-} ]] && "$BOUNCER" stop >/dev/null 2>&1; (exit $status); cleanup' EXIT

T1="${TABLE}_one"
T2="${TABLE}_race"
Q1="${QUEUE}_one_$(date +%s)"
Q2="${QUEUE}_race_$(date +%s)"
sql "DROP TABLE IF EXISTS $T1; DROP TABLE IF EXISTS $T2"

config() { # FILE QUEUE TABLE WORKERS
    cat >"$1" <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"], heartbeat_s: 10 }
postgres: { url: "$PG_URL" }
shutdown_timeout_ms: 10000
retry: { initial_ms: 100, max_ms: 1000 }
log: { level: info }
pipelines:
  - name: ${TEST_ID}_$4
    queue: $2
    declare: { durable: true }
    format: debezium
    schema_evolution: basic
    table: public.$3
    mode: upsert
    key: [id]
    workers: $4
    prefetch: 200
    batch: { max_messages: 100, max_delay_ms: 50 }
YAML
}
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config /dev/null 2>/dev/null || true
config "$WORK/one.yaml" "$Q1" "$T1" 1
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/one.yaml" || fail "--migrate failed"

# events.py SEED FIRST_LSN COUNT KEYS EXTRA [STATE_IN STATE_OUT]: COUNT wrapped PostgreSQL change
# events over KEYS keys, shuffled, one in ten sent twice; EXTRA=1 adds the field "score" (int64)
# and EXTRA=bad sends "price" as a boolean. The state files carry each key's latest change.
cat >"$WORK/events.py" <<'PY'
import base64, json, random, sys
seed, lsn0, count, keys, extra = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
state = {}
if len(sys.argv) > 6 and sys.argv[6] != "-":
    state = {int(k): v for k, v in json.load(open(sys.argv[6])).items()}
rnd = random.Random(seed)
def decimal(cents):  # Kafka Connect Decimal: big-endian two's complement, scale 2
    n = (cents.bit_length() + 8) // 8
    return base64.b64encode(cents.to_bytes(n, "big", signed=True)).decode()
fields = [{"type": "int32", "optional": False, "field": "id"},
          {"type": "string", "optional": True, "field": "name"},
          {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
           "version": 1, "parameters": {"scale": "2"}, "field": "price"}]
if extra == "1":
    fields.append({"type": "int64", "optional": True, "field": "score"})
if extra == "bad":
    fields[2] = {"type": "boolean", "optional": True, "field": "price"}
row_schema = {"type": "struct", "fields": fields, "optional": True, "name": "db.public.t.Value"}
schema = {"type": "struct", "name": "db.public.t.Envelope", "optional": False, "fields": [
    dict(row_schema, field="before"), dict(row_schema, field="after"),
    {"type": "struct", "field": "source", "optional": False, "fields": [
        {"type": "string", "field": "connector"}, {"type": "int64", "field": "lsn"}]},
    {"type": "string", "field": "op"}, {"type": "int64", "optional": True, "field": "ts_ms"}]}
out = []
for i in range(count):
    lsn = lsn0 + i
    key = rnd.randrange(keys) + 1
    cents = rnd.randrange(-100000, 100000)
    row = {"id": key, "name": "n%d-%d" % (key, lsn), "price": decimal(cents)}
    shown = {"id": key, "name": row["name"], "price": "%s%d.%02d" % ("-" if cents < 0 else "", abs(cents) // 100, abs(cents) % 100), "score": ""}
    if extra == "1":
        row["score"] = lsn * 3
        shown["score"] = str(lsn * 3)
    if extra == "bad":
        row["price"] = True
    op = "c" if rnd.random() < 0.5 else "u"
    if extra != "bad" and rnd.random() < 0.08:
        op = "d"
    payload = {"op": op, "ts_ms": 1, "source": {"connector": "postgresql", "lsn": lsn},
               "before": row if op == "d" else None, "after": None if op == "d" else row}
    out.append(json.dumps({"schema": schema, "payload": payload}))
    if extra != "bad":
        prev = state.get(key)
        if prev is None or prev["lsn"] < lsn:
            state[key] = {"lsn": lsn, "row": None if op == "d" else shown}
    if rnd.random() < 0.1:
        out.append(out[-1])
rnd.shuffle(out)
print("\n".join(out))
if len(sys.argv) > 7:
    json.dump(state, open(sys.argv[7], "w"))
    with open(sys.argv[7] + ".txt", "w") as f:
        for k in sorted(state):
            r = state[k]["row"]
            if r is not None:
                f.write("%d|%s|%s|%s\n" % (k, r["name"], r["price"], r["score"]))
PY
table_rows() { psql "$RMQ2PG_TEST_PG_URL" -XAtq -c "SELECT id, name, price, score FROM $1 ORDER BY id"; }
columns_of() {
    sql "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '$1'"
}
primary_key_of() {
    sql "SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a
         ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = 'public.$1'::regclass AND i.indisprimary"
}

# (1) One daemon: create, add a column, refuse a conflicting type.
python3 "$WORK/events.py" 1 100 30 10 0 - "$WORK/s1.json" >"$WORK/one_a.jsonl"
publish --queue "$Q1" --declare-queue --file "$WORK/one_a.jsonl"
start_daemon "$WORK/one.yaml"
wait_until 30 "queue drained" queue_ready_equal "$Q1" 0
wait_until 30 "table created" bash -c "[[ -n \$(psql '$RMQ2PG_TEST_PG_URL' -XAtqc \"SELECT to_regclass('public.$T1')\") ]]"
[[ $(columns_of "$T1") == "id:integer,name:text,price:numeric,_rmq2pg_version:numeric" ]] ||
    fail "created columns: $(columns_of "$T1")"
[[ $(primary_key_of "$T1") == "id" ]] || fail "primary key: $(primary_key_of "$T1")"
wait_until 30 "rows of the first changes" bash -c "[[ \$(psql '$RMQ2PG_TEST_PG_URL' -XAtq -c 'SELECT id, name, price, NULL FROM $T1 ORDER BY id') == \$(cat '$WORK/s1.json.txt') ]]"
grep -q "schema_evolution on table public.$T1: CREATE TABLE IF NOT EXISTS" "$DAEMON_LOG" ||
    fail "the CREATE TABLE was not logged"
log "the first change created the table from its schema"

python3 "$WORK/events.py" 2 1000 30 12 1 "$WORK/s1.json" "$WORK/s2.json" >"$WORK/one_b.jsonl"
publish --queue "$Q1" --file "$WORK/one_b.jsonl"
wait_until 30 "score column added" bash -c "[[ \$(psql '$RMQ2PG_TEST_PG_URL' -XAtqc \"SELECT count(*) FROM information_schema.columns WHERE table_name = '$T1' AND column_name = 'score'\") == 1 ]]"
wait_until 30 "rows with scores" bash -c "[[ \$(psql '$RMQ2PG_TEST_PG_URL' -XAtq -c 'SELECT id, name, price, score FROM $T1 ORDER BY id') == \$(cat '$WORK/s2.json.txt') ]]"
[[ $(columns_of "$T1") == "id:integer,name:text,price:numeric,_rmq2pg_version:numeric,score:bigint" ]] ||
    fail "columns after the new field: $(columns_of "$T1")"
(($(grep -c "ADD COLUMN IF NOT EXISTS \"score\" bigint" "$DAEMON_LOG") == 1)) ||
    fail "the ADD COLUMN was not logged once"
log "a new field added a nullable column of its type"

python3 "$WORK/events.py" 3 5000 1 1 bad >"$WORK/one_c.jsonl"
publish --queue "$Q1" --file "$WORK/one_c.jsonl"
wait_until 30 "conflict dead-lettered" bash -c "(( \$(grep -c 'never retypes a column' '$DAEMON_LOG') >= 1 ))"
wait_until 30 "dead letter queued" queue_ready_equal "$Q1.dead" 1
[[ $(columns_of "$T1") == "id:integer,name:text,price:numeric,_rmq2pg_version:numeric,score:bigint" ]] ||
    fail "a conflicting field changed the table: $(columns_of "$T1")"
[[ $(table_rows "$T1") == "$(cat "$WORK/s2.json.txt")" ]] || fail "rows changed by a poison change"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "a conflicting field type is poison, the column is not retyped"

# (2) Two instances of 2 workers each racing on a fresh table, then on a new column.
config "$WORK/race.yaml" "$Q2" "$T2" 2
python3 "$WORK/events.py" 4 100000 3000 300 0 - "$WORK/r1.json" >"$WORK/race_a.jsonl"
publish --queue "$Q2" --declare-queue --file "$WORK/race_a.jsonl"
: >"$DAEMON_LOG"
start_daemon "$WORK/race.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/race.yaml" >>"$WORK/second.log" 2>&1 &
SECOND_PID=$!
wait_until 60 "race queue drained" queue_ready_equal "$Q2" 0
wait_until 60 "rows after the race on the table" bash -c "[[ \$(psql '$RMQ2PG_TEST_PG_URL' -XAtq -c 'SELECT id, name, price, NULL FROM $T2 ORDER BY id') == \$(cat '$WORK/r1.json.txt') ]]"
log "two instances racing on a fresh table: $(cat "$DAEMON_LOG" "$WORK/second.log" | grep -c 'CREATE TABLE IF NOT EXISTS') CREATE logged"
python3 "$WORK/events.py" 5 200000 3000 300 1 "$WORK/r1.json" "$WORK/r2.json" >"$WORK/race_b.jsonl"
publish --queue "$Q2" --file "$WORK/race_b.jsonl"
wait_until 60 "race queue drained again" queue_ready_equal "$Q2" 0
wait_until 60 "rows after the race on the column" bash -c "[[ \$(psql '$RMQ2PG_TEST_PG_URL' -XAtq -c 'SELECT id, name, price, score FROM $T2 ORDER BY id') == \$(cat '$WORK/r2.json.txt') ]]"
[[ $(columns_of "$T2") == "id:integer,name:text,price:numeric,_rmq2pg_version:numeric,score:bigint" ]] ||
    fail "columns after the race: $(columns_of "$T2")"
[[ $(queue_ready "$Q2.dead") == 0 ]] || fail "changes were dead-lettered in the race"
if grep -h "schema_evolution for the batch" "$DAEMON_LOG" "$WORK/second.log"; then
    fail "an instance failed its schema evolution in the race"
fi
kill -TERM "$SECOND_PID"
second_exit=0
wait "$SECOND_PID" || second_exit=$?
SECOND_PID=""
stop_daemon
((DAEMON_EXIT == 0 && second_exit == 0)) || fail "daemons exited $DAEMON_EXIT and $second_exit"
log "two instances racing on a new column: both succeeded, $(wc -l <"$WORK/r2.json.txt") rows exact"
log "PASS"
