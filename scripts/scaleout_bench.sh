#!/usr/bin/env bash
# Scale-out: the same backlog drained by 1, 2 and 3 rmq2pg instances (2 workers each, mode
# ignore, competing consumers on one queue and one table), in one run, so the ratios compare.
# Usage: scripts/scaleout_bench.sh [MESSAGES]   (private servers from scripts/servers.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
scripts/servers.sh start >/dev/null
eval "$(scripts/servers.sh env)"
# shellcheck source=scripts/lib/orders_pipeline.sh
source scripts/lib/orders_pipeline.sh
work=$(mktemp -d /tmp/rmq2pg-scaleout-XXXX)
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
sql() { psql "$RMQ2PG_TEST_PG_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
printf '%-10s %10s %12s %8s\n' instances seconds "msg/s" ratio
base=""
for k in 1 2 3; do
    q="scaleout_q_$k" t="scaleout_t_$k"
    sql "DROP TABLE IF EXISTS $t; CREATE TABLE $t (id bigint PRIMARY KEY, account varchar(64),
         amount numeric(12,2), currency text, payload jsonb)"
    build/rmq2pg-publish --url "$RMQ2PG_TEST_AMQP_URL" --queue "$q" --declare-queue \
        --generate orders --count "$n" >/dev/null 2>&1
    cat >"$work/$k.yaml" <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$RMQ2PG_TEST_PG_URL" }
log: { level: warn }
pipelines:
$(orders_pipeline scaleout "$q" "public.$t" max_messages=1000 max_bytes= mode=ignore columns=core)
YAML
    start=$(date +%s.%N)
    pids=()
    for _ in $(seq 1 "$k"); do
        build/rmq2pg --config "$work/$k.yaml" >>"$work/$k.log" 2>&1 &
        pids+=($!)
    done
    until (($(sql "SELECT count(*) FROM $t") >= n)); do sleep 0.1; done
    seconds=$(echo "$(date +%s.%N) - $start" | bc)
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" || true
    rate=$(echo "$n / $seconds" | bc)
    [[ -n "$base" ]] || base=$rate
    printf '%-10s %10.2f %12s %8.2f\n' "$k" "$seconds" "$rate" "$(echo "$rate / $base" | bc -l)"
    sql "DROP TABLE $t"
done
