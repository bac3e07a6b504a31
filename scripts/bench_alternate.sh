#!/usr/bin/env bash
# The daemon against an ack-only consumer, turn by turn on equal backlogs, each published right
# before it is consumed with nothing else queued, in the order consumer, daemon, daemon,
# consumer, ... (ABBA, so a drift of the broker over the run favours neither): what one
# scripts/bench.sh run cannot separate from the broker's own variance on large backlogs.
#   scripts/bench_alternate.sh [N] [ROUNDS]   (N messages per backlog, default 1000000;
#                                              ROUNDS pairs, default 3)
# Uses the private servers (scripts/servers.sh start first) and build/. Per turn: rate, the cores
# each party used, the broker's CPU per message; then the medians and their ratio.
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
rounds=${2:-3}
eval "$("$source_dir/scripts/servers.sh" env)"
amqp=$RMQ2PG_TEST_AMQP_URL pg=$RMQ2PG_TEST_PG_URL
export PGOPTIONS="-c client_min_messages=warning"
bench=$source_dir/build/rmq2pg-bench daemon=$source_dir/build/rmq2pg
# shellcheck source=scripts/cpu_accounting.sh
source "$source_dir/scripts/cpu_accounting.sh"
broker_pid=$(listener_pid "$(url_port "$amqp")")
pg_pid=$(listener_pid "$(url_port "$pg")")
work=$(mktemp -d /tmp/rmq2pg-alternate-XXXX)
id=alt_$$
sql() { psql "$pg" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
drop_turn() {
    "$source_dir/scripts/servers.sh" rabbitmqctl delete_queue -q "$1" >/dev/null 2>&1 || true
    sql "DROP TABLE IF EXISTS \"$1\"" 2>/dev/null || true
}
current=""
cleanup() {
    [[ -n "$current" ]] && drop_turn "$current"
    rm -rf "$work"
}
trap cleanup EXIT
psql "$pg" -XAtq -v ON_ERROR_STOP=1 -f "$source_dir/sql/001_orders.sql"  # the table shape

kinds=()
for ((r = 0; r < rounds; r++)); do
    if ((r % 2 == 0)); then kinds+=(consumer daemon); else kinds+=(daemon consumer); fi
done
declare -a consumer_rates=() daemon_rates=()
for i in "${!kinds[@]}"; do
    kind=${kinds[$i]} q=${id}_$i
    current=$q
    publish_rate=$("$bench" publish --amqp "$amqp" --queues "$q" --count "$n" --declare |
        awk '/publish_rate/ { printf "%.0f", $2 }')
    if [[ $kind == consumer ]]; then
        cpu_begin
        rate=$("$bench" drain --amqp "$amqp" --queue "$q" --count "$n" --consumers 2 \
            --prefetch 10000 | awk '/drain_rate/ { print $2 }')
        cpu_end turn 0 "$n"
        consumer_rates+=("$rate")
        what="ack-only consumer (2 consumers, prefetch 10000)"
    else
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
        cpu_begin
        started=$(date +%s.%N)
        "$daemon" --config "$work/$q.yaml" >"$work/$q.log" 2>&1 &
        pid=$!
        # --amqp/--queue: wait on the queue's depth, not on count(*) scans of the growing table,
        # which would take the very cores the broker needs (it did: 0.7 of the consumer's rate
        # with PostgreSQL at 0.65 cores, 0.9-1.3 without the scans).
        out=$("$bench" wait-rows --pg "$pg" --table "$q" --count "$n" --since "$started" \
            --amqp "$amqp" --queue "$q" --pid "$pid")
        rate=$(awk '/^rate/ { print $2 }' <<<"$out")
        cpu_end turn "$(awk '/^cpu_seconds/ { print $2 }' <<<"$out")" "$n"
        kill -TERM "$pid"
        wait "$pid" || { echo "daemon exited non-zero; log: $work/$q.log" >&2; exit 1; }
        daemon_rates+=("$rate")
        what="rmq2pg (2 workers, insert, from daemon start)"
    fi
    drop_turn "$q"
    current=""
    printf 'turn %d  %-48s %8.0f msgs/s  (published at %s/s; cores: %s)\n' $((i + 1)) "$what" \
        "$rate" "$publish_rate" "${cpu_line[turn]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
c=$(median "${consumer_rates[@]}") d=$(median "${daemon_rates[@]}")
awk -v c="$c" -v d="$d" -v n="$n" -v r="$rounds" 'BEGIN {
    printf "medians over %d turns each (N=%d): ack-only consumer %.0f msgs/s, rmq2pg %.0f msgs/s, ratio %.2f\n",
        r, n, c, d, d / c }'
