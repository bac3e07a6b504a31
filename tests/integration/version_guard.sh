#!/usr/bin/env bash
# Upsert with a version guard and deletes: 10 000 changes over 500 keys, published shuffled,
# through 4 workers and two daemon instances at once. The table must end up exactly as applying,
# per key, the change with the highest version says — absent where that change is a delete, even
# when older updates arrive after it (tombstones).
source "$(dirname "$0")/lib.sh"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config /dev/null 2>/dev/null || true
sql "DROP TABLE IF EXISTS \"$TABLE\"; CREATE TABLE \"$TABLE\" (
       id bigint PRIMARY KEY, version bigint NOT NULL, name text, amount numeric)"
cat >"$WORK/rmq2pg.yaml" <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$RMQ2PG_TEST_PG_URL" }
retry: { initial_ms: 50, max_ms: 500 }
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    workers: 4
    prefetch: 500
    batch: { max_messages: 200, max_delay_ms: 20 }
    table: public.$TABLE
    mode: upsert
    key: [id]
    version: version
    delete_when: { field: /op, equals: "delete" }
    tombstone_retention_s: 3600
    columns:
      id: /id
      version: /version
      name: /name
      amount: /amount
YAML
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" || fail "--migrate failed"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" || fail "--migrate is not idempotent"
sql "DELETE FROM rmq2pg_state.tombstones WHERE table_name = 'public.$TABLE'"
# The change stream: per key versions 1..20 in a shuffled order; some keys end with a delete,
# some have a delete in the middle followed by newer updates; every change once, plus 10%
# exact redeliveries. expected.tsv is the final state per key.
python3 - "$WORK" <<'PY'
import json, random, sys
random.seed(20261124)
work = sys.argv[1]
changes, expected = [], {}
for key in range(1, 501):
    versions = list(range(1, 21))
    delete_at = set(random.sample(versions, random.choice([0, 1, 2])))
    final = None
    for v in versions:
        if v in delete_at:
            changes.append({"id": key, "version": v, "op": "delete"})
            final = None
        else:
            c = {"id": key, "version": v, "op": "upsert", "name": f"k{key}v{v}",
                 "amount": f"{key}.{v:02d}"}
            changes.append(c)
            final = c
    if final is not None and max(delete_at, default=0) < final["version"]:
        expected[key] = final
changes += random.sample(changes, len(changes) // 10)
random.shuffle(changes)
with open(f"{work}/changes.jsonl", "w") as f:
    for c in changes:
        f.write(json.dumps(c) + "\n")
with open(f"{work}/expected.tsv", "w") as f:
    for key in sorted(expected):
        c = expected[key]
        f.write(f"{key}\t{c['version']}\t{c['name']}\t{c['amount']}\n")
print(len(changes), "changes,", len(expected), "keys expected")
PY
publish --queue "$QUEUE" --declare-queue --file "$WORK/changes.jsonl"
total=$(wc -l <"$WORK/changes.jsonl")
start_daemon "$WORK/rmq2pg.yaml"
first=$DAEMON_PID
"$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/rmq2pg.yaml" >>"$WORK/second.log" 2>&1 &
second=$!
trap 'status=$?; kill -9 "$second" 2>/dev/null || true; set +e; (exit $status); cleanup' EXIT
# Ready and unacked: every change committed and acknowledged before the instances stop, so a
# slow machine cannot leave a batch to the shutdown deadline.
queue_settled() { [[ $(queue_total "$QUEUE") == 0 ]]; }
wait_until 180 "every change committed and acknowledged" queue_settled
kill -TERM "$second"
wait "$second" || fail "second instance exited $?"
stop_daemon
((DAEMON_EXIT == 0)) || fail "first instance exited $DAEMON_EXIT"
[[ $(queue_ready "$QUEUE") == 0 ]] || fail "messages left"
[[ $(queue_ready "$QUEUE.dead") == 0 ]] || fail "changes were dead-lettered"
sql "SELECT id, version, name, amount FROM \"$TABLE\" ORDER BY id" | tr '|' '\t' >"$WORK/actual.tsv"
diff "$WORK/expected.tsv" "$WORK/actual.tsv" >"$WORK/diff" || fail "table differs from expected: $(head -5 "$WORK/diff")"
log "PASS: $total changes → $(wc -l <"$WORK/actual.tsv") rows equal to the expected final state"
