#!/usr/bin/env bash
# http.listen under a steady stream: /metrics, /healthz, /readyz and /api/status answer and move
# between two scrapes, /api/status agrees with /metrics, /readyz turns 503 with a reason while
# PostgreSQL is down and 200 again after, and the status page renders in headless Chromium
# (DOM and a phone-width screenshot kept in build/test-artifacts/).
source "$(dirname "$0")/lib.sh"
N1=2000 N2=8000 N3=1000
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
ARTIFACTS="$RMQ2PG_BUILD_DIR/test-artifacts"
mkdir -p "$ARTIFACTS"

create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
sed -i 's/^log: { level: info }$/log: { level: info, format: json }/' "$WORK/rmq2pg.yaml"
grep -q "format: json" "$WORK/rmq2pg.yaml" || fail "could not switch the log to json"
echo "http: { listen: \"127.0.0.1:$PORT\" }" >>"$WORK/rmq2pg.yaml"
publish --queue "$QUEUE" --declare-queue --generate orders --count $N1
start_daemon "$WORK/rmq2pg.yaml"

http_code() { curl -s -o "$WORK/body" -w '%{http_code}' "$BASE$1" || true; }
is_code() { [[ $(http_code "$1") == "$2" ]]; }
# metric NAME: the value of NAME{pipeline="<this test>"} in a fresh /metrics scrape.
metric() {
    curl -sf "$BASE/metrics" | awk -v m="$1{pipeline=\"$TEST_ID\"}" '$1 == m { print $2 }'
}
# status EXPR: a value from a fresh /api/status, EXPR in Python over `p` (this pipeline).
in_flight_zero() { [[ $(metric rmq2pg_messages_in_flight) == 0 ]]; }
status() {
    curl -sf "$BASE/api/status" | python3 -c "import json, sys
s = json.load(sys.stdin)
p = next(p for p in s['pipelines'] if p['name'] == '$TEST_ID')
print($1)"
}

wait_until 60 "/readyz 200" is_code /readyz 200
grep -q '"status":"ready"' "$WORK/body" || fail "readyz body: $(cat "$WORK/body")"
wait_until 60 "first $N1 rows" rows_equal "$TABLE" $N1

# A steady stream (500 msg/s for 16 s) while we scrape.
publish --queue "$QUEUE" --generate orders --count $N2 --start $((N1 + 1)) --rate 500 &
PUBLISHER=$!
sleep 3
received1=$(metric rmq2pg_messages_received_total)
committed1=$(metric rmq2pg_messages_committed_total)
latency1=$(metric rmq2pg_commit_duration_seconds_count)
sleep 3
received2=$(metric rmq2pg_messages_received_total)
committed2=$(metric rmq2pg_messages_committed_total)
latency2=$(metric rmq2pg_commit_duration_seconds_count)
log "scrapes 3 s apart: received $received1 -> $received2, committed $committed1 -> $committed2"
((received2 > received1 && committed2 > committed1 && latency2 > latency1)) ||
    fail "counters did not move between scrapes"
sleep 5  # the 10 s rate window now lies inside the stream
rate=$(status "p['rates']['committed']")
log "committed rate from /api/status: $rate msg/s"
python3 -c "import sys; sys.exit(0 if 300 <= $rate <= 700 else 1)" ||
    fail "committed rate $rate is not near the 500 msg/s published"
status_committed=$(status "p['counters']['committed']")
metrics_committed=$(metric rmq2pg_messages_committed_total)
((status_committed > 0 && status_committed <= metrics_committed)) ||
    fail "/api/status committed $status_committed vs /metrics $metrics_committed scraped after"
[[ $(http_code /healthz) == 200 ]] || fail "healthz: $(cat "$WORK/body")"
grep -q '"status":"ok"' "$WORK/body" || fail "healthz body: $(cat "$WORK/body")"
# (Into a file first: `curl | grep -q` fails under pipefail when grep stops reading early.)
curl -sf "$BASE/metrics" >"$WORK/metrics"
grep -qE '^rmq2pg_workers\{pipeline="'"$TEST_ID"'",state="(consuming|writing)"\} [12]$' "$WORK/metrics" ||
    fail "worker state gauges missing"
for series in rmq2pg_batch_size_bucket rmq2pg_end_to_end_latency_seconds_count \
    rmq2pg_commit_duration_seconds_bucket rmq2pg_messages_in_flight rmq2pg_queue_messages \
    rmq2pg_queue_consumers rmq2pg_amqp_connects_total rmq2pg_workers rmq2pg_build_info; do
    grep -q "^$series" "$WORK/metrics" || fail "/metrics lacks $series"
done
grep -q "^rmq2pg_end_to_end_latency_seconds_count{pipeline=\"$TEST_ID\"} [1-9]" "$WORK/metrics" ||
    fail "no end-to-end latency observed (the publisher sets the AMQP timestamp)"

# The browser: the page renders the pipeline and a committed count from /api/status.
if command -v chromium >/dev/null; then
    chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
        --disable-background-networking --disable-component-update --disable-sync
        --hide-scrollbars --user-data-dir="$WORK/chromium" --virtual-time-budget=5000)
    timeout 120 "${chrome[@]}" --dump-dom "$BASE/" >"$WORK/dom.html" 2>"$WORK/chromium.log" ||
        fail "chromium --dump-dom failed: $(tail -5 "$WORK/chromium.log")"
    metrics_committed=$(metric rmq2pg_messages_committed_total)
    cp "$WORK/dom.html" "$ARTIFACTS/status-dom.html"
    grep -q "<h2>$TEST_ID</h2>" "$WORK/dom.html" || fail "pipeline name not rendered"
    dom_committed=$(grep -oE "data-metric=\"committed\" data-pipeline=\"$TEST_ID\" data-value=\"[0-9]+\"" \
        "$WORK/dom.html" | grep -oE '[0-9]+"$' | tr -d '"')
    log "page shows committed $dom_committed, /metrics right after: $metrics_committed"
    [[ -n "$dom_committed" ]] && ((dom_committed > 0 && dom_committed <= metrics_committed)) ||
        fail "page committed '$dom_committed' vs /metrics $metrics_committed"
    timeout 120 "${chrome[@]}" --screenshot="$WORK/status.png" --window-size=420,900 "$BASE/" \
        >>"$WORK/chromium.log" 2>&1 || fail "chromium --screenshot failed"
    cp "$WORK/status.png" "$ARTIFACTS/status.png"
    log "screenshot (420x900, phone width): $ARTIFACTS/status.png"
else
    log "SKIP browser part: chromium is not installed (scripts/deps.sh installs it)"
fi

wait "$PUBLISHER"
wait_until 60 "$((N1 + N2)) rows" rows_equal "$TABLE" $((N1 + N2))
# Quiescent now: both endpoints must tell the same committed count.
wait_until 10 "in flight 0" in_flight_zero
status_committed=$(status "p['counters']['committed']")
metrics_committed=$(metric rmq2pg_messages_committed_total)
log "at rest: /api/status committed $status_committed, /metrics $metrics_committed"
((status_committed == metrics_committed && metrics_committed == N1 + N2)) ||
    fail "committed differs: /api/status $status_committed, /metrics $metrics_committed"

# PostgreSQL down: a worker that has to write backs off, and /readyz says so.
trap '"$RMQ2PG_SOURCE_DIR/scripts/servers.sh" pg-start >/dev/null 2>&1 || true; cleanup' EXIT
"$RMQ2PG_SOURCE_DIR/scripts/servers.sh" pg-stop >/dev/null
log "PostgreSQL stopped"
publish --queue "$QUEUE" --generate orders --count $N3 --start $((N1 + N2 + 1))
wait_until 60 "/readyz 503" is_code /readyz 503
log "readyz during the outage: $(cat "$WORK/body")"
grep -q '"status":"not ready"' "$WORK/body" && grep -qE "$TEST_ID/[01] is (backing_off|connecting)" "$WORK/body" ||
    fail "readyz 503 without a reason: $(cat "$WORK/body")"
[[ $(http_code /healthz) == 200 ]] || fail "an outage is not a wedge, healthz: $(cat "$WORK/body")"
last_error=$(status "(p['last_error'] or {}).get('text', '')")
log "last error: $last_error"
[[ -n "$last_error" ]] || fail "no last_error during the outage"
"$RMQ2PG_SOURCE_DIR/scripts/servers.sh" pg-start >/dev/null
log "PostgreSQL started again"
wait_until 120 "/readyz 200 again" is_code /readyz 200
wait_until 120 "$((N1 + N2 + N3)) rows" rows_equal "$TABLE" $((N1 + N2 + N3))
pg_connects=$(metric rmq2pg_pg_connects_total)
((pg_connects > 2)) || fail "pg reconnects not counted ($pg_connects)"

stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
# log.format json: every line one object with time, level and message.
python3 - "$DAEMON_LOG" <<'PY' || fail "daemon log is not one JSON object per line"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
for line in lines:
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "message"}, entry
    assert entry["time"].endswith("Z"), entry
print(f"{len(lines)} log lines, all JSON")
PY
grep -q '"message":"stopped cleanly"' "$DAEMON_LOG" || fail "no final log line"
log "PASS"
