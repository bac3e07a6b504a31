#!/usr/bin/env bash
# format: debezium keeps the source's order whatever the queue's: 20 000 MySQL change events over
# 500 keys (creates, updates, deletes in the middle and at the end, each delete followed by its
# tombstone), half with the schema wrapper and half bare, positions across binlog files
# (mysql-bin.000008 … .000015: pos restarts in each file, several rows per event), shuffled,
# 10% delivered twice, consumed by 2 instances × 2 workers. The table must equal, per key, the
# change with the highest position — computed here independently of rmq2pg.
source "$(dirname "$0")/lib.sh"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config /dev/null 2>/dev/null || true
sql "DROP TABLE IF EXISTS \"$TABLE\"; CREATE TABLE \"$TABLE\" (
       id int PRIMARY KEY, name text, amount numeric(12,2), _rmq2pg_version numeric)"
cat >"$WORK/rmq2pg.yaml" <<YAML
$(config_header)
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    format: debezium
    table: public.$TABLE
    mode: upsert
    workers: 2
    prefetch: 500
    batch: { max_messages: 200, max_delay_ms: 20 }
YAML
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" || fail "--migrate failed"
sql "DELETE FROM rmq2pg_state.tombstones WHERE table_name = 'public.$TABLE'"
python3 - "$WORK" <<'PY'
import base64, json, random, sys
random.seed(20261201)
work = sys.argv[1]
KEYS, PER_KEY = 500, 40
ROW = [{"type": "int32", "optional": False, "field": "id"},
       {"type": "string", "optional": True, "field": "name"},
       {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "12"},
        "field": "amount"}]
SCHEMA = {"type": "struct", "optional": False, "name": "s.inventory.t.Envelope", "fields": [
    {"type": "struct", "fields": ROW, "optional": True, "name": "s.inventory.t.Value",
     "field": "before"},
    {"type": "struct", "fields": ROW, "optional": True, "name": "s.inventory.t.Value",
     "field": "after"},
    {"type": "struct", "optional": False, "name": "io.debezium.connector.mysql.Source",
     "field": "source", "fields": [
         {"type": "string", "optional": False, "field": "file"},
         {"type": "int64", "optional": False, "field": "pos"},
         {"type": "int32", "optional": False, "field": "row"}]},
    {"type": "string", "optional": False, "field": "op"},
    {"type": "int64", "optional": True, "field": "ts_ms"}]}

def decimal_bytes(cents):
    n = (cents.bit_length() + 8) // 8
    return base64.b64encode(cents.to_bytes(n, "big", signed=True)).decode()

# The source's log: a global order of KEYS*PER_KEY changes; each key's own sequence of ops.
order = [k for k in range(1, KEYS + 1) for _ in range(PER_KEY)]
random.shuffle(order)
state, changes, expected = {}, [], {}
for i, key in enumerate(order):
    file_no, in_file = 8 + i * 8 // len(order), i % (len(order) // 8)
    source = {"file": f"mysql-bin.{file_no:06d}", "pos": 4 + (in_file // 3) * 211,
              "row": in_file % 3, "ts_ms": 1700000000000 + i}
    exists = key in state
    if exists and random.random() < 0.08:
        ev = {"before": state[key], "after": None, "op": "d"}
        del state[key]
    else:
        cents = random.randint(-10**11 + 1, 10**11 - 1)
        after = {"id": key, "name": f"k{key}#{i}", "amount": cents}
        ev = {"before": None, "after": after, "op": "u" if exists else "c"}
        state[key] = after
    ev["source"] = source
    ev["ts_ms"] = source["ts_ms"]
    changes.append(ev)
def render(ev, wrapped):
    ev = json.loads(json.dumps(ev))
    for image in ("before", "after"):
        if ev[image] is not None:
            cents = ev[image]["amount"]
            ev[image]["amount"] = decimal_bytes(cents) if wrapped else \
                f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"
    return json.dumps({"schema": SCHEMA, "payload": ev} if wrapped else ev)
lines = []
for j, ev in enumerate(changes):
    lines.append(render(ev, j % 2 == 0))
    if ev["op"] == "d":
        lines.append("default")  # the tombstone Debezium Server sends after a delete
lines += random.sample(lines, len(lines) // 10)
random.shuffle(lines)
with open(f"{work}/changes.jsonl", "w") as f:
    f.write("\n".join(lines) + "\n")
with open(f"{work}/expected.tsv", "w") as f:
    for key in sorted(state):
        a = state[key]
        c = a["amount"]
        f.write(f"{key}\t{a['name']}\t{'-' if c < 0 else ''}{abs(c) // 100}.{abs(c) % 100:02d}\n")
print(len(changes), "changes,", len(lines), "messages,", len(state), "keys expected")
PY
publish --queue "$QUEUE" --declare-queue --file "$WORK/changes.jsonl"
start_daemon "$WORK/rmq2pg.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/rmq2pg.yaml" >>"$WORK/second.log" 2>&1 &
second=$!
trap 'status=$?; kill -9 "$second" 2>/dev/null || true; set +e; (exit $status); cleanup' EXIT
wait_until 180 "queue drained" queue_ready_equal "$QUEUE" 0
sleep 1
kill -TERM "$second"
wait "$second" || fail "second instance exited $?"
stop_daemon
((DAEMON_EXIT == 0)) || fail "first instance exited $DAEMON_EXIT"
[[ $(queue_ready "$QUEUE") == 0 ]] || fail "messages left"
[[ $(queue_ready "$QUEUE.dead") == 0 ]] || fail "changes were dead-lettered"
sql "SELECT id, name, amount FROM \"$TABLE\" ORDER BY id" | tr '|' '\t' >"$WORK/actual.tsv"
diff "$WORK/expected.tsv" "$WORK/actual.tsv" >"$WORK/diff" ||
    fail "table differs from the source's final state: $(head -5 "$WORK/diff")"
log "PASS: $(wc -l <"$WORK/actual.tsv") rows equal the source's final state"
