#!/usr/bin/env bash
# Protocol Buffers vs JSON, in one run on the same orders: N orders with 5 lines each, published
# once as JSON and once as protobuf (the same values), each into an aggregate pipeline (orders
# upsert + order_lines with `children`, replace). Both queues are filled first; each side runs
# the daemon alone from its start to the last row, ROUNDS times alternating (json, protobuf,
# json, …) so that a noisy neighbour hits both. Reports messages per second and the daemon's
# CPU (utime + stime from /proc/PID/stat) per message of each side, and the ratio. The daemon's
# CPU to start (config, descriptor set, connections, catalog reads) is measured too, by a run
# on an empty queue, and the ratio is also printed without it: with 10 ms clock ticks and
# ~0.15 s of CPU per side, the start-up is a fixed cost both sides carry that pulls the raw
# ratio towards 1.
# Usage: scripts/protobuf_bench.sh [ORDERS] [ROUNDS]   (servers from scripts/servers.sh, started
# if needed; needs protoc and python3-protobuf)
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-20000}
rounds=${2:-2}
build=${RMQ2PG_BUILD_DIR:-build}
py=python3
$py -c 'import google.protobuf' 2>/dev/null || py=/usr/bin/python3
scripts/servers.sh start >/dev/null
eval "$(scripts/servers.sh env)"
work=$(mktemp -d /tmp/rmq2pg-protobuf-bench-XXXX)
pid=""
trap '[[ -n $pid ]] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
sql() { psql "$RMQ2PG_TEST_PG_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
pub() { "$build/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --declare-queue "$@" 2>/dev/null >/dev/null; }

cat >"$work/orders.proto" <<'PROTO'
syntax = "proto3";
package bench;
message Line { string sku = 1; int32 qty = 2; string price = 3; }
message Order { int64 id = 1; string customer = 2; string total = 3; repeated Line lines = 4; }
PROTO
protoc --include_imports --descriptor_set_out="$work/orders.pb" -I "$work" orders.proto
$py - "$work" "$orders" <<'PY'
import json, random, sys
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
work, n = sys.argv[1], int(sys.argv[2])
fds = descriptor_pb2.FileDescriptorSet()
fds.ParseFromString(open(work + "/orders.pb", "rb").read())
pool = descriptor_pool.DescriptorPool()
for f in fds.file:
    pool.Add(f)
Order = message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("bench.Order"))
def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)
rnd = random.Random(5)
json_bytes = pb_bytes = 0
with open(work + "/orders.jsonl", "w") as j, open(work + "/orders.delimited", "wb") as p:
    for i in range(1, n + 1):
        lines = [{"sku": "SKU-%d" % rnd.randrange(100000), "qty": rnd.randint(1, 9),
                  "price": "%d.%02d" % (rnd.randrange(500), rnd.randrange(100))} for _ in range(5)]
        order = {"id": i, "customer": "cust-%d" % rnd.randrange(5000), "total": "%d.00" % i, "lines": lines}
        text = json.dumps(order)
        j.write(text + "\n")
        body = Order(**order).SerializeToString()
        p.write(varint(len(body)) + body)
        json_bytes += len(text)
        pb_bytes += len(body)
print("body bytes per order: json %.0f, protobuf %.0f" % (json_bytes / n, pb_bytes / n))
PY

header() {
    cat <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$RMQ2PG_TEST_PG_URL" }
log: { level: warn }
pipelines:
YAML
}
pipeline() {  # NAME [FORMAT_LINES]
    cat <<YAML
  - name: $1
    queue: pb_bench_$1
$2
    table: pb_bench_$1_orders
    mode: upsert
    key: [id]
    columns: { id: /id, customer: /customer, total: /total }
    children:
      - table: pb_bench_$1_lines
        from: /lines
        key: [order_id, line_no]
        columns: { order_id: \$parent.id, line_no: \$index, sku: /sku, qty: /qty, price: /price }
        replace: true
YAML
}
{ header; pipeline json ""; } >"$work/json.yaml"
{
    header
    pipeline protobuf "    format: protobuf
    protobuf: { descriptor_set: $work/orders.pb, message: bench.Order }"
} >"$work/protobuf.yaml"

tables() {
    sql "DROP TABLE IF EXISTS pb_bench_$1_lines; DROP TABLE IF EXISTS pb_bench_$1_orders;
         CREATE TABLE pb_bench_$1_orders (id bigint PRIMARY KEY, customer text, total numeric);
         CREATE TABLE pb_bench_$1_lines (order_id bigint, line_no int, sku text, qty int,
                                         price numeric, PRIMARY KEY (order_id, line_no))"
}
# run NAME: fills the queue, then prints seconds and CPU seconds of the daemon until every row
# is in.
run() {
    local name=$1 start end ticks rows=$((orders * 6))
    tables "$name"
    if [[ $name == json ]]; then
        pub --queue pb_bench_json --file "$work/orders.jsonl"
    else
        pub --queue pb_bench_protobuf --content-type application/x-protobuf \
            --delimited-file "$work/orders.delimited"
    fi
    start=$(date +%s.%N)
    "$build/rmq2pg" --config "$work/$name.yaml" >"$work/$name.log" 2>&1 &
    pid=$!
    until (($(sql "SELECT (SELECT count(*) FROM pb_bench_${name}_orders) + (SELECT count(*) FROM pb_bench_${name}_lines)") >= rows)); do
        kill -0 $pid 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    end=$(date +%s.%N)
    ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    kill -TERM $pid
    wait $pid || true
    pid=""
    echo "$(echo "$end - $start" | bc -l) $(echo "$ticks / $(getconf CLK_TCK)" | bc -l)"
}

# idle NAME: CPU seconds of the daemon started on an empty queue and left 2 s to settle.
idle() {
    local name=$1 ticks
    tables "$name"
    "$build/rmq2pg" --config "$work/$name.yaml" >"$work/$name.idle.log" 2>&1 &
    pid=$!
    sleep 2
    kill -0 $pid 2>/dev/null || { cat "$work/$name.idle.log" >&2; exit 1; }
    ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    kill -TERM $pid
    wait $pid || true
    pid=""
    echo "$ticks / $(getconf CLK_TCK)" | bc -l
}
json_idle=$(idle json)
pb_idle=$(idle protobuf)
printf 'start-up CPU on an empty queue: json %.2f s, protobuf %.2f s\n' "$json_idle" "$pb_idle"

json_s=0 json_cpu=0 pb_s=0 pb_cpu=0
for ((r = 1; r <= rounds; r++)); do
    read -r s cpu < <(run json)
    printf 'round %d json:     %.2f s, CPU %.2f s\n' "$r" "$s" "$cpu"
    json_s=$(echo "$json_s + $s" | bc -l) json_cpu=$(echo "$json_cpu + $cpu" | bc -l)
    read -r s cpu < <(run protobuf)
    printf 'round %d protobuf: %.2f s, CPU %.2f s\n' "$r" "$s" "$cpu"
    pb_s=$(echo "$pb_s + $s" | bc -l) pb_cpu=$(echo "$pb_cpu + $cpu" | bc -l)
done
messages=$((orders * rounds))
printf 'orders: %d x %d rounds (each 1 message, 6 rows)\n' "$orders" "$rounds"
printf 'json:     %.0f messages/s, daemon CPU %.1f us/message\n' \
    "$(echo "$messages / $json_s" | bc -l)" "$(echo "$json_cpu * 1000000 / $messages" | bc -l)"
printf 'protobuf: %.0f messages/s, daemon CPU %.1f us/message\n' \
    "$(echo "$messages / $pb_s" | bc -l)" "$(echo "$pb_cpu * 1000000 / $messages" | bc -l)"
printf 'ratio protobuf/json CPU per message: %.2f (target <= 1.5); rate: %.2f\n' \
    "$(echo "$pb_cpu / $json_cpu" | bc -l)" "$(echo "$json_s / $pb_s" | bc -l)"
json_net=$(echo "$json_cpu - $rounds * $json_idle" | bc -l)
pb_net=$(echo "$pb_cpu - $rounds * $pb_idle" | bc -l)
printf 'without start-up: json %.1f us/message, protobuf %.1f us/message, ratio %.2f\n' \
    "$(echo "$json_net * 1000000 / $messages" | bc -l)" \
    "$(echo "$pb_net * 1000000 / $messages" | bc -l)" "$(echo "$pb_net / $json_net" | bc -l)"
sql "DROP TABLE pb_bench_json_lines, pb_bench_json_orders, pb_bench_protobuf_lines, pb_bench_protobuf_orders"
