#!/usr/bin/env bash
# SIGHUP reloads the config while messages stream into two pipelines: the changed pipeline is
# drained and restarted, the unchanged one keeps its workers, an invalid file changes nothing, a
# removed pipeline leaves its messages in its queue, an added one starts; no message is lost or
# written twice, and SIGTERM still exits 0.
source "$(dirname "$0")/lib.sh"
N=20000
A="${TEST_ID}_a" B="${TEST_ID}_b" C="${TEST_ID}_c"
for t in "$A" "$B" "$C"; do create_orders_table "t_$t"; done
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

# pipeline NAME WORKERS MAX_MESSAGES: one pipeline's YAML (ignore mode: redeliveries are no-ops).
pipeline() {
    orders_pipeline "$1" "q_$1" "public.t_$1" workers="$2" prefetch=1000 max_messages="$3" \
        max_bytes= mode=ignore columns=core
}
# write_config PIPELINE_YAML...: replaced with a rename, so the daemon never reads half a file.
write_config() {
    {
        config_header
        cat <<YAML
http: { listen: "127.0.0.1:$PORT" }
pipelines:
YAML
        printf '%s\n' "$@"
    } >"$WORK/next.yaml"
    mv "$WORK/next.yaml" "$WORK/rmq2pg.yaml"
}
log_count() { grep -cF -- "$1" "$DAEMON_LOG" || true; }
log_count_at_least() {
    daemon_alive || fail "the daemon exited"
    (($(log_count "$1") >= $2))
}
pipeline_gone_from_broker() { [[ $(queue_consumers "q_$B") == 0 ]]; }
a_starts() { echo $(($(log_count "[$A/0] started:") + $(log_count "[$A/1] started:"))); }
committed_metric() {
    curl -sf "$BASE/metrics" >"$WORK/metrics" || return 0
    awk -v m="rmq2pg_messages_committed_total{pipeline=\"$1\"}" '$1 == m { print $2 }' "$WORK/metrics"
}
queue_consumers() {
    "$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --stats "$1" | cut -d' ' -f2
}

for p in "$A" "$B" "$C"; do publish --queue "q_$p" --declare-queue --generate orders --count 0; done
write_config "$(pipeline "$A" 2 500)" "$(pipeline "$B" 2 500)"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "ready" log_count_at_least "ready: every worker is consuming" 1
# Readers on the HTTP threads while pipelines are replaced under them (what TSan builds check).
(while kill -0 "$DAEMON_PID" 2>/dev/null; do
    curl -sf "$BASE/metrics" >/dev/null || true
    curl -sf "$BASE/api/status" >/dev/null || true
    sleep 0.05
done) >/dev/null 2>&1 &

publish --queue "q_$A" --declare-queue --generate orders --count $N --rate 1000 &
PUB_A=$!
publish --queue "q_$B" --declare-queue --generate orders --count $N --rate 1000 &
PUB_B=$!
wait_until 60 "2000 rows in B" rows_at_least "t_$B" 2000
[[ $(a_starts) == 2 ]] || fail "A's workers started $(a_starts) times before the reload"

b_committed=$(committed_metric "$B")
((b_committed > 0)) || fail "no committed counter for B"
log "reload 1: B's batch.max_messages 500 -> 200, A unchanged"
write_config "$(pipeline "$A" 2 500)" "$(pipeline "$B" 2 200)"
kill -HUP "$DAEMON_PID"
wait_until 30 "B restarted" log_count_at_least "[$B/1] started:" 2
wait_until 30 "ready again" log_count_at_least "ready: every worker is consuming" 2
daemon_alive || fail "daemon exited on SIGHUP"
grep -qF "reload: pipeline '$B' changed: draining its 2 worker(s)" "$DAEMON_LOG" || fail "no drain line for B"
grep -qF "reload: pipeline '$B' drained" "$DAEMON_LOG" || fail "B not drained"
grep -qF "reload: pipeline '$A' unchanged" "$DAEMON_LOG" || fail "A not reported unchanged"
[[ $(a_starts) == 2 ]] || fail "A's workers were restarted"
[[ $(log_count "[$A/0] stopped") == 0 ]] || fail "A's worker 0 stopped"
grep -qF "[$B/0] started: queue 'q_$B' -> table public.t_$B (ignore mode, prefetch 1000, batch 200 msgs" \
    "$DAEMON_LOG" || fail "B did not restart with the new batch size"
(($(committed_metric "$B") >= b_committed)) || fail "B's counters restarted from 0"

log "reload 2: an invalid file"
write_config "$(pipeline "$A" lots 500)" "$(pipeline "$B" 2 200)"
kill -HUP "$DAEMON_PID"
wait_until 30 "reload refused" log_count_at_least "reload refused" 1
grep -qE "reload: $WORK/rmq2pg.yaml:[0-9]+: pipelines\[0\]\.workers" "$DAEMON_LOG" ||
    fail "no file:line: key error line"
wait_until 30 "ready after the refused reload" log_count_at_least "ready: every worker is consuming" 3
daemon_alive || fail "daemon exited on an invalid config"
[[ $(log_count "] started:") == 6 ]] || fail "an invalid config restarted workers"

wait_until 60 "more rows in B" rows_at_least "t_$B" 8000
log "reload 3: add C, remove B (while B's messages still arrive)"
write_config "$(pipeline "$A" 2 500)" "$(pipeline "$C" 1 500)"
kill -HUP "$DAEMON_PID"
wait_until 30 "C started" log_count_at_least "[$C/0] started:" 1
wait_until 30 "ready after adding C" log_count_at_least "ready: every worker is consuming" 4
grep -qF "reload: pipeline '$B' removed" "$DAEMON_LOG" || fail "B not reported removed"
[[ $(a_starts) == 2 ]] || fail "A's workers were restarted by the third reload"
publish --queue "q_$C" --declare-queue --generate orders --count 1000

wait "$PUB_A" || fail "publisher A failed"
wait "$PUB_B" || fail "publisher B failed"
log "published $N to A and $N to B"
wait_until 120 "$N rows in A" rows_equal "t_$A" $N
wait_until 60 "1000 rows in C" rows_equal "t_$C" 1000
wait_until 30 "B has no consumer" pipeline_gone_from_broker
b_rows=$(row_count "t_$B")
b_ready=$(queue_ready "q_$B")
log "B: $b_rows rows, $b_ready still in its queue"
((b_rows + b_ready == N)) || fail "B: $b_rows rows + $b_ready queued != $N published"
((b_ready > 0)) || fail "B was removed after all its messages were written: the test proves nothing"
for t in "$A" "$B" "$C"; do
    [[ $(sql "SELECT count(DISTINCT id) = count(*) FROM \"t_$t\"") == t ]] || fail "duplicates in t_$t"
done
[[ $(queue_ready "q_$A") == 0 ]] || fail "messages left in A's queue"

stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
for t in "$A" "$B" "$C"; do sql "DROP TABLE \"t_$t\""; done
log "PASS"
