#!/usr/bin/env bash
# Slow and idle HTTP clients never delay a probe: with 200 slowloris connections (headers
# trickled a byte every 2 s) and 2 idle keep-alive connections open, a new client gets /healthz
# 200 within 100 ms 20 times out of 20, and /readyz and /metrics as fast; the slow connections
# are closed by the 10 s deadline; with 600 connections (beyond the 500 cap) /healthz still
# answers within 100 ms and the daemon logs the evictions. Figures: the latencies, max, median.
source "$(dirname "$0")/lib.sh"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
LIMIT_S=0.100
LOADS=()

stop_loads() {
    local pid
    for pid in "${LOADS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${LOADS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    LOADS=()
}
# errexit is off here: with it, restoring the status for cleanup would end the trap early.
trap 'status=$?; set +e; stop_loads; (exit $status); cleanup' EXIT

# load COUNT_SLOW COUNT_IDLE STATS: slow clients in the background for at most 90 s, niced so
# that on a busy machine the measured latency is the daemon's, not the load generator's CPU.
load() {
    nice -n 10 python3 "$(dirname "$0")/slow_clients.py" --port "$PORT" --slow "$1" --idle "$2" \
        --trickle 2 --duration 90 --stats "$3" &
    LOADS+=($!)
}
# figure STATS KEY: one of the slow clients' figures.
figure() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
# loaded STATS CONDITION: CONDITION (Python over the figures) holds; one process per check (a
# python3 start takes a good part of a second on a busy machine).
loaded() {
    [[ -f "$1" ]] && python3 -c "import json, sys; sys.exit(0 if eval(sys.argv[2], json.load(open(sys.argv[1]))) else 1)" "$1" "$2"
}

# probe PATH N: N requests from new clients, each "code seconds" into $WORK/probes; fails unless
# every one is 200 within LIMIT_S. Prints the latencies, their max and median.
probe() {
    local path=$1 n=$2 i out
    : >"$WORK/probes"
    for ((i = 1; i <= n; i++)); do
        out=$(curl -s -o "$WORK/body" -w '%{http_code} %{time_total}' --max-time 5 "$BASE$path" || true)
        echo "$out" >>"$WORK/probes"
        sleep 0.4
    done
    python3 - "$path" "$LIMIT_S" "$WORK/probes" <<'PY'
import statistics, sys
path, limit = sys.argv[1], float(sys.argv[2])
probes = [line.split() for line in open(sys.argv[3]) if line.strip()]
codes = [p[0] for p in probes]
ms = [float(p[1]) * 1000 for p in probes]
print(f"{path}: {len(ms)} new clients, latencies ms: " + " ".join(f"{m:.1f}" for m in ms))
print(f"{path}: max {max(ms):.1f} ms, median {statistics.median(ms):.1f} ms, codes {sorted(set(codes))}")
sys.exit(0 if all(c == "200" for c in codes) and max(ms) <= limit * 1000 else 1)
PY
}

create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
echo "http: { listen: \"127.0.0.1:$PORT\" }" >>"$WORK/rmq2pg.yaml"
publish --queue "$QUEUE" --declare-queue --generate orders --count 100
start_daemon "$WORK/rmq2pg.yaml"
is_ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/readyz" || true) == 200 ]]; }
wait_until 60 "/readyz 200" is_ready
wait_until 60 "100 rows" rows_equal "$TABLE" 100

log "opening 2 idle keep-alive connections, then 200 slowloris connections"
load 0 2 "$WORK/idle.json"
# An idle keep-alive stays open after its answer.
wait_until 10 "2 idle clients connected and answered" \
    loaded "$WORK/idle.json" "ready and idle_open == 2 and idle_answered >= 2"
load 200 0 "$WORK/slow.json"
wait_until 30 "200 slow clients connected" loaded "$WORK/slow.json" "ready and slow_open == 200"
log "load in place: idle $(cat "$WORK/idle.json"), slow $(cat "$WORK/slow.json")"
probe /healthz 20 || fail "/healthz not 200 within ${LIMIT_S}s for every new client under slow clients"
probe /readyz 3 || fail "/readyz not 200 within ${LIMIT_S}s under slow clients"
probe /metrics 3 || fail "/metrics not 200 within ${LIMIT_S}s under slow clients"

# The 10 s deadline (plus the 0.5 s sweep) closes every slowloris connection; they reconnect.
wait_until 20 "the first 200 slow clients closed by the deadline" \
    loaded "$WORK/slow.json" "slow_closed_by_server >= 200"
log "slow clients closed by the server after $(figure "$WORK/slow.json" slow_lifetime_min) .. $(figure "$WORK/slow.json" slow_lifetime_max) s"
loaded "$WORK/slow.json" "9.5 <= slow_lifetime_min and slow_lifetime_max <= 12" ||
    fail "slow clients were not closed at the 10 s deadline"
loaded "$WORK/slow.json" "slow_answered == 0" || fail "a slow client got an answer to half a request"
wait_until 5 "the 2 idle keep-alive connections closed by the deadline" \
    loaded "$WORK/idle.json" "idle_closed_by_server >= 2"

# Beyond the cap: 600 connections; new ones evict those waiting longest, a probe still gets in.
log "opening 400 more slowloris connections (600 > the 500 cap)"
load 400 0 "$WORK/more.json"
wait_until 30 "400 more slow clients connected" loaded "$WORK/more.json" "ready"
probe /healthz 10 || fail "/healthz not 200 within ${LIMIT_S}s beyond the connection cap"
evicted() { grep -q "evicted at the connection cap" "$DAEMON_LOG"; }
wait_until 25 "the daemon logs evictions (a line per 10 s at most)" evicted
log "daemon: $(grep -m1 "evicted at the connection cap" "$DAEMON_LOG")"

stop_loads
probe /healthz 3 || fail "/healthz after the load"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS"
