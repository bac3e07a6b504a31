#!/usr/bin/env bash
# The daemon against an ack-only consumer on equal queues, drained alternately (consumer, daemon,
# consumer, daemon), so both see the broker in the same state: what scripts/bench.sh cannot
# separate from the broker's own run-to-run variance on large backlogs.
#   scripts/bench_alternate.sh [N]      (N messages per queue, default 500000; 4 queues)
# Uses the private servers (scripts/servers.sh start first) and build/.
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-500000}
eval "$("$source_dir/scripts/servers.sh" env)"
amqp=$RMQ2PG_TEST_AMQP_URL pg=$RMQ2PG_TEST_PG_URL
bench=$source_dir/build/rmq2pg-bench daemon=$source_dir/build/rmq2pg
work=$(mktemp -d /tmp/rmq2pg-alternate-XXXX)
queues=(alt_$$_1 alt_$$_2 alt_$$_3 alt_$$_4)
sql() { psql "$pg" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
cleanup() {
    for q in "${queues[@]}"; do
        "$source_dir/scripts/servers.sh" rabbitmqctl delete_queue -q "$q" >/dev/null 2>&1 || true
        sql "DROP TABLE IF EXISTS \"$q\"" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

psql "$pg" -XAtq -v ON_ERROR_STOP=1 -f "$source_dir/sql/001_orders.sql"  # the table shape
"$bench" publish --amqp "$amqp" --queues "$(IFS=,; echo "${queues[*]}")" --count "$n" --declare |
    awk '/publish_rate/ { printf "published %s x 4 queues at %.0f msgs/s\n", "'"$n"'", $2 }'
for i in 0 1 2 3; do
    q=${queues[$i]}
    if ((i % 2 == 0)); then
        rate=$("$bench" drain --amqp "$amqp" --queue "$q" --count "$n" --consumers 2 \
            --prefetch 10000 | awk '/drain_rate/ { print $2 }')
        printf 'queue %d  ack-only consumer (2 consumers, prefetch 10000)  %8.0f msgs/s\n' $((i + 1)) "$rate"
        continue
    fi
    sql "CREATE TABLE \"$q\" (LIKE public.orders INCLUDING ALL)"
    cat >"$work/$q.yaml" <<YAML
amqp: { urls: ["$amqp"], heartbeat_s: 30 }
postgres: { url: "$pg" }
log: { level: warn }
pipelines:
  - name: $q
    queue: $q
    workers: 2
    prefetch: 10000
    batch: { max_messages: 1000, max_delay_ms: 50 }
    table: public.$q
    mode: insert
    key: [id]
    columns: { id: /id, account: /account, amount: /amount, currency: /currency,
               payload: \$body, routing_key: \$routing_key, message_id: \$message_id }
YAML
    started=$(date +%s.%N)
    "$daemon" --config "$work/$q.yaml" >"$work/$q.log" 2>&1 &
    pid=$!
    rate=$("$bench" wait-rows --pg "$pg" --table "$q" --count "$n" --since "$started" |
        awk '/^rate/ { print $2 }')
    kill -TERM "$pid"
    wait "$pid" || { echo "daemon exited non-zero; log: $work/$q.log" >&2; exit 1; }
    printf 'queue %d  rmq2pg (2 workers, insert, from daemon start)    %8.0f msgs/s\n' $((i + 1)) "$rate"
done
