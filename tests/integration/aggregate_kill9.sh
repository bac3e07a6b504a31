#!/usr/bin/env bash
# kill -9 in the middle of writing 10 000 orders with 0-20 lines each (children in an insert-mode
# table without a key, so a replayed aggregate could duplicate lines if replace did not hold):
# at every moment sampled, no order is visible without all its lines; after the restart every
# order has exactly its lines, none twice.
source "$(dirname "$0")/lib.sh"
N=10000
ORDERS="${TABLE}_orders"
LINES="${TABLE}_lines"
sql "DROP TABLE IF EXISTS \"$LINES\"; DROP TABLE IF EXISTS \"$ORDERS\";
     CREATE TABLE \"$ORDERS\" (id bigint PRIMARY KEY, nlines int NOT NULL);
     CREATE TABLE \"$LINES\" (order_id bigint NOT NULL REFERENCES \"$ORDERS\"(id),
                              line_no int NOT NULL, sku text)"
{
    config_header
    cat <<YAML
log: { level: info }
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    workers: 2
    table: public.$ORDERS
    mode: upsert
    key: [id]
    columns: { id: /id, nlines: /nlines }
    children:
      - table: public.$LINES
        from: /lines
        columns: { order_id: \$parent.id, line_no: \$index, sku: /sku }
        replace: true
YAML
} >"$WORK/rmq2pg.yaml"
python3 - "$WORK" "$N" <<'PY'
import json, random, sys
rnd = random.Random(9)
with open(sys.argv[1] + "/orders.jsonl", "w") as f:
    for i in range(1, int(sys.argv[2]) + 1):
        n = rnd.randint(0, 20)
        f.write(json.dumps({"id": i, "nlines": n,
                            "lines": [{"sku": "S%d-%d" % (i, k)} for k in range(n)]}) + "\n")
PY
publish --queue "$QUEUE" --declare-queue --file /dev/null
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "$QUEUE" \
    --file "$WORK/orders.jsonl" --rate 1000 >/dev/null 2>"$WORK/publisher.log" &
publisher=$!
# Orders whose visible lines are not exactly theirs, in one snapshot.
torn() {
    sql "SELECT count(*) FROM \"$ORDERS\" o LEFT JOIN (SELECT order_id, count(*) AS n
         FROM \"$LINES\" GROUP BY 1) l ON l.order_id = o.id WHERE o.nlines <> coalesce(l.n, 0)"
}
start_daemon "$WORK/rmq2pg.yaml"
samples=0
until (($(row_count "$ORDERS") >= 3000)); do
    t=$(torn)
    [[ $t == 0 ]] || fail "$t orders visible without exactly their lines"
    samples=$((samples + 1))
    ((samples < 3000)) || fail "no progress"
done
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
rows=$(row_count "$ORDERS")
log "killed at $rows orders after $samples consistent samples"
((rows < N)) || fail "the kill came too late to test anything"
[[ $(torn) == 0 ]] || fail "orders without their lines after kill -9"
wait "$publisher" || fail "publisher failed: $(cat "$WORK/publisher.log")"
start_daemon "$WORK/rmq2pg.yaml"
until rows_equal "$ORDERS" $N && queue_ready_equal "$QUEUE" 0; do
    t=$(torn)
    [[ $t == 0 ]] || fail "$t orders visible without exactly their lines after the restart"
    samples=$((samples + 1))
    ((samples < 6000)) || fail "not all orders arrived"
done
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
[[ $(torn) == 0 ]] || fail "orders without exactly their lines at the end"
dups=$(sql "SELECT count(*) FROM (SELECT order_id, line_no FROM \"$LINES\"
            GROUP BY 1, 2 HAVING count(*) > 1) d")
[[ $dups == 0 ]] || fail "$dups lines duplicated"
expected=$(python3 -c "import json,sys; print(sum(json.loads(l)['nlines'] for l in open(sys.argv[1])))" "$WORK/orders.jsonl")
[[ $(row_count "$LINES") == "$expected" ]] || fail "$(row_count "$LINES") lines, expected $expected"
log "$N orders, $expected lines, $samples consistent samples: PASS"
