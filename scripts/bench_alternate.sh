#!/usr/bin/env bash
# The daemon against an ack-only consumer, turn by turn on equal backlogs, each published right
# before it is consumed with nothing else queued: what one scripts/bench.sh run cannot separate
# from the broker's own variance on large backlogs.
#   scripts/bench_alternate.sh [--n N] [--rounds R] [--kinds "KIND ..."] [--pgload-tps T]
# Default: N=1000000, 3 rounds of consumer/daemon in ABBA order (consumer daemon daemon consumer
# consumer daemon), so a drift of the broker over the run favours neither. --kinds runs the
# given turns in the given order instead; the kinds that isolate what a daemon turn adds:
#   consumer              2 consumers, prefetch 10000, multiple-ack every 1000 (the reference)
#   consumer-late         the same, pausing 10 ms without reading before each ack, as a worker
#                         does while its batch commits
#   consumer-pgload       consumer while pgbench inserts 1000-row transactions of orders-like
#                         rows (jsonb parsed per row) at --pgload-tps (default 55: the daemon's
#                         commits per second at ~55k msgs/s): PostgreSQL's work without the daemon
#   consumer-late-pgload  both
#   daemon                rmq2pg, 2 workers, prefetch 10000, batch 1000, insert
#   daemon-cheap          the same into an UNLOGGED table without indexes (less PostgreSQL work)
#   daemon-async          the same with synchronous_commit=off (no commit fsync wait)
# Any kind takes settings after slashes, to tell the broker's share from the daemon's:
#   /cN consumers (consumer kinds), /wN workers (daemon kinds), /pN prefetch, /bN batch
#   max_messages (daemon kinds), /prio consumer priorities (the first consumer or worker highest);
#   e.g. consumer/c1/p5000 is the drain ceiling of scripts/bench.sh.
# Uses the private servers (scripts/servers.sh start first) and build/. Per turn: rate, the cores
# each party used, the broker's CPU per message; then the medians of consumer and daemon turns.
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
n=1000000 rounds=3 kinds_arg="" pgload_tps=55
while (($#)); do
    case $1 in
        --n) n=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --kinds) kinds_arg=$2; shift ;;
        --pgload-tps) pgload_tps=$2; shift ;;
        *) sed -n '2,26p' "$0" >&2; exit 64 ;;
    esac
    shift
done
eval "$("$source_dir/scripts/servers.sh" env)"
amqp=$RMQ2PG_TEST_AMQP_URL pg=$RMQ2PG_TEST_PG_URL
quiet="-c client_min_messages=warning"
export PGOPTIONS=$quiet
bench=$source_dir/build/rmq2pg-bench daemon=$source_dir/build/rmq2pg
pgbench=/usr/lib/postgresql/15/bin/pgbench
# shellcheck source=scripts/cpu_accounting.sh
source "$source_dir/scripts/cpu_accounting.sh"
# shellcheck source=scripts/lib/orders_pipeline.sh
source "$source_dir/scripts/lib/orders_pipeline.sh"
broker_pid=$(listener_pid "$(url_port "$amqp")")
pg_pid=$(listener_pid "$(url_port "$pg")")
work=$(mktemp -d /tmp/rmq2pg-alternate-XXXX)
id=alt_$$
load_table=${id}_pgload
sql() { psql "$pg" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
drop_turn() {
    "$source_dir/scripts/servers.sh" rabbitmqctl delete_queue -q "$1" >/dev/null 2>&1 || true
    sql "DROP TABLE IF EXISTS \"$1\"" 2>/dev/null || true
}
current="" load_pid=""
cleanup() {
    [[ -n "$load_pid" ]] && kill "$load_pid" 2>/dev/null
    [[ -n "$current" ]] && drop_turn "$current"
    sql "DROP TABLE IF EXISTS \"$load_table\"" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
psql "$pg" -XAtq -v ON_ERROR_STOP=1 -f "$source_dir/sql/001_orders.sql"  # the table shape

if [[ -n "$kinds_arg" ]]; then
    read -ra kinds <<<"$kinds_arg"
else
    kinds=()
    for ((r = 0; r < rounds; r++)); do
        if ((r % 2 == 0)); then kinds+=(consumer daemon); else kinds+=(daemon consumer); fi
    done
fi
for spec in "${kinds[@]}"; do
    kind=${spec%%/*}
    for setting in $(tr '/' ' ' <<<"${spec#"$kind"}"); do
        [[ $setting =~ ^([cwpb][1-9][0-9]*|prio)$ ]] ||
            { echo "bench_alternate: bad setting '$setting' in '$spec' (/cN /wN /pN /bN /prio)" >&2; exit 64; }
    done
    case $kind in
        consumer | consumer-late | consumer-pgload | consumer-late-pgload) ;;
        daemon | daemon-cheap | daemon-async) ;;
        *) echo "bench_alternate: unknown kind '$kind'" >&2; exit 64 ;;
    esac
    if [[ $kind == *pgload ]] && [[ ! -x $pgbench ]]; then
        echo "bench_alternate: $kind needs $pgbench (package postgresql-15)" >&2
        exit 64
    fi
done

# One 1000-row transaction of orders-like rows, each body parsed into jsonb as the daemon's are.
cat >"$work/load.sql" <<SQL
INSERT INTO "$load_table" (account, amount, currency, payload, routing_key, message_id)
SELECT 'acct-' || (g % 1000), (g % 100000) / 100.0, 'EUR',
       ('{"id":' || g || ',"account":"acct-00012","amount":123.45,"currency":"EUR",'
        '"sent_us":1795539810324750,"items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],'
        '"note":"padding padding padding"}')::jsonb,
       'orders.created', 'm-' || g
  FROM generate_series(1, 1000) g;
SQL
start_pgload() {
    sql "DROP TABLE IF EXISTS \"$load_table\"; CREATE TABLE \"$load_table\" (LIKE public.orders INCLUDING ALL);
         ALTER TABLE \"$load_table\" ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY"
    "$pgbench" -n -c 2 -j 2 -R "$pgload_tps" -T 600 -f "$work/load.sql" "$pg" >"$work/pgbench.out" 2>&1 &
    load_pid=$!
}
stop_pgload() {
    kill -TERM "$load_pid" 2>/dev/null || true  # SIGINT is ignored by background jobs
    wait "$load_pid" || true
    load_pid=""
    sql "DROP TABLE \"$load_table\""
}

# setting LETTER SPEC DEFAULT: the value of /LETTERn in SPEC, or DEFAULT.
setting() {
    local value
    value=$(tr '/' '\n' <<<"$2" | sed -n "s/^$1\([0-9]*\)$/\1/p" | tail -1)
    echo "${value:-$3}"
}
declare -a consumer_rates=() daemon_rates=()
for i in "${!kinds[@]}"; do
    spec=${kinds[$i]} kind=${spec%%/*} q=${id}_$i
    current=$q
    publish_rate=$("$bench" publish --amqp "$amqp" --queues "$q" --count "$n" --declare |
        awk '/publish_rate/ { printf "%.0f", $2 }')
    if [[ $kind == consumer* ]]; then
        drain_options=()
        [[ $kind == consumer-late* ]] && drain_options=(--pause-ms 10 --ack-late)
        [[ $spec == */prio* ]] && drain_options+=(--priorities)
        [[ $kind == *pgload ]] && start_pgload
        cpu_begin
        rate=$("$bench" drain --amqp "$amqp" --queue "$q" --count "$n" \
            --consumers "$(setting c "$spec" 2)" --prefetch "$(setting p "$spec" 10000)" \
            "${drain_options[@]}" | awk '/drain_rate/ { print $2 }')
        cpu_end turn 0 "$n"
        [[ $kind == *pgload ]] && stop_pgload
        [[ $spec == consumer ]] && consumer_rates+=("$rate")
    else
        if [[ $kind == daemon-cheap ]]; then
            sql "CREATE UNLOGGED TABLE \"$q\" (LIKE public.orders INCLUDING DEFAULTS)"
        else
            sql "CREATE TABLE \"$q\" (LIKE public.orders INCLUDING ALL)"
        fi
        cat >"$work/$q.yaml" <<YAML
amqp: { urls: ["$amqp"], heartbeat_s: 30 }
postgres: { url: "$pg" }
log: { level: warn }
pipelines:
$(orders_pipeline "$q" "$q" "public.$q" workers="$(setting w "$spec" 2)" \
    prefetch="$(setting p "$spec" 10000)" max_messages="$(setting b "$spec" 1000)" max_bytes=)
YAML
        daemon_options=$quiet
        [[ $kind == daemon-async ]] && daemon_options="$quiet -c synchronous_commit=off"
        cpu_begin
        started=$(date +%s.%N)
        PGOPTIONS=$daemon_options "$daemon" --config "$work/$q.yaml" >"$work/$q.log" 2>&1 &
        pid=$!
        # --amqp/--queue: wait on the queue's depth, not on count(*) scans of the growing table,
        # which take the very cores the broker needs (they did: the daemon measured 0.7 of the
        # consumer with PostgreSQL at 0.65 cores, 0.9 without the scans).
        out=$("$bench" wait-rows --pg "$pg" --table "$q" --count "$n" --since "$started" \
            --amqp "$amqp" --queue "$q" --pid "$pid")
        rate=$(awk '/^rate/ { print $2 }' <<<"$out")
        cpu_end turn "$(awk '/^cpu_seconds/ { print $2 }' <<<"$out")" "$n"
        kill -TERM "$pid"
        wait "$pid" || { echo "daemon exited non-zero; log: $work/$q.log" >&2; exit 1; }
        [[ $spec == daemon ]] && daemon_rates+=("$rate")
    fi
    drop_turn "$q"
    current=""
    printf 'turn %d  %-28s %8.0f msgs/s  (published at %s/s; cores: %s)\n' $((i + 1)) "$spec" \
        "$rate" "$publish_rate" "${cpu_line[turn]}"
done
if ((${#consumer_rates[@]} && ${#daemon_rates[@]})); then
    c=$(median "${consumer_rates[@]}") d=$(median "${daemon_rates[@]}")
    awk -v c="$c" -v d="$d" -v n="$n" -v nc=${#consumer_rates[@]} -v nd=${#daemon_rates[@]} 'BEGIN {
        printf "medians (N=%d): ack-only consumer %.0f msgs/s (%d turns), rmq2pg %.0f msgs/s (%d turns), ratio %.2f\n",
            n, c, nc, d, nd, d / c }'
fi
