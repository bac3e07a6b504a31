#!/usr/bin/env bash
# The latency curve (issue 19, benchmark d): at each offered load, the broker alone and rmq2pg side
# by side on the private loopback servers, and the latency rmq2pg ADDS to the broker's at p99.
# Broker alone: a paced publisher stamps each body with its publish time ("sent_us"); ack-only
# consumers (as many as the daemon has workers) take publish -> delivery. rmq2pg: the same paced
# load into the daemon's queue; publish -> row written is the table's clock_timestamp() default
# (received_at, set as the row is COPYed, just before COMMIT) minus sent_us. One host, one clock.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/latency_bench.sh [options]
  --rates "R1 R2..."   offered loads in msgs/s (default "1000 5000 10000 20000")
  --seconds S          paced publish length per load and side (default 20)
  --workers W          daemon workers, and ack-only consumers of the broker-alone side (default 1)
  --batch M            batch max_messages (default 1000)
  --max-delay-ms D     batch max_delay_ms (default 50)
  --prefetch P         daemon prefetch per worker (default 10000)
  --size BYTES         message body size (default 200)
  --keep               keep the work dir and the table
  --build-dir DIR      (default: $RMQ2PG_BUILD_DIR or <source>/build)
Servers: RMQ2PG_TEST_AMQP_URL / RMQ2PG_TEST_PG_URL, else `scripts/servers.sh env`. Loopback only.
The target (issue 19): added p99 <= max_delay_ms + 15 ms at every load where the broker's own p99
is under 50 ms.
EOF
}

source_dir=${RMQ2PG_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build_dir=${RMQ2PG_BUILD_DIR:-$source_dir/build}
rates="1000 5000 10000 20000" seconds=20 workers=1 batch=1000 max_delay_ms=50 prefetch=10000
size=200 keep=0
while (($#)); do
    case $1 in
        --rates) rates=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --workers) workers=$2; shift ;;
        --batch) batch=$2; shift ;;
        --max-delay-ms) max_delay_ms=$2; shift ;;
        --prefetch) prefetch=$2; shift ;;
        --size) size=$2; shift ;;
        --keep) keep=1 ;;
        --build-dir) build_dir=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "latency_bench: unknown option $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done

started_servers=0
if [[ -z "${RMQ2PG_TEST_AMQP_URL:-}" || -z "${RMQ2PG_TEST_PG_URL:-}" ]]; then
    if ! "$source_dir/scripts/servers.sh" status >/dev/null 2>&1; then
        "$source_dir/scripts/servers.sh" start >&2
        started_servers=1
    fi
    eval "$("$source_dir/scripts/servers.sh" env)"
fi
amqp_url=$RMQ2PG_TEST_AMQP_URL
pg_url=$RMQ2PG_TEST_PG_URL
export PGCONNECT_TIMEOUT=5
export PGOPTIONS="-c client_min_messages=warning"
bench="$build_dir/rmq2pg-bench"
daemon="$build_dir/rmq2pg"
publish_tool="$build_dir/rmq2pg-publish"
for f in "$bench" "$daemon" "$publish_tool"; do
    [[ -x "$f" ]] || { echo "latency_bench: $f not built (cmake --build build)" >&2; exit 1; }
done
url_host() { sed -E 's#^[a-z]+://([^@/]*@)?(\[[^]]*\]|[^:/?]*).*#\2#' <<<"$1"; }
for u in "$amqp_url" "$pg_url"; do
    case $(url_host "$u") in
        127.0.0.1 | localhost | '[::1]') ;;
        *) echo "latency_bench: refusing a non-loopback server: $(url_host "$u")" >&2; exit 64 ;;
    esac
done

id="latency_$$"
queue="${id}_daemon"
drain_queue="${id}_drain"
table="$id"
work=$(mktemp -d "/tmp/rmq2pg-${id}-XXXX")
daemon_log="$work/daemon.log"
daemon_pid=""
step_timeout=$((seconds * 3 + 120))

log() { printf '[%s] latency_bench: %s\n' "$(date +%T.%3N)" "$*" >&2; }
fail() {
    log "FAIL: $*"
    [[ -f "$daemon_log" ]] && { echo "---- last daemon log lines ----" >&2; tail -n 30 "$daemon_log" >&2; }
    exit 1
}
sql() { psql "$pg_url" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
declare -A fig=()
step() {
    local out status=0
    out=$(timeout --kill-after=10 "$step_timeout" "$@") || status=$?
    while read -r k v; do [[ -n "$k" ]] && fig[$k]=$v; done <<<"$out"
    return $status
}
cleanup() {
    local status=$?
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then kill -9 "$daemon_pid" || true; fi
    ((keep)) || sql "DROP TABLE IF EXISTS \"$table\"" 2>/dev/null || true
    for q in "$queue" "$drain_queue" "$queue.dead"; do
        "$source_dir/scripts/servers.sh" rabbitmqctl delete_queue -q "$q" >/dev/null 2>&1 || true
    done
    if ((status == 0 && !keep)); then rm -rf "$work"; else log "work dir kept: $work"; fi
    if ((started_servers)); then "$source_dir/scripts/servers.sh" stop >&2 || true; fi
}
trap cleanup EXIT

# shellcheck source=scripts/lib/orders_pipeline.sh
source "$source_dir/scripts/lib/orders_pipeline.sh"
psql "$pg_url" -XAtq -v ON_ERROR_STOP=1 -f "$source_dir/sql/001_orders.sql"
sql "DROP TABLE IF EXISTS \"$table\"; CREATE TABLE \"$table\" (LIKE public.orders INCLUDING ALL)"
cat >"$work/rmq2pg.yaml" <<YAML
amqp:
  urls: ["$amqp_url"]
postgres:
  url: "$pg_url"
log: { level: info }
pipelines:
$(orders_pipeline "$id" "$queue" "public.$table" workers="$workers" prefetch="$prefetch" \
    max_messages="$batch" max_bytes="" max_delay_ms="$max_delay_ms")
YAML
"$bench" publish --amqp "$amqp_url" --queues "$drain_queue,$queue" --count 0 --declare >/dev/null ||
    fail "declare the queues"

# wait_consumers QUEUE COUNT: paced messages must not wait in the queue for a consumer still
# connecting.
wait_consumers() {
    for _ in $(seq 300); do
        [[ $("$publish_tool" --url "$amqp_url" --stats "$1" | cut -d' ' -f2) == "$2" ]] && return 0
        sleep 0.1
    done
    fail "no $2 consumers on $1 after 30 s"
}
# The daemon runs through all loads, started once: what is measured is the steady state.
"$daemon" --config "$work/rmq2pg.yaml" >>"$daemon_log" 2>&1 &
daemon_pid=$!
wait_consumers "$queue" "$workers"
log "rates: $rates msgs/s, ${seconds} s each; workers $workers, batch $batch, max_delay_ms $max_delay_ms"

ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v }'; }
rows=()
start=1 total=0
for rate in $rates; do
    expected=$(awk -v r="$rate" -v d="$seconds" 'BEGIN { printf "%d", r * d }')
    # 1. The broker alone.
    timeout --kill-after=10 "$step_timeout" "$bench" drain --amqp "$amqp_url" --queue "$drain_queue" \
        --count "$expected" --consumers "$workers" --prefetch "$prefetch" --ack-every 100 --latency \
        >"$work/broker.out" &
    drain_pid=$!
    wait_consumers "$drain_queue" "$workers"
    step "$bench" publish --amqp "$amqp_url" --queues "$drain_queue" --start "$start" \
        --size "$size" --rate "$rate" --duration "$seconds" || fail "broker publish at $rate"
    wait "$drain_pid" || fail "broker consumer at $rate"
    while read -r k v; do [[ $k == broker_* ]] && fig[$k]=$v; done <"$work/broker.out"
    ((fig[broker_latency_count] == expected)) ||
        fail "broker alone at $rate: ${fig[broker_latency_count]} of $expected messages"
    b50=$(ms "${fig[broker_p50_ms]}") b99=$(ms "${fig[broker_p99_ms]}") bmax=$(ms "${fig[broker_max_ms]}")
    log "$rate msgs/s, broker alone: p50 $b50 ms, p99 $b99 ms, max $bmax ms"
    # 2. rmq2pg, the same load.
    step "$bench" publish --amqp "$amqp_url" --queues "$queue" --start "$start" \
        --size "$size" --rate "$rate" --duration "$seconds" || fail "rmq2pg publish at $rate"
    published=${fig[published]}
    total=$((total + published))
    step "$bench" wait-rows --pg "$pg_url" --table "$table" --count "$total" \
        --timeout "$step_timeout" || fail "rows ${fig[rows]:-?} of $total at $rate"
    read -r n r50 r99 rmax batches batch_rows < <(sql "
        WITH l AS (SELECT xmin::text AS tx,
                          extract(epoch FROM received_at) * 1000000
                              - (payload->>'sent_us')::bigint AS us
                     FROM \"$table\" WHERE id >= $start AND id < $((start + published)))
        SELECT count(*),
               round((percentile_cont(0.5) WITHIN GROUP (ORDER BY us) / 1000)::numeric, 1),
               round((percentile_cont(0.99) WITHIN GROUP (ORDER BY us) / 1000)::numeric, 1),
               round((max(us) / 1000)::numeric, 1), count(DISTINCT tx),
               round(count(*)::numeric / greatest(count(DISTINCT tx), 1)) FROM l" | tr '|' ' ')
    ((n == published)) || fail "$n rows of $published at $rate"
    added=$(awk -v a="$r99" -v b="$b99" 'BEGIN { printf "%.1f", a - b }')
    verdict=$(awk -v a="$added" -v b="$b99" -v t=$((max_delay_ms + 15)) \
        'BEGIN { if (b >= 50) print "n/a (broker p99 >= 50 ms)"; else if (a <= t) print "yes"; else print "NO" }')
    log "$rate msgs/s, rmq2pg: p50 $r50 ms, p99 $r99 ms, max $rmax ms; added p99 $added ms" \
        "($batches batches of ~$batch_rows rows)"
    rows+=("$rate|$b50|$b99|$bmax|$r50|$r99|$rmax|$added|$batches x ~$batch_rows|$verdict")
    start=$((start + 10000000))
done

# SIGTERM: the daemon drains and exits 0; then nothing may be left in its queue.
kill -TERM "$daemon_pid"
for _ in $(seq 300); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon_pid" 2>/dev/null && fail "daemon still running 30 s after SIGTERM"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
((status == 0)) || fail "daemon exited $status"
left=$(timeout 30 "$publish_tool" --url "$amqp_url" --stats "$queue" | cut -d' ' -f1)
[[ $left == 0 ]] || fail "queue $queue holds $left messages after the daemon stopped"

{
    echo
    echo "latency curve: body ${size} B, ${seconds} s per load, workers $workers, batch $batch," \
        "max_delay_ms $max_delay_ms, prefetch $prefetch (target: added p99 <= $((max_delay_ms + 15)) ms" \
        "where the broker's p99 < 50 ms)"
    echo "| offered msgs/s | broker p50 | broker p99 | broker max | rmq2pg p50 | rmq2pg p99 | rmq2pg max | added p99 | batches | target met |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    for r in "${rows[@]}"; do echo "| ${r//|/ | } |"; done
    echo "(ms; broker: publish -> delivery to $workers ack-only consumer(s); rmq2pg: publish -> row" \
        "written, received_at minus sent_us)"
} | tee "$work/table.txt"
