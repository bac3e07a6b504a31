#!/usr/bin/env bash
# The curves of docs/BENCHMARKS.md: scripts/bench.sh once per setting, each with its own
# ceilings measured in the same run, one line per run appended to a results file, then a
# Markdown table of them. About 20 minutes on the 2-core machine with one round per setting
# (RMQ2PG_CURVE_ROUNDS=3 for bench.sh's medians of three, about three times as long).
#   scripts/bench_curves.sh [RESULTS_TSV] [GROUP...]
# GROUPs: workers batch size backlog modes latency (default: all of them).
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
results=${1:-$source_dir/build/bench-curves.tsv}
shift || true
groups=("$@")
((${#groups[@]})) || groups=(workers batch size backlog modes latency)

run() {  # run LABEL BENCH_ARGS...
    local label=$1
    shift
    echo "== $label: scripts/bench.sh $*" >&2
    "$source_dir/scripts/bench.sh" --results "$results" --label "$label" \
        --rounds "${RMQ2PG_CURVE_ROUNDS:-1}" "$@" >&2
}

# The backlog runs skip the latency test; the latency group runs it at fixed offered loads.
for group in "${groups[@]}"; do
    case $group in
        workers)
            for w in 1 2 4; do run "workers=$w" --workers "$w" --latency-seconds 0; done ;;
        batch)
            for b in 100 500 2000 5000; do run "batch=$b" --batch "$b" --latency-seconds 0; done ;;
        size)
            run "size=2KB" --size 2000 --latency-seconds 0
            # 20 KB x 1000 messages would pass the 4 MiB max_bytes: batches close by bytes.
            run "size=20KB" --size 20000 --n 50000 --latency-seconds 0 ;;
        backlog)
            run "backlog=100k" --n 100000 --latency-seconds 0
            run "backlog=1M" --n 1000000 --latency-seconds 0 ;;
        modes)
            run "mode=insert" --mode insert --latency-seconds 0
            run "mode=ignore" --mode ignore --latency-seconds 0
            run "mode=upsert" --mode upsert --latency-seconds 0
            run "mode=insert+dedupe" --mode insert --dedupe message_id --latency-seconds 0 ;;
        latency)
            for r in 5000 10000 15000 20000 25000; do
                run "latency@$r" --n 20000 --latency-rate "$r" --latency-seconds 20
            done ;;
        *) echo "bench_curves: unknown group $group" >&2; exit 64 ;;
    esac
done

# The table: the columns that change between runs.
awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    NR == 2 {
        print "| run | N | body B | drain ceiling/s | COPY ceiling/s | rmq2pg/s | ÷ drain | ÷ drain with the daemon consumers | ÷ COPY | CPU µs/msg | peak RSS MiB | latency p50 / p99 (broker alone p99) ms |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    }
    {
        lat = $col["p99_ms"] == "-" ? "" : $col["p50_ms"] " / " $col["p99_ms"] " (" $col["broker_p99_ms"] ")"
        like = ("e2e_over_like" in col) ? $col["e2e_over_like"] : "-"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $col["label"], $col["n"],
            $col["size"], $col["drain_rate"], $col["copy_rate"], $col["e2e_rate"], $col["e2e_over_drain"],
            like, $col["e2e_over_copy"], $col["cpu_us_per_msg"], $col["hwm_mib"], lat
    }' "$results"
