#!/usr/bin/env bash
# One benchmark run of rmq2pg against the private loopback servers (scripts/servers.sh): publish a
# backlog, measure the broker drain and PostgreSQL COPY ceilings on the same messages, run the
# daemon over the backlog (throughput, CPU/message, peak RSS), then a paced latency test.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/bench.sh [options]
  --n N                 backlog size (default 200000)
  --rounds R            rounds of drain ceiling / drain with the daemon's consumers / daemon,
                        each over its own backlog, order reversed every other round; the table
                        shows medians and each round's figures (default 3)
  --workers W           daemon workers (default 2)
  --batch M             batch max_messages (default 1000)
  --max-delay-ms D      batch max_delay_ms (default 50)
  --max-bytes B         batch max_bytes (default 4194304, the daemon's default)
  --prefetch P          daemon prefetch per worker (default 10000)
  --mode M              insert | ignore | upsert (default insert)
  --dedupe SOURCE       the pipeline's dedupe (message_id or a JSON Pointer; needs --migrate,
                        which this script runs)
  --size BYTES          message body size (default 200)
  --latency-seconds S   paced latency test length (default 30; 0 skips it)
  --latency-rate R      offered load in msgs/s (default: fraction x min(drain, COPY) ceiling)
  --latency-fraction F  (default 0.5)
  --drain-consumers C   consumers of the drain ceiling (default 1)
  --no-ceilings         skip the drain and COPY ceilings (e.g. for the 1M RSS run)
  --smoke               N=5000, latency 3 s at 500 msgs/s: checks only exact counts
  --results FILE        append one tab-separated line of figures (header if new)
  --label TEXT          first column of that line
  --perf FILE           perf record (cpu-clock, call graphs) the daemon during the backlog
  --daemon-prefix CMD   run the daemon under CMD, e.g. "valgrind --tool=callgrind ..." (it must
                        exec the daemon in the same process, as valgrind does)
  --keep                keep the work dir (config, daemon log, table.txt) and the tables
  --step-timeout S      bound of every step (default 900)
  --build-dir DIR       (default: $RMQ2PG_BUILD_DIR or <source>/build)
Servers: RMQ2PG_TEST_AMQP_URL / RMQ2PG_TEST_PG_URL, else `scripts/servers.sh env`. Loopback only.
EOF
}

source_dir=${RMQ2PG_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build_dir=${RMQ2PG_BUILD_DIR:-$source_dir/build}
n=200000 rounds=3 workers=2 batch=1000 max_delay_ms=50 max_bytes=4194304 prefetch=10000 mode=insert size=200
latency_seconds=30 latency_rate="" latency_fraction=0.5 drain_consumers=1 ceilings=1 smoke=0
dedupe="" keep=0 results="" label="" perf_file="" daemon_prefix="" step_timeout=900
while (($#)); do
    case $1 in
        --n) n=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --workers) workers=$2; shift ;;
        --batch) batch=$2; shift ;;
        --max-delay-ms) max_delay_ms=$2; shift ;;
        --max-bytes) max_bytes=$2; shift ;;
        --prefetch) prefetch=$2; shift ;;
        --mode) mode=$2; shift ;;
        --dedupe) dedupe=$2; shift ;;
        --size) size=$2; shift ;;
        --latency-seconds) latency_seconds=$2; shift ;;
        --latency-rate) latency_rate=$2; shift ;;
        --latency-fraction) latency_fraction=$2; shift ;;
        --drain-consumers) drain_consumers=$2; shift ;;
        --no-ceilings) ceilings=0 ;;
        --keep) keep=1 ;;
        --smoke) smoke=1 n=5000 rounds=2 latency_seconds=3 latency_rate=500 ;;
        --results) results=$2; shift ;;
        --label) label=$2; shift ;;
        --perf) perf_file=$2; shift ;;
        --daemon-prefix) daemon_prefix=$2; shift ;;
        --step-timeout) step_timeout=$2; shift ;;
        --build-dir) build_dir=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench: unknown option $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done
[[ $mode =~ ^(insert|ignore|upsert)$ ]] || { echo "bench: bad --mode $mode" >&2; exit 64; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench: bad --rounds $rounds" >&2; exit 64; }

# From a fresh clone: packages and build first (skipped when the binaries exist), then the
# private servers, started here only if they are not running, and stopped again at the end.
if [[ ! -x "$build_dir/rmq2pg" || ! -x "$build_dir/rmq2pg-bench" ]]; then
    "$source_dir/scripts/deps.sh"
    BUILD_DIR=$build_dir "$source_dir/scripts/build.sh"
fi
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
export PGOPTIONS="-c client_min_messages=warning"  # no NOTICEs from DROP IF EXISTS
bench="$build_dir/rmq2pg-bench"
daemon="$build_dir/rmq2pg"
for f in "$bench" "$daemon"; do
    [[ -x "$f" ]] || { echo "bench: $f not built (cmake --build build)" >&2; exit 1; }
done

# Load generators on shared servers mislead and disturb: refuse anything but loopback.
url_host() { sed -E 's#^[a-z]+://([^@/]*@)?(\[[^]]*\]|[^:/?]*).*#\2#' <<<"$1"; }
for u in "$amqp_url" "$pg_url"; do
    case $(url_host "$u") in
        127.0.0.1 | localhost | '[::1]') ;;
        *) echo "bench: refusing a non-loopback server: $(url_host "$u")" >&2; exit 64 ;;
    esac
done

id="bench_$$"
queue="${id}_daemon"
drain_queue="${id}_drain"
table="$id"
copy_table="${id}_copy"
work=$(mktemp -d "/tmp/rmq2pg-${id}-XXXX")
daemon_log="$work/daemon.log"
daemon_pid=""
perf_pid=""

log() { printf '[%s] bench: %s\n' "$(date +%T.%3N)" "$*" >&2; }
fail() {
    log "FAIL: $*"
    [[ -f "$daemon_log" ]] && { echo "---- last daemon log lines ----" >&2; tail -n 30 "$daemon_log" >&2; }
    exit 1
}
sql() { psql "$pg_url" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
# step TIMEOUT CMD...: a bounded step; its "key value" lines are merged into fig[].
declare -A fig=()
step() {
    local out status=0
    out=$(timeout --kill-after=10 "$step_timeout" "$@") || status=$?
    while read -r k v; do [[ -n "$k" ]] && fig[$k]=$v; done <<<"$out"
    return $status
}

cleanup() {
    local status=$?
    if [[ -n "$perf_pid" ]]; then kill -INT "$perf_pid" 2>/dev/null || true; fi
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -9 "$daemon_pid" 2>/dev/null || true
    fi
    if ((keep)); then
        log "tables kept: \"$table\" (daemon), \"$copy_table\" (COPY ceiling)"
    else
        sql "DROP TABLE IF EXISTS \"$table\", \"$copy_table\"" 2>/dev/null || true
    fi
    if [[ -n "$dedupe" ]]; then
        sql "DELETE FROM rmq2pg_state.inbox WHERE pipeline = '$id'" 2>/dev/null || true
    fi
    for q in "$queue" "$drain_queue" "$queue.dead"; do
        "$source_dir/scripts/servers.sh" rabbitmqctl delete_queue -q "$q" >/dev/null 2>&1 || true
    done
    if ((status == 0 && !keep)); then rm -rf "$work"; else log "work dir kept: $work"; fi
    if ((started_servers)); then "$source_dir/scripts/servers.sh" stop >&2 || true; fi
}
trap cleanup EXIT

# The pipeline's YAML (orders_pipeline), shared with the integration tests.
# shellcheck source=scripts/lib/orders_pipeline.sh
source "$source_dir/scripts/lib/orders_pipeline.sh"
# CPU accounting per phase (cpu_begin / cpu_end): the broker, PostgreSQL, the whole machine.
# shellcheck source=scripts/cpu_accounting.sh
source "$source_dir/scripts/cpu_accounting.sh"
broker_pid=$(listener_pid "$(url_port "$amqp_url")")
pg_pid=$(listener_pid "$(url_port "$pg_url")")

# The orders table of sql/001_orders.sql (the demo's), one copy per run.
psql "$pg_url" -XAtq -v ON_ERROR_STOP=1 -f "$source_dir/sql/001_orders.sql"
create_table() {
    sql "DROP TABLE IF EXISTS \"$1\"; CREATE TABLE \"$1\" (LIKE public.orders INCLUDING ALL)"
}

cat >"$work/rmq2pg.yaml" <<YAML
amqp:
  urls: ["$amqp_url"]
  heartbeat_s: 30
postgres:
  url: "$pg_url"
shutdown_timeout_ms: 10000
log: { level: info }
retry: { initial_ms: 100, max_ms: 1000 }
pipelines:
$(orders_pipeline "$id" "$queue" "public.$table" workers="$workers" prefetch="$prefetch" \
    max_messages="$batch" max_bytes="$max_bytes" max_delay_ms="$max_delay_ms" mode="$mode" \
    extra="${dedupe:+    dedupe: $dedupe}")
YAML
if [[ -n "$dedupe" ]]; then
    "$daemon" --migrate --config "$work/rmq2pg.yaml" >>"$daemon_log" 2>&1 || fail "rmq2pg --migrate"
fi

create_table "$table"
create_table "$copy_table"
# Runs start from a clean checkpoint, so a checkpoint left over from earlier work does not land in
# the middle of this one (superuser only; skipped otherwise).
sql "CHECKPOINT" 2>/dev/null || true
log "N=$n size=${size}B workers=$workers batch=$batch prefetch=$prefetch mode=$mode${dedupe:+ dedupe=$dedupe} (work $work)"

# Each backlog is published right before it is consumed, with nothing else queued: what a
# classic queue costs the broker per delivery depends on its state (how long it sat, what else
# the broker holds: 14 vs 20 µs per message on equal 1M queues), so a ceiling measured on one
# queue and the daemon on another that waited through the ceilings compared different brokers.
publish_backlog() {
    step "$bench" publish --amqp "$amqp_url" --queues "$1" --count "$n" --size "$size" --declare ||
        fail "publish to $1"
    publish_rate=${fig[publish_rate]}
    log "published $n x ${fig[body_bytes]} B to $1 at $publish_rate msgs/s"
}

phases=()
# 1. PostgreSQL's ceiling: COPY of the same rows, chunked into transactions as the daemon batches.
if ((ceilings)); then
    cpu_begin
    step "$bench" copy --pg "$pg_url" --config "$work/rmq2pg.yaml" --table "$copy_table" \
        --count "$n" --size "$size" --workers "$workers" --batch "$batch" \
        --max-bytes "$max_bytes" || fail "copy"
    ((fig[copy_rows] == n && fig[copy1_rows] == n)) || fail "COPY wrote ${fig[copy_rows]} rows"
    cpu_end copy
    phases+=(copy)
    log "COPY ceiling: ${fig[copy_rate]} msgs/s ($workers conns x $batch rows/tx)," \
        "${fig[copy1_rate]} msgs/s as one COPY"
    # Nor may the ceiling's leftovers load the rest of the run: autovacuum of a fresh 2n-row
    # table, a checkpoint of its WAL.
    ((keep)) || sql "DROP TABLE \"$copy_table\""
    sql "CHECKPOINT" 2>/dev/null || true
fi

# 2. Rounds of three turns over equal backlogs: the broker's drain ceiling (one consumer that only
# acks, prefetch 5000, multiple-ack every 1000), the same drain with the daemon's own consumers
# (one per worker, its prefetch, an ack per batch: what the broker can deliver to the daemon's
# consumer settings at all), and the daemon. Odd rounds run them in that order, even rounds in
# the reverse, so a drift of the broker over the run favours none; the table takes medians.
declare -a drain_rates=() like_rates=() e2e_rates=() cpu_us_list=()
hwm_kib=0 others_daemon=0
phase_name() { if ((rounds > 1)); then echo "$1.$round"; else echo "$1"; fi; }
drain_turn() {  # drain_turn KIND CONSUMERS PREFETCH ACK_EVERY
    local phase
    phase=$(phase_name "$1")
    publish_backlog "$drain_queue"
    cpu_begin
    step "$bench" drain --amqp "$amqp_url" --queue "$drain_queue" --count "$n" \
        --prefetch "$3" --ack-every "$4" --consumers "$2" || fail "$1 drain"
    ((fig[drained] == n)) || fail "$1 drain: drained ${fig[drained]} of $n"
    cpu_end "$phase" 0 "$n"
    phases+=("$phase")
    if [[ $1 == drain ]]; then drain_rates+=("${fig[drain_rate]}"); else like_rates+=("${fig[drain_rate]}"); fi
    log "$1 drain ($2 consumers, prefetch $3): ${fig[drain_rate]} msgs/s (cores: ${cpu_line[$phase]})"
}
start_daemon() {
    # shellcheck disable=SC2086  # the prefix is a command line
    $daemon_prefix "$daemon" --config "$work/rmq2pg.yaml" >>"$daemon_log" 2>&1 &
    daemon_pid=$!
}
stop_daemon() {
    local status=0
    kill -TERM "$daemon_pid"
    for _ in $(seq 300); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$daemon_pid" 2>/dev/null && fail "daemon still running 30 s after SIGTERM"
    wait "$daemon_pid" || status=$?
    daemon_pid=""
    ((status == 0)) || fail "daemon exited $status"
}
# check_rows ROWS: the table holds exactly ROWS distinct ids, and after the daemon closed its
# connections nothing is left in its queue (anything unacked would be back among the ready).
check_rows() {
    [[ $(sql "SELECT count(*) || ' ' || count(DISTINCT id) FROM \"$table\"") == "$1 $1" ]] ||
        fail "rows are not exactly $1 distinct ids"
    local left
    left=$(timeout 30 "$build_dir/rmq2pg-publish" --url "$amqp_url" --stats "$queue" | cut -d' ' -f1)
    [[ $left == 0 ]] || fail "queue $queue holds $left messages after the daemon stopped"
}
daemon_turn() {
    local phase started
    phase=$(phase_name daemon)
    # The same ids every round: the table starts empty and from a clean checkpoint.
    sql "TRUNCATE \"$table\""
    sql "CHECKPOINT" 2>/dev/null || true
    publish_backlog "$queue"
    cpu_begin
    started=$(date +%s.%N)
    start_daemon
    if [[ -n "$perf_file" ]] && ((round == 1)); then
        perf record -q -e cpu-clock -F 999 -g -p "$daemon_pid" -o "$perf_file" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    step "$bench" wait-rows --pg "$pg_url" --table "$table" --count "$n" --amqp "$amqp_url" \
        --queue "$queue" --pid "$daemon_pid" --since "$started" --timeout "$step_timeout" ||
        fail "daemon wrote ${fig[rows]:-?} of $n rows"
    if [[ -n "$perf_pid" ]]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        perf_pid=""
    fi
    cpu_end "$phase" "${fig[cpu_seconds]}" "$n"
    phases+=("$phase")
    e2e_rates+=("${fig[rate]}") cpu_us_list+=("${fig[cpu_us_per_msg]}") e2e_elapsed=${fig[elapsed]}
    ((fig[vm_hwm_kib] > hwm_kib)) && hwm_kib=${fig[vm_hwm_kib]}
    others_daemon=$(awk -v a="$others_daemon" -v b="${cpu_others[$phase]}" 'BEGIN { print (b > a ? b : a) }')
    log "rmq2pg: $n rows in ${fig[elapsed]} s = ${fig[rate]} msgs/s," \
        "${fig[cpu_us_per_msg]} µs CPU/msg, VmHWM ${fig[vm_hwm_kib]} KiB (cores: ${cpu_line[$phase]})"
    stop_daemon
    check_rows "$n"
}
for ((round = 1; round <= rounds; round++)); do
    turns=(daemon)
    if ((ceilings)); then
        if ((round % 2)); then turns=(drain like daemon); else turns=(daemon like drain); fi
    fi
    for turn in "${turns[@]}"; do
        case $turn in
            drain) drain_turn drain "$drain_consumers" 5000 1000 ;;
            like) drain_turn like "$workers" "$prefetch" "$batch" ;;
            daemon) daemon_turn ;;
        esac
    done
done
e2e_rate=$(median "${e2e_rates[@]}")
cpu_us_per_msg=$(median "${cpu_us_list[@]}")
drain_rate="" like_rate=""
if ((ceilings)); then
    drain_rate=$(median "${drain_rates[@]}") like_rate=$(median "${like_rates[@]}")
fi

# 3. Latency at a steady offered load, on a fresh daemon over the table the last round filled.
latency_count=0
if [[ $latency_seconds != 0 ]]; then
    if [[ -z "$latency_rate" ]]; then
        ceiling=$e2e_rate
        ((ceilings)) && ceiling=$(awk -v a="$drain_rate" -v b="${fig[copy_rate]}" \
            'BEGIN { print (a < b ? a : b) }')
        latency_rate=$(awk -v c="$ceiling" -v f="$latency_fraction" 'BEGIN { printf "%d", c * f }')
    fi
    # wait_consumers QUEUE COUNT: until COUNT consumers are attached, so that paced messages do
    # not wait in the queue for a consumer still connecting.
    wait_consumers() {
        for _ in $(seq 300); do
            [[ $("$build_dir/rmq2pg-publish" --url "$amqp_url" --stats "$1" |
                cut -d' ' -f2) == "$2" ]] && return 0
            sleep 0.1
        done
        fail "no $2 consumers on $1 after 30 s"
    }
    # The broker's own share first: the same paced load through the drain queue to as many
    # consumers as the daemon has workers, which only ack; publish-to-delivery percentiles.
    if ((ceilings)); then
        expected=$(awk -v r="$latency_rate" -v d="$latency_seconds" 'BEGIN { printf "%d", r * d }')
        timeout --kill-after=10 "$step_timeout" "$bench" drain --amqp "$amqp_url" \
            --queue "$drain_queue" --count "$expected" --consumers "$workers" --latency \
            >"$work/broker_latency.out" &
        drain_pid=$!
        wait_consumers "$drain_queue" "$workers"
        step "$bench" publish --amqp "$amqp_url" --queues "$drain_queue" --start $((n + 1)) \
            --size "$size" --rate "$latency_rate" --duration "$latency_seconds" ||
            fail "broker latency publish"
        wait "$drain_pid" || fail "broker latency consumer"
        while read -r k v; do
            [[ $k == broker_* ]] && fig[$k]=$v
        done <"$work/broker_latency.out"
        ((fig[broker_latency_count] == expected)) ||
            fail "broker latency: ${fig[broker_latency_count]} of $expected messages"
        log "broker-only latency at $latency_rate msgs/s: p50 ${fig[broker_p50_ms]} ms," \
            "p99 ${fig[broker_p99_ms]} ms, max ${fig[broker_max_ms]} ms"
    fi
    start_daemon
    wait_consumers "$queue" "$workers"
    cpu_begin
    daemon_ticks=$(ticks "$daemon_pid")
    step "$bench" publish --amqp "$amqp_url" --queues "$queue" --start $((n + 1)) \
        --size "$size" --rate "$latency_rate" --duration "$latency_seconds" ||
        fail "latency publish"
    latency_count=${fig[published]}
    phases+=(latency)
    cpu_end latency "$(awk -v t=$(($(ticks "$daemon_pid") - daemon_ticks)) -v hz="$clk_tck" \
        'BEGIN { print t / hz }')" "$latency_count"
    step "$bench" wait-rows --pg "$pg_url" --table "$table" --count $((n + latency_count)) \
        --timeout "$step_timeout" || fail "latency rows ${fig[rows]:-?} of $((n + latency_count))"
    read -r lat_n lat_p50 lat_p99 lat_max < <(sql "
        SELECT count(*),
               round((percentile_cont(0.5) WITHIN GROUP (ORDER BY us) / 1000)::numeric, 1),
               round((percentile_cont(0.99) WITHIN GROUP (ORDER BY us) / 1000)::numeric, 1),
               round((max(us) / 1000)::numeric, 1)
          FROM (SELECT extract(epoch FROM received_at) * 1000000 - (payload->>'sent_us')::bigint
                       AS us FROM \"$table\" WHERE id > $n) l" | tr '|' ' ')
    ((lat_n == latency_count)) || fail "latency rows $lat_n, published $latency_count"
    log "latency at $latency_rate msgs/s: p50 $lat_p50 ms, p99 $lat_p99 ms, max $lat_max ms"
    # Where the time goes, per batch (rows of one transaction share xmin): how long the batch
    # collected (first to last publish), how long after its last publish its COPY began
    # (delivery + batch close + waiting for the worker's previous write), and the COPY itself.
    read -r b_count b_rows b_span50 b_span99 b_start50 b_start99 b_copy50 b_copy99 < <(sql "
        WITH b AS (
            SELECT count(*) AS n,
                   (max((payload->>'sent_us')::bigint) - min((payload->>'sent_us')::bigint))
                       / 1000.0 AS span,
                   (extract(epoch FROM min(received_at)) * 1000000
                       - max((payload->>'sent_us')::bigint)) / 1000.0 AS start,
                   extract(epoch FROM max(received_at) - min(received_at)) * 1000 AS copy
              FROM \"$table\" WHERE id > $n GROUP BY xmin::text)
        SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY n)),
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY span)::numeric, 1),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY span)::numeric, 1),
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY start)::numeric, 1),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY start)::numeric, 1),
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY copy)::numeric, 1),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY copy)::numeric, 1) FROM b" |
        tr '|' ' ')
fi

# 4. Stop, then check the counts: everything exactly once, nothing left in the queue.
[[ -n "$daemon_pid" ]] && stop_daemon
((latency_count == 0)) || check_rows $((n + latency_count))

# 5. The table.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
human() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }
hwm_mib=$(awk -v k="$hwm_kib" 'BEGIN { printf "%.1f", k / 1024 }')
cpu_us=$(awk -v c="$cpu_us_per_msg" 'BEGIN { printf "%.2f", c }')
# each VALUE...: the rounds' figures in run order, for the notes ("" with one round).
each() {
    if ((rounds > 1)); then printf '; rounds: %s' "$(for v in "$@"; do human "$v"; echo; done | paste -sd' ')"; fi
}
# round_ratios A B: the per-round ratios of arrays A and B, paired in run order.
round_ratios() {
    local -n a=$1 b=$2
    local i out=()
    for i in "${!a[@]}"; do out+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
    if ((rounds > 1)); then printf 'rounds: %s; ' "${out[*]}"; fi
}
{
    echo
    echo "rmq2pg benchmark: N=$n, body ${fig[body_bytes]} B, workers $workers, batch $batch," \
        "max_delay_ms $max_delay_ms, max_bytes $max_bytes, prefetch $prefetch, mode $mode${dedupe:+, dedupe $dedupe}"
    printf '%-44s %12s  %s\n' "measurement" "msgs/s" "notes"
    printf '%-44s %12s  %s\n' "publish, persistent, confirms" "$(human "$publish_rate")" \
        "one queue at a time, right before it is consumed"
    if ((ceilings)); then
        printf '%-44s %12s  %s\n' "drain ceiling ($drain_consumers consumer, prefetch 5000)" \
            "$(human "$drain_rate")" "ack multiple every 1000$(each "${drain_rates[@]}")"
        printf '%-44s %12s  %s\n' "drain, daemon's consumers ($workers, prefetch $prefetch)" \
            "$(human "$like_rate")" "ack multiple every $batch$(each "${like_rates[@]}")"
        printf '%-44s %12s  %s\n' "COPY ceiling ($workers conns, $batch rows/tx)" \
            "$(human "${fig[copy_rate]}")" "daemon's row mapper; chunks close like batches"
        printf '%-44s %12s  %s\n' "COPY, one transaction (reference)" \
            "$(human "${fig[copy1_rate]}")" ""
    fi
    printf '%-44s %12s  %s\n' "rmq2pg end-to-end" "$(human "$e2e_rate")" \
        "$(if ((rounds > 1)); then echo "median of $rounds$(each "${e2e_rates[@]}")"; else
            echo "$n rows in $(awk -v e="$e2e_elapsed" 'BEGIN { printf "%.2f", e }') s from daemon start"; fi)"
    if ((ceilings)); then
        printf '%-44s %12s  %s\n' "  ratio rmq2pg / drain ceiling" \
            "$(ratio "$e2e_rate" "$drain_rate")" "$(round_ratios e2e_rates drain_rates)target >= 0.9"
        printf '%-44s %12s  %s\n' "  ratio rmq2pg / drain, daemon's consumers" \
            "$(ratio "$e2e_rate" "$like_rate")" "$(round_ratios e2e_rates like_rates)the same consumers, only acking"
        printf '%-44s %12s  %s\n' "  ratio drain daemon's consumers / ceiling" \
            "$(ratio "$like_rate" "$drain_rate")" "$(round_ratios like_rates drain_rates)the broker's cost of the daemon's consumers"
        printf '%-44s %12s  %s\n' "  ratio rmq2pg / COPY ceiling" \
            "$(ratio "$e2e_rate" "${fig[copy_rate]}")" ""
    fi
    printf '%-44s %12s  %s\n' "rmq2pg CPU per message (user+sys)" "$cpu_us µs" "target <= 5 µs$(if ((rounds > 1)); then echo "; median of $rounds"; fi)"
    printf '%-44s %12s  %s\n' "rmq2pg peak RSS (VmHWM)" "$hwm_mib MiB" "target <= 64 MiB$(if ((rounds > 1)); then echo "; largest of $rounds daemons"; fi)"
    if ((latency_count > 0)); then
        printf '%-44s %12s  %s\n' "latency p99 at $latency_rate msgs/s for ${latency_seconds} s" \
            "$lat_p99 ms" "p50 $lat_p50 ms, max $lat_max ms; target p99 <= $((max_delay_ms + 20)) ms"
        printf '%-44s %12s  %s\n' "  per batch ($b_count, median $b_rows rows)" "p50 / p99" \
            "collecting $b_span50 / $b_span99 ms, last publish to COPY start $b_start50 / $b_start99 ms, COPY $b_copy50 / $b_copy99 ms"
        if [[ -n "${fig[broker_p99_ms]:-}" ]]; then
            printf '%-44s %12s  %s\n' "  broker alone (publish -> delivery), p99" \
                "$(awk -v v="${fig[broker_p99_ms]}" 'BEGIN { printf "%.1f", v }') ms" \
                "p50 $(awk -v v="${fig[broker_p50_ms]}" 'BEGIN { printf "%.1f", v }') ms, max $(awk -v v="${fig[broker_max_ms]}" 'BEGIN { printf "%.1f", v }') ms; same load, $workers consumer(s) that only ack"
        fi
    fi
    echo "cores used (CPU s / wall s):"
    for phase in "${phases[@]}"; do
        [[ -n "${cpu_line[$phase]:-}" ]] || continue
        printf '  %-8s %s\n' "$phase" "${cpu_line[$phase]}"
        if awk -v o="${cpu_others[$phase]}" 'BEGIN { exit !(o > 0.2) }'; then
            echo "  note: other processes used ${cpu_others[$phase]} cores during '$phase'" \
                "(this machine is shared): compare such figures with care"
        fi
    done
    ((smoke)) && echo "smoke run: N is too small for these figures to mean anything"
    echo "all counts exact: $n backlog rows + $latency_count latency rows, queue empty"
} | tee "$work/table.txt"

if [[ -n "$results" ]]; then
    columns=(label n size workers batch prefetch mode publish_rate drain_rate copy_rate copy1_rate
        e2e_rate e2e_over_drain e2e_over_copy cpu_us_per_msg hwm_mib latency_rate p50_ms p99_ms
        max_ms broker_p50_ms broker_p99_ms broker_max_ms others_daemon like_rate e2e_over_like)
    values=("${label:-run}" "$n" "${fig[body_bytes]}" "$workers" "$batch" "$prefetch" "$mode${dedupe:++dedupe}"
        "$(human "$publish_rate")" "$(human "${drain_rate:-0}")"
        "$(human "${fig[copy_rate]:-0}")" "$(human "${fig[copy1_rate]:-0}")" "$(human "$e2e_rate")"
        "$(ratio "$e2e_rate" "${drain_rate:-0}")" "$(ratio "$e2e_rate" "${fig[copy_rate]:-0}")"
        "$cpu_us" "$hwm_mib" "${latency_rate:--}" "${lat_p50:--}" "${lat_p99:--}" "${lat_max:--}"
        "${fig[broker_p50_ms]:--}" "${fig[broker_p99_ms]:--}" "${fig[broker_max_ms]:--}"
        "$others_daemon" "$(human "${like_rate:-0}")" "$(ratio "$e2e_rate" "${like_rate:-0}")")
    [[ -s "$results" ]] || (IFS=$'\t'; echo "${columns[*]}") >"$results"
    (IFS=$'\t'; echo "${values[*]}") >>"$results"
fi
