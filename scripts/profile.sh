#!/usr/bin/env bash
# Instructions per message of the daemon, counted by valgrind's callgrind (the same on every run,
# unlike times): the daemon drains N1 and then N2 messages under callgrind (scripts/bench.sh
# --daemon-prefix), and the difference of the two totals divided by N2 - N1 is the cost of one
# message without start-up (the SCRAM login alone is ~140 million instructions). Prints the top
# functions of the larger run (self cost) as well.
#   scripts/profile.sh [--mode insert|ignore|upsert] [--n1 20000] [--n2 60000] [--size 200]
# Output files stay in build/profile/ (callgrind_annotate or kcachegrind read them).
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
mode=insert n1=20000 n2=60000 size=200
while (($#)); do
    case $1 in
        --mode) mode=$2; shift ;;
        --n1) n1=$2; shift ;;
        --n2) n2=$2; shift ;;
        --size) size=$2; shift ;;
        *) echo "profile: unknown option $1" >&2; exit 64 ;;
    esac
    shift
done
command -v valgrind >/dev/null || { echo "profile: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
out=$source_dir/build/profile
mkdir -p "$out"
total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }
# Instructions spent logging in to PostgreSQL (PQconnectdb, SCRAM: ~70 million each). How many
# logins a run makes varies with the machine's load (a worker's connect that times out is
# retried), so they are left out of the per-message figure: with them, it moved by ±25% between
# runs of the same binary on a busy machine.
# awk reads to the end: leaving early would kill callgrind_annotate with SIGPIPE (and, under
# pipefail, this script).
logins() {
    callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
        awk '!found && /PQconnectdb/ { gsub(",", "", $1); print $1; found = 1 } END { if (!found) print 0 }'
}
for n in "$n1" "$n2"; do
    rm -f "$out/callgrind.$mode.$n.out"
    "$source_dir/scripts/bench.sh" --n "$n" --rounds 1 --mode "$mode" --size "$size" --no-ceilings \
        --latency-seconds 0 --daemon-prefix \
        "valgrind --tool=callgrind --callgrind-out-file=$out/callgrind.$mode.$n.out" >/dev/null
done
i1=$(total "$out/callgrind.$mode.$n1.out") i2=$(total "$out/callgrind.$mode.$n2.out")
l1=$(logins "$out/callgrind.$mode.$n1.out") l2=$(logins "$out/callgrind.$mode.$n2.out")
echo "mode $mode, body ${size} B: $i1 instructions for $n1 messages, $i2 for $n2"
echo "PostgreSQL logins (left out below): $((l1 / 1000000)) million instructions for $n1, $((l2 / 1000000)) million for $n2"
awk -v a="$((i1 - l1))" -v b="$((i2 - l2))" -v n1="$n1" -v n2="$n2" \
    'BEGIN { printf "instructions per message: %.0f   (start-up and shutdown without logins: %.0f million)\n", (b - a) / (n2 - n1), (a - (b - a) / (n2 - n1) * n1) / 1e6 }'
echo "top functions (self), $n2 messages:"
callgrind_annotate "$out/callgrind.$mode.$n2.out" 2>/dev/null |
    awk '/^-+$/ { dashes++; next } dashes == 6 && NF && n++ < 15 { sub(/ \[.*\]$/, ""); print "  " substr($0, 1, 150) }'
