#!/usr/bin/env bash
# Aggregates vs flat messages, in one run on the same rows: N orders with 5 lines each published
# as N messages into one pipeline with `children` (orders upsert + order_lines replace), versus
# the same rows published as 6N flat messages into two pipelines (orders upsert; lines upsert on
# (order_id, line_no)). Both queues are filled first; each side's time is from the daemon's start
# to the last row, and rows per second counts orders + lines. Also reports the daemon's CPU
# seconds per side (user + system, from /proc).
# Usage: scripts/aggregate_bench.sh [ORDERS] (servers from scripts/servers.sh, started if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-20000}
build=${RMQ2PG_BUILD_DIR:-build}
scripts/servers.sh start >/dev/null
eval "$(scripts/servers.sh env)"
work=$(mktemp -d /tmp/rmq2pg-aggregate-bench-XXXX)
pid=""
trap '[[ -n $pid ]] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
sql() { psql "$RMQ2PG_TEST_PG_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
pub() { "$build/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --declare-queue "$@" 2>/dev/null >/dev/null; }

python3 - "$work" "$orders" <<'PY'
import json, random, sys
work, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(5)
with open(work + "/agg.jsonl", "w") as a, open(work + "/flat_orders.jsonl", "w") as fo, \
        open(work + "/flat_lines.jsonl", "w") as fl:
    for i in range(1, n + 1):
        lines = [{"sku": "SKU-%d" % rnd.randrange(100000), "qty": rnd.randint(1, 9),
                  "price": "%d.%02d" % (rnd.randrange(500), rnd.randrange(100))} for _ in range(5)]
        order = {"id": i, "customer": "cust-%d" % rnd.randrange(5000), "total": "%d.00" % i}
        a.write(json.dumps(dict(order, lines=lines)) + "\n")
        fo.write(json.dumps(order) + "\n")
        for k, l in enumerate(lines):
            fl.write(json.dumps(dict(l, order_id=i, line_no=k)) + "\n")
PY

tables() {
    sql "DROP TABLE IF EXISTS ab_$1_lines; DROP TABLE IF EXISTS ab_$1_orders;
         CREATE TABLE ab_$1_orders (id bigint PRIMARY KEY, customer text, total numeric);
         CREATE TABLE ab_$1_lines (order_id bigint, line_no int, sku text, qty int, price numeric,
                                   PRIMARY KEY (order_id, line_no))"
}
header() {
    cat <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$RMQ2PG_TEST_PG_URL" }
log: { level: warn }
pipelines:
YAML
}
# run NAME CONFIG EXPECTED_ROWS: seconds and CPU seconds until both tables hold the rows.
run() {
    local name=$1 config=$2 expected=$3 start end ticks
    start=$(date +%s.%N)
    "$build/rmq2pg" --config "$config" >"$work/$name.log" 2>&1 &
    pid=$!
    until (($(sql "SELECT (SELECT count(*) FROM ab_${name}_orders) + (SELECT count(*) FROM ab_${name}_lines)") >= expected)); do
        sleep 0.1
    done
    end=$(date +%s.%N)
    ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    kill -TERM $pid
    wait $pid || true
    pid=""
    echo "$(echo "$end - $start" | bc -l) $(echo "$ticks / $(getconf CLK_TCK)" | bc -l)"
}
rows=$((orders * 6))

tables agg
pub --queue ab_agg --file "$work/agg.jsonl"
{
    header
    cat <<YAML
  - name: agg
    queue: ab_agg
    table: ab_agg_orders
    mode: upsert
    key: [id]
    columns: { id: /id, customer: /customer, total: /total }
    children:
      - table: ab_agg_lines
        from: /lines
        mode: upsert
        key: [order_id, line_no]
        columns: { order_id: \$parent.id, line_no: \$index, sku: /sku, qty: /qty, price: /price }
        replace: true
YAML
} >"$work/agg.yaml"
read -r agg_s agg_cpu < <(run agg "$work/agg.yaml" $rows)

tables flat
pub --queue ab_flat_orders --file "$work/flat_orders.jsonl"
pub --queue ab_flat_lines --file "$work/flat_lines.jsonl"
{
    header
    cat <<YAML
  - name: flat_orders
    queue: ab_flat_orders
    table: ab_flat_orders
    mode: upsert
    key: [id]
    columns: { id: /id, customer: /customer, total: /total }
  - name: flat_lines
    queue: ab_flat_lines
    table: ab_flat_lines
    mode: upsert
    key: [order_id, line_no]
    columns: { order_id: /order_id, line_no: /line_no, sku: /sku, qty: /qty, price: /price }
YAML
} >"$work/flat.yaml"
read -r flat_s flat_cpu < <(run flat "$work/flat.yaml" $rows)

printf 'rows: %d (%d orders x (1 + 5 lines))\n' $rows "$orders"
printf 'aggregate: %d messages in %.2f s: %.0f rows/s, daemon CPU %.2f s (%.1f us/row)\n' \
    "$orders" "$agg_s" "$(echo "$rows / $agg_s" | bc -l)" "$agg_cpu" "$(echo "$agg_cpu * 1000000 / $rows" | bc -l)"
printf 'flat:      %d messages in %.2f s: %.0f rows/s, daemon CPU %.2f s (%.1f us/row)\n' \
    $rows "$flat_s" "$(echo "$rows / $flat_s" | bc -l)" "$flat_cpu" "$(echo "$flat_cpu * 1000000 / $rows" | bc -l)"
printf 'ratio aggregate/flat rows per second: %.2f\n' "$(echo "$flat_s / $agg_s" | bc -l)"
sql "DROP TABLE ab_agg_lines, ab_agg_orders, ab_flat_lines, ab_flat_orders"
