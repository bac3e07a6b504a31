#!/usr/bin/env bash
# Aggregates: 10 000 orders with 0-20 lines each (children, replace: true, version guard), 2 000
# of them updated later with fewer lines, 500 stale versions sent after, 1% with a line that
# violates a CHECK. Every good order and exactly its latest lines are in the tables; a stale
# version changes nothing; each bad order is dead-lettered whole (no row of it in either table)
# with the child table and PostgreSQL's reason in x-rmq2pg-error, while its batch-mates commit.
source "$(dirname "$0")/lib.sh"
ORDERS="${TABLE}_orders"
LINES="${TABLE}_lines"
sql "DROP TABLE IF EXISTS \"$LINES\"; DROP TABLE IF EXISTS \"$ORDERS\";
     CREATE TABLE \"$ORDERS\" (id bigint PRIMARY KEY, customer text NOT NULL, total numeric,
                               version int NOT NULL);
     CREATE TABLE \"$LINES\" (order_id bigint NOT NULL REFERENCES \"$ORDERS\"(id),
                              line_no int NOT NULL, sku text, qty int CHECK (qty > 0),
                              PRIMARY KEY (order_id, line_no))"
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
    version: version
    columns: { id: /id, customer: /customer, total: /total, version: /version }
    children:
      - table: public.$LINES
        from: /lines
        mode: upsert
        key: [order_id, line_no]
        columns: { order_id: \$parent.id, line_no: \$index, sku: /sku, qty: /qty }
        replace: true
YAML
} >"$WORK/rmq2pg.yaml"

python3 - "$WORK" <<'PY'
import json, random, sys
work = sys.argv[1]
rnd = random.Random(17)
N = 10000
latest, bad = {}, set()
def order(i, version, nlines, poison=False):
    lines = [{"sku": "S%d-%d-%d" % (i, version, k), "qty": rnd.randint(1, 9)} for k in range(nlines)]
    if poison:
        lines[rnd.randrange(nlines)]["qty"] = -1
    return {"id": i, "customer": "c%d" % (i % 97), "total": "%d.%02d" % (i, version),
            "version": version, "lines": lines}
first = []
for i in range(1, N + 1):
    nlines = rnd.randint(0, 20)
    poison = nlines > 0 and rnd.random() < 0.01
    o = order(i, 2, nlines, poison)
    first.append(o)
    if poison:
        bad.add(i)
    else:
        latest[i] = o
good = sorted(latest)
updates, stale = [], []
for i in rnd.sample(good, 2000):
    o = order(i, 3, rnd.randint(0, len(latest[i]["lines"])))
    updates.append(o)
    latest[i] = o
for i in rnd.sample(good, 500):
    stale.append(order(i, 1, 20))  # older than anything sent before: must replace nothing
with open(work + "/first.jsonl", "w") as f:
    for o in first:
        f.write(json.dumps(o) + "\n")
with open(work + "/later.jsonl", "w") as f:
    for o in updates + stale:
        f.write(json.dumps(o) + "\n")
with open(work + "/orders.tsv", "w") as f:
    for i in good:
        o = latest[i]
        f.write("%d\t%s\t%s\t%d\n" % (i, o["customer"], o["total"], o["version"]))
with open(work + "/lines.tsv", "w") as f:
    for i in good:
        for k, l in enumerate(latest[i]["lines"]):
            f.write("%d\t%d\t%s\t%d\n" % (i, k, l["sku"], l["qty"]))
with open(work + "/bad.txt", "w") as f:
    for i in sorted(bad):
        f.write("%d\n" % i)
PY
bad=$(wc -l <"$WORK/bad.txt")
log "$bad orders with a bad line"
publish --queue "$QUEUE" --declare-queue --file "$WORK/first.jsonl"
start_daemon "$WORK/rmq2pg.yaml"
publish --queue "$QUEUE" --file "$WORK/later.jsonl"
wait_until 300 "queue drained" queue_ready_equal "$QUEUE" 0
wait_until 120 "every bad order dead-lettered" queue_ready_equal "$QUEUE.dead" "$bad"
wait_until 60 "the last batch settled" bash -c "[[ \$(\"$RMQ2PG_SOURCE_DIR/scripts/servers.sh\" rabbitmqctl list_queues -q name messages_unacknowledged | awk '\$1 == \"$QUEUE\" {print \$2}') == 0 ]]"
grep -q "children: public.$LINES child of public.$ORDERS (rmq2pg deletes it before the parent)" \
    "$DAEMON_LOG" || fail "the startup line does not describe the child table"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

sql "SELECT id, customer, total, version FROM \"$ORDERS\" ORDER BY id" | tr "|" "\t" >"$WORK/orders.actual"
sql "SELECT order_id, line_no, sku, qty FROM \"$LINES\" ORDER BY order_id, line_no" | tr "|" "\t" >"$WORK/lines.actual"
diff "$WORK/orders.tsv" "$WORK/orders.actual" >"$WORK/orders.diff" ||
    fail "orders differ from the latest good versions: $(head -5 "$WORK/orders.diff")"
diff "$WORK/lines.tsv" "$WORK/lines.actual" >"$WORK/lines.diff" ||
    fail "lines differ from the latest versions' lines: $(head -5 "$WORK/lines.diff")"
log "$(wc -l <"$WORK/orders.actual") orders and $(wc -l <"$WORK/lines.actual") lines as expected"

"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-error >"$WORK/dead.tsv"
[[ $(wc -l <"$WORK/dead.tsv") == "$bad" ]] || fail "drained $(wc -l <"$WORK/dead.tsv") of $bad"
grep -v "table public.$LINES" "$WORK/dead.tsv" | head -3 | grep . &&
    fail "a dead letter does not name the child table"
grep -v "check constraint \"${LINES}_qty_check\".*23514" "$WORK/dead.tsv" | head -3 | grep . &&
    fail "a dead letter does not carry PostgreSQL's reason"
# Dead-lettered whole: the body is the order as sent, with all its lines.
cut -f2 "$WORK/dead.tsv" | python3 -c '
import json, sys
ids = sorted(json.loads(l)["id"] for l in sys.stdin)
print("\n".join(map(str, ids)))' >"$WORK/dead_ids"
diff -q "$WORK/bad.txt" "$WORK/dead_ids" >/dev/null || fail "the dead-lettered orders are not the bad ones"
log "PASS"
