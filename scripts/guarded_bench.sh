#!/usr/bin/env bash
# Guarded vs plain upserts (issue 19, benchmark f): the same backlog of changes to the same keys,
# drained by 1, 2 and 4 workers of one pipeline, once as a plain upsert and once with a version
# guard (`version:`), on the private loopback servers. Prints both rates and guarded / plain per
# worker count, and checks the guarded table exactly: every key at its highest version.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/guarded_bench.sh [options]
  --n N              changes per turn (default 200000)
  --keys K           distinct keys they change, in turn: id 1..K, 1..K, ... (default 5000)
  --workers "1 2 4"  worker counts (default "1 2 4")
  --batch M          batch max_messages (default 1000)
  --rounds R         turns of each kind per worker count; the table shows medians (default 1)
  --daemon PATH      the daemon to measure (default <build>/rmq2pg), e.g. an older build
  --build-dir DIR    (default: $RMQ2PG_BUILD_DIR or <source>/build)
Servers: RMQ2PG_TEST_AMQP_URL / RMQ2PG_TEST_PG_URL, else `scripts/servers.sh env`. Loopback only.
EOF
}

source_dir=${RMQ2PG_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build_dir=${RMQ2PG_BUILD_DIR:-$source_dir/build}
n=200000 keys=5000 worker_counts="1 2 4" batch=1000 rounds=1 daemon=""
while (($#)); do
    case $1 in
        --n) n=$2; shift ;;
        --keys) keys=$2; shift ;;
        --workers) worker_counts=$2; shift ;;
        --batch) batch=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --daemon) daemon=$2; shift ;;
        --build-dir) build_dir=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "guarded_bench: unknown option $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done
((n % keys == 0)) || { echo "guarded_bench: --n must be a multiple of --keys" >&2; exit 64; }

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
daemon=${daemon:-$build_dir/rmq2pg}
publish_tool="$build_dir/rmq2pg-publish"
for f in "$bench" "$daemon" "$publish_tool"; do
    [[ -x "$f" ]] || { echo "guarded_bench: $f not built (cmake --build build)" >&2; exit 1; }
done
url_host() { sed -E 's#^[a-z]+://([^@/]*@)?(\[[^]]*\]|[^:/?]*).*#\2#' <<<"$1"; }
for u in "$amqp_url" "$pg_url"; do
    case $(url_host "$u") in
        127.0.0.1 | localhost | '[::1]') ;;
        *) echo "guarded_bench: refusing a non-loopback server: $(url_host "$u")" >&2; exit 64 ;;
    esac
done

id="guarded_$$"
queue="${id}_q"
table="$id"
work=$(mktemp -d "/tmp/rmq2pg-${id}-XXXX")
daemon_log="$work/daemon.log"
daemon_pid=""
http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

log() { printf '[%s] guarded_bench: %s\n' "$(date +%T.%3N)" "$*" >&2; }
fail() {
    log "FAIL: $*"
    [[ -f "$daemon_log" ]] && { echo "---- last daemon log lines ----" >&2; tail -n 30 "$daemon_log" >&2; }
    exit 1
}
sql() { psql "$pg_url" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
cleanup() {
    local status=$?
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then kill -9 "$daemon_pid" || true; fi
    sql "DROP TABLE IF EXISTS \"$table\"" 2>/dev/null || true
    "$source_dir/scripts/servers.sh" rabbitmqctl delete_queue -q "$queue" >/dev/null 2>&1 || true
    "$source_dir/scripts/servers.sh" rabbitmqctl delete_queue -q "$queue.dead" >/dev/null 2>&1 || true
    if ((status == 0)); then rm -rf "$work"; else log "work dir kept: $work"; fi
    if ((started_servers)); then "$source_dir/scripts/servers.sh" stop >&2 || true; fi
}
trap cleanup EXIT

# shellcheck source=scripts/lib/orders_pipeline.sh
source "$source_dir/scripts/lib/orders_pipeline.sh"
# shellcheck source=scripts/cpu_accounting.sh
source "$source_dir/scripts/cpu_accounting.sh"  # median
psql "$pg_url" -XAtq -v ON_ERROR_STOP=1 -f "$source_dir/sql/001_orders.sql"
sql "DROP TABLE IF EXISTS \"$table\"; CREATE TABLE \"$table\" (LIKE public.orders INCLUDING ALL);
     ALTER TABLE \"$table\" ADD COLUMN version bigint"

# config KIND WORKERS: the pipeline, plain or with the version guard.
config() {
    local extra="      version: /version"
    [[ $1 == guarded ]] && extra+=$'\n'"    version: version"
    cat <<YAML
amqp:
  urls: ["$amqp_url"]
postgres:
  url: "$pg_url"
http: { listen: "127.0.0.1:$http_port" }
log: { level: info }
pipelines:
$(orders_pipeline "$id" "$queue" "public.$table" workers="$2" prefetch=5000 mode=upsert \
        max_messages="$batch" max_bytes="" max_delay_ms=50 extra="$extra")
YAML
}
committed() {
    curl -sf --max-time 2 "http://127.0.0.1:$http_port/metrics" |
        awk '/^rmq2pg_messages_committed_total/ { s += $NF } END { print s + 0 }'
}

# turn KIND WORKERS: sets turn_rate and turn_stale. Publish the backlog, then the daemon drains it; the rate is counted between
# the first commit seen and the last (metrics polled every 50 ms), so start-up is left out.
turn() {
    local kind=$1 w=$2 c first_c="" t0="" t1 rate stale
    config "$kind" "$w" >"$work/rmq2pg.yaml"
    sql "TRUNCATE \"$table\""
    timeout 600 "$bench" publish --amqp "$amqp_url" --queues "$queue" --count "$n" \
        --keys "$keys" --declare >/dev/null || fail "publish"
    "$daemon" --config "$work/rmq2pg.yaml" >>"$daemon_log" 2>&1 &
    daemon_pid=$!
    local deadline=$((SECONDS + 600))
    while :; do
        c=$(committed || echo 0)
        if [[ -z "$t0" ]] && ((c > 0)); then t0=$(date +%s.%N) first_c=$c; fi
        ((c >= n)) && break
        ((SECONDS < deadline)) || fail "$kind, $w workers: $c of $n committed after 600 s"
        kill -0 "$daemon_pid" 2>/dev/null || fail "daemon died"
        sleep 0.05
    done
    t1=$(date +%s.%N)
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" || fail "daemon exited $?"
    daemon_pid=""
    rate=$(awk -v n="$n" -v c="$first_c" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (n - c) / (b - a) }')
    # The highest version of key k is n - keys + k; plain upserts may leave an older one.
    stale=$(sql "SELECT $keys - count(*) FILTER (WHERE version = $((n - keys)) + id) FROM \"$table\"")
    [[ $kind == plain ]] || ((stale == 0)) || fail "guarded, $w workers: $stale keys not at their highest version"
    [[ $(sql "SELECT count(*) FROM \"$table\"") == "$keys" ]] || fail "$kind: not $keys rows"
    log "$kind, $w workers: $rate msgs/s ($stale keys not at their highest version)"
    turn_rate=$rate turn_stale=$stale
}

lines=()
for w in $worker_counts; do
    plain=() guarded=() stale_plain=0
    for ((round = 1; round <= rounds; round++)); do
        kinds=(plain guarded)
        ((round % 2)) || kinds=(guarded plain)
        for kind in "${kinds[@]}"; do
            turn "$kind" "$w"
            if [[ $kind == plain ]]; then
                plain+=("$turn_rate") stale_plain=$turn_stale
            else
                guarded+=("$turn_rate")
            fi
        done
    done
    p=$(median "${plain[@]}") g=$(median "${guarded[@]}")
    lines+=("$w|$p|$g|$(awk -v g="$g" -v p="$p" 'BEGIN { printf "%.2f", g / p }')|$stale_plain|${plain[*]} / ${guarded[*]}")
done
{
    echo
    echo "guarded vs plain upsert: $n changes over $keys keys, batch $batch, daemon $daemon"
    echo "| workers | plain msgs/s | guarded msgs/s | guarded / plain | plain: keys left at an older version | rounds (plain / guarded) |"
    echo "|---:|---:|---:|---:|---:|---|"
    for l in "${lines[@]}"; do echo "| ${l//|/ | } |"; done
} | tee "$work/table.txt"
