# shellcheck shell=bash
# CPU accounting, and the median of repeated turns, for the benchmark scripts (sourced): everything shares this machine's cores, so
# rates mean little without knowing who used them. Ticks are clock ticks (getconf CLK_TCK).

url_port() { sed -E 's#^[a-z]+://([^@/]*@)?(\[[^]]*\]|[^:/?]*):([0-9]+).*#\3#' <<<"$1"; }
# The server process behind a port: the broker's beam, PostgreSQL's postmaster.
listener_pid() { ss -Hltnp "sport = :$1" 2>/dev/null | sed -nE 's/.*pid=([0-9]+).*/\1/p' | head -1; }
clk_tck=$(getconf CLK_TCK)

# ticks PID [children]: utime+stime+cutime+cstime of PID, plus utime+stime of its live children
# (PostgreSQL's backends: their time reaches the postmaster's cutime only when they exit).
ticks() {
    local pid=$1 sum=0 f rest
    [[ -n "$pid" && -r /proc/$pid/stat ]] || { echo 0; return; }
    rest=$(sed 's/.*) //' "/proc/$pid/stat")
    read -r -a f <<<"$rest"
    sum=$((f[11] + f[12] + f[13] + f[14]))
    if [[ "${2:-}" == children ]]; then
        for c in /proc/[0-9]*/stat; do
            rest=$(sed 's/.*) //' "$c" 2>/dev/null) || continue
            read -r -a f <<<"$rest"
            ((f[1] == pid)) && sum=$((sum + f[11] + f[12]))
        done
    fi
    echo "$sum"
}

machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# cpu_begin / cpu_end PHASE [DAEMON_CPU_SECONDS [MESSAGES]] around a phase, with broker_pid and
# pg_pid set (listener_pid): cpu_line[PHASE] gets the "cores used" (CPU seconds / wall seconds)
# per party, and the broker's CPU per message when MESSAGES is given. The broker counts with its
# reaped children, PostgreSQL as postmaster + live backends + reaped ones; "tools" is the calling
# script's finished children (rmq2pg-bench, psql), "others" the rest of the machine: load that is
# not ours and makes the run's figures suspect.
declare -A cpu_at=()
cpu_begin() {
    cpu_at[broker]=$(ticks "$broker_pid") cpu_at[pg]=$(ticks "$pg_pid" children) cpu_at[own]=$(ticks $$)
    cpu_at[machine]=$(machine_ticks) cpu_at[t]=$(date +%s.%N)
}
declare -A cpu_line=() cpu_others=()
cpu_end() {
    local b p m o t
    b=$(ticks "$broker_pid") p=$(ticks "$pg_pid" children) m=$(machine_ticks) o=$(ticks $$)
    t=$(date +%s.%N)
    cpu_line[$1]=$(awk -v b=$((b - cpu_at[broker])) -v p=$((p - cpu_at[pg])) -v m=$((m - cpu_at[machine])) \
        -v o=$((o - cpu_at[own])) -v w="$(awk -v a="$t" -v z="${cpu_at[t]}" 'BEGIN { print a - z }')" \
        -v hz="$clk_tck" -v d="${2:-0}" -v n="${3:-0}" 'BEGIN {
            others = m / hz / w - b / hz / w - p / hz / w - o / hz / w - d / w
            printf "RabbitMQ %.2f%s, PostgreSQL %.2f, rmq2pg %.2f, tools %.2f, others %.2f (machine %.2f of %d)",
                b / hz / w, (n > 0 ? sprintf(" (%.1f µs/msg)", b / hz / n * 1e6) : ""), p / hz / w,
                d / w, o / hz / w, (others < 0 ? 0 : others), m / hz / w, '"$(nproc)"' }')
    cpu_others[$1]=$(sed -E 's/.*others ([0-9.]+).*/\1/' <<<"${cpu_line[$1]}")
}

# median VALUE...: the median of the figures of repeated turns (the mean of the middle two for an
# even count), which the scripts report instead of a single run's noisy figure.
median() {
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
