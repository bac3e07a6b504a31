#!/usr/bin/env bash
# The bounded PostgreSQL pool (postgres.pool_size) with many pipelines, in one run so the ratios
# compare: (a) one busy pipeline among idle ones vs alone, (b) every pipeline busy vs one
# pipeline carrying the same total, (c) RSS and threads of an idle daemon by pipeline count,
# (d) fairness: end-to-end latency of a 10 msg/s trickle pipeline while a busy one drains a
# backlog, on a pool smaller than their workers.
# Usage: scripts/pool_bench.sh [MESSAGES] [BACKLOG]   (private servers from scripts/servers.sh)
#   MESSAGES  rows of (a) and (b) (default 200000); BACKLOG  the busy pipeline's backlog in (d)
#   (default 300000). POOL_BENCH_SIZES overrides (c)'s pipeline counts ("1 50 200 1000"),
#   POOL_BENCH_PARTS which parts run ("a b c d"; b compares with a).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
backlog=${2:-300000}
sizes=${POOL_BENCH_SIZES:-1 50 200 1000}
scripts/servers.sh start >/dev/null
eval "$(scripts/servers.sh env)"
# shellcheck source=scripts/lib/orders_pipeline.sh
source scripts/lib/orders_pipeline.sh
work=$(mktemp -d /tmp/rmq2pg-poolbench-XXXX)
daemon=""
trap '[[ -z $daemon ]] || kill -9 "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
sql() { PGOPTIONS="-c client_min_messages=warning" psql "$RMQ2PG_TEST_PG_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
bench() { build/rmq2pg-bench "$@"; }
value() { awk -v k="$1" '$1 == k { print $2 }'; }

# tables K: pb_t_1..K (received_at: when the row was written). The queues pb_q_1..K are left
# empty by each phase (it waits for every row, then stops the daemon, which acked them all).
tables() {
    sql "DO \$\$ BEGIN FOR i IN 1..$1 LOOP
           EXECUTE format('DROP TABLE IF EXISTS pb_t_%s; CREATE TABLE pb_t_%s (id bigint
             PRIMARY KEY, account varchar(64), amount numeric(12,2), currency text,
             payload jsonb, received_at timestamptz NOT NULL DEFAULT clock_timestamp())', i, i);
         END LOOP; END \$\$"
}
queues() { # queues FROM TO: comma-separated names
    local i out=""
    for ((i = $1; i <= $2; i++)); do out+="${out:+,}pb_q_$i"; done
    echo "$out"
}
# config K POOL [WORKERS_OF_1] [WORKERS_OF_OTHERS] [POOL_RESERVE]
config() {
    local k=$1 pool=$2 w1=${3:-2} wo=${4:-1} reserve=${5:-1} i
    {
        echo "amqp: { urls: [\"$RMQ2PG_TEST_AMQP_URL\"] }"
        echo "postgres: { url: \"$RMQ2PG_TEST_PG_URL\", pool_size: $pool, pool_reserve: $reserve }"
        echo "log: { level: warn }"
        echo "pipelines:"
        for ((i = 1; i <= k; i++)); do
            orders_pipeline "pb_$i" "pb_q_$i" "public.pb_t_$i" mode=ignore columns=core \
                max_messages=1000 max_bytes= workers="$([[ $i == 1 ]] && echo "$w1" || echo "$wo")" \
                prefetch="$([[ $i == 1 ]] && echo 2000 || echo 1000)"
        done
    } >"$work/rmq2pg.yaml"
}
start() {
    build/rmq2pg --config "$work/rmq2pg.yaml" >>"$work/daemon.log" 2>&1 &
    daemon=$!
}
stop() {
    kill -TERM "$daemon"
    wait "$daemon" || true
    daemon=""
}
# rows_of FROM TO: rows in pb_t_FROM..pb_t_TO
rows_of() {
    local i q="SELECT 0"
    for ((i = $1; i <= $2; i++)); do q+=" + (SELECT count(*) FROM pb_t_$i)"; done
    sql "$q"
}
wait_rows() { # wait_rows FROM TO COUNT
    local deadline=$((SECONDS + 300))
    until (($(rows_of "$1" "$2") >= $3)); do
        [[ -z $daemon ]] || kill -0 "$daemon" 2>/dev/null || {
            echo "the daemon exited: $(tail -3 "$work/daemon.log")" >&2
            exit 1
        }
        ((SECONDS < deadline)) || {
            echo "timed out waiting for $3 rows" >&2
            exit 1
        }
        sleep 0.5
    done
}
# rate FROM TO: rows per second between the first and the last row written
rate() {
    local i q="" parts=""
    for ((i = $1; i <= $2; i++)); do parts+="${parts:+ UNION ALL }SELECT received_at FROM pb_t_$i"; done
    q="SELECT round(count(*) / extract(epoch FROM max(received_at) - min(received_at))) FROM ($parts) r"
    sql "$q"
}

runs() { [[ " ${POOL_BENCH_PARTS:-a b c d} " == *" $1 "* ]]; }

echo "# pool_bench: messages $n, backlog $backlog, $(nproc) cores (shared machine: figures are noisy)"

if runs a; then
# (a) one busy pipeline alone (2 workers, a connection each) vs the same among 199 idle ones
# (1 worker each, 201 workers on pool_size 16).
tables 200
bench publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues pb_q_1 --count "$n" --declare >/dev/null
config 1 16
start
wait_rows 1 1 "$n"
stop
alone=$(rate 1 1)
tables 200
bench publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues pb_q_1 --count "$n" --declare >/dev/null
bench publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues "$(queues 2 200)" --count 0 --declare >/dev/null
config 200 16
start
wait_rows 1 1 "$n"
stop
among=$(rate 1 1)
echo "(a) one busy pipeline: alone $alone msg/s, among 199 idle (pool_size 16) $among msg/s," \
    "ratio $(echo "scale=2; $among / $alone" | bc)"
fi

if runs b && runs a; then
# (b) 200 pipelines all busy (n/200 each, 1 worker each, pool_size 16) vs (a)'s one pipeline.
tables 200
bench publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues "$(queues 1 200)" --count $((n / 200)) \
    --declare >/dev/null
config 200 16 1 1
start
wait_rows 1 200 $((n / 200 * 200))
stop
all=$(rate 1 200)
echo "(b) 200 pipelines all busy: total $all msg/s vs one pipeline alone $alone msg/s," \
    "ratio $(echo "scale=2; $all / $alone" | bc)"
fi

if runs c; then
# (c) an idle daemon: RSS and threads by pipeline count, once every worker is consuming.
for k in $sizes; do
    tables "$k"
    bench publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues "$(queues 1 "$k")" --count 0 \
        --declare >/dev/null
    config "$k" 16 1 1
    sed -i "s/^log: { level: warn }/log: { level: warn }\nhttp: { listen: \"127.0.0.1:39187\" }/" \
        "$work/rmq2pg.yaml"
    start
    deadline=$((SECONDS + 600))
    until curl -sf http://127.0.0.1:39187/readyz >/dev/null 2>&1; do
        ((SECONDS < deadline)) || break
        sleep 1
    done
    sleep 2
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$daemon/status")
    threads=$(awk '/^Threads/ { print $2 }' "/proc/$daemon/status")
    pg=$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'rmq2pg%'")
    amqp=$(ss -Htnp state established "( dport = :$RMQ2PG_TEST_AMQP_PORT )" 2>/dev/null |
        grep -c "pid=$daemon," || true)
    echo "(c) $k pipelines: RSS $((rss / 1024)) MiB, $threads threads, $pg PostgreSQL connections," \
        "$amqp AMQP connections" \
        "(ready: $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:39187/readyz))"
    stop
done
fi

if runs d; then
# (d) fairness: pipeline 1 (2 workers) drains a backlog while pipeline 2 (1 worker) gets
# 10 msg/s for 30 s; pool_size 2 < 3 workers, so they share connections. Trickle latency: publish
# (sent_us in the body) to row (received_at), p50/p99, against max_delay_ms (50) + 100 ms. Twice
# in one run: pool_reserve 0 (no connection kept for pipelines holding none: the trickle's batch
# may queue behind the busy pipeline's transactions) and the default pool_reserve 1. The busy
# backlog must outlast the trickle; what is left of it when the trickle ends is deleted.
fairness() { # fairness RESERVE: prints "p50 p99 max busy_rate busy_left"
    local p50 p99 worst left busy_rate
    tables 2
    scripts/servers.sh rabbitmqctl delete_queue -q pb_q_1 >/dev/null 2>&1 || true
    bench publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues pb_q_1 --count "$backlog" --declare \
        >/dev/null
    bench publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues pb_q_2 --count 0 --declare >/dev/null
    config 2 2 2 1 "$1"
    start
    sleep 3
    bench publish --amqp "$RMQ2PG_TEST_AMQP_URL" --queues pb_q_2 --rate 10 --duration 30 >/dev/null
    wait_rows 2 2 300
    left=$((backlog - $(rows_of 1 1)))
    stop
    busy_rate=$(rate 1 1)
    read -r p50 p99 worst <<<"$(sql "SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY us) / 1000)::numeric, 1),
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY us) / 1000)::numeric, 1),
           round((max(us) / 1000)::numeric, 1)
      FROM (SELECT extract(epoch FROM received_at) * 1000000 - (payload->>'sent_us')::bigint AS us
              FROM pb_t_2) l" | tr '|' ' ')"
    echo "$p50 $p99 $worst $busy_rate $left"
}
read -r f0_p50 f0_p99 f0_max f0_rate f0_left <<<"$(fairness 0)"
echo "(d) pool_reserve 0: trickle 10 msg/s beside a $backlog backlog (pool_size 2, 3 workers):" \
    "latency p50 $f0_p50 ms, p99 $f0_p99 ms, max $f0_max ms; busy drained at $f0_rate msg/s," \
    "$f0_left left when the trickle ended"
read -r f1_p50 f1_p99 f1_max f1_rate f1_left <<<"$(fairness 1)"
echo "(d) pool_reserve 1: trickle 10 msg/s beside a $backlog backlog (pool_size 2, 3 workers):" \
    "latency p50 $f1_p50 ms, p99 $f1_p99 ms, max $f1_max ms; busy drained at $f1_rate msg/s," \
    "$f1_left left when the trickle ended"
echo "(d) trickle p99 reserve 1 / reserve 0: $(echo "scale=2; $f1_p99 / $f0_p99" | bc)" \
    "(target p99 <= 150 ms: $(awk -v p="$f1_p99" 'BEGIN { print (p <= 150 ? "met" : "NOT met") }'));" \
    "busy rate reserve 1 / reserve 0: $(echo "scale=2; $f1_rate / $f0_rate" | bc)"
scripts/servers.sh rabbitmqctl delete_queue -q pb_q_1 >/dev/null 2>&1 || true
fi
