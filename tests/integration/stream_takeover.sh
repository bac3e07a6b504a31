#!/usr/bin/env bash
# Leases across instances (issue 15): 3 instances x 2 workers share 6 stream partitions through
# PostgreSQL. While 60 000 messages stream in, one instance is kill -9'd and another SIGSTOPped
# for 3 x lease_s, then SIGCONTed: its writes after the takeover must fail (fenced), so the table
# (mode insert, no unique key) ends with exactly 60 000 rows, each id once. Every partition of
# the killed and the frozen instance is owned again within lease_s + a few seconds: the times
# are printed.
source "$(dirname "$0")/lib.sh"
LEASE_S=4
PARTITIONS=6
PER_PARTITION=10000
N=$((PARTITIONS * PER_PARTITION))
create_orders_table "$TABLE" ""
streams=""
for p in $(seq 0 $((PARTITIONS - 1))); do streams+="${streams:+, }s_${TEST_ID}-$p"; done
{
    config_header
    cat <<YAML
log: { level: info }
pipelines:
  - name: $TEST_ID
    streams: [$streams]
    start: first
    lease_s: $LEASE_S
    workers: 2
    batch: { max_messages: 200, max_delay_ms: 50 }
    table: public.$TABLE
    mode: insert
    columns: { id: /id, account: /account, amount: /amount, currency: /currency, payload: \$body }
YAML
} >"$WORK/rmq2pg.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" >/dev/null 2>&1 ||
    fail "--migrate failed"
PIDS=()
# set +e first: the instance killed on purpose is gone, and a failed kill must not end the trap
# before the others are killed (two left running once made a later test count their connections).
trap 'status=$?; set +e; for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; (exit $status); cleanup' EXIT
for i in 0 1 2; do
    "$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/rmq2pg.yaml" >>"$WORK/daemon$i.log" 2>&1 &
    PIDS+=($!)
done
DAEMON_LOG="$WORK/daemon0.log"
# owned_by PID: partitions whose lease a worker of process PID holds now.
owned_by() {
    sql "SELECT count(*) FROM rmq2pg_state.stream_offsets WHERE pipeline = '$TEST_ID'
           AND owner LIKE '% pid $1.%' AND lease_until >= now()"
}
all_owned() {
    (($(sql "SELECT count(*) FROM rmq2pg_state.stream_offsets WHERE pipeline = '$TEST_ID'
               AND owner IS NOT NULL AND lease_until >= now()") == PARTITIONS))
}
shares() { for p in "${PIDS[@]}"; do printf '%s ' "$(owned_by "$p")"; done; }
fair_share() { local s; s=$(shares); [[ $s == "2 2 2 " ]]; }
wait_until 60 "each instance owns 2 partitions" fair_share
log "shares of the 3 instances: $(shares)"
publishers=()
for p in $(seq 0 $((PARTITIONS - 1))); do
    "$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "s_${TEST_ID}-$p" \
        --declare-stream --generate orders --count $PER_PARTITION \
        --start $((p * PER_PARTITION + 1)) --rate 800 >/dev/null 2>"$WORK/publisher$p.log" &
    publishers+=($!)
done
wait_until 30 "rows arriving" rows_at_least "$TABLE" 2000
# takeover VICTIM WHAT: seconds until every partition is leased again and none by VICTIM.
takeover() {
    local victim=$1 start=$SECONDS started_ns
    started_ns=$(date +%s%N)
    until (($(owned_by "$victim") == 0)) && all_owned; do
        ((SECONDS - start < 60)) || fail "$2: partitions not taken over within 60 s"
        sleep 0.1
    done
    echo $((($(date +%s%N) - started_ns) / 1000000))
}
kill -9 "${PIDS[0]}"
log "kill -9 of instance 0 at $(row_count "$TABLE") rows"
ms=$(takeover "${PIDS[0]}" "kill -9")
log "TAKEOVER after kill -9: ${ms} ms (lease_s $LEASE_S); shares now: $(shares)"
# The bound is generous for a machine under heavy load (other builds and tests beside it): there a
# live lease renewed late counts as unowned for a moment too. 5.3 s is typical on an idle one.
((ms <= (LEASE_S + 8) * 1000)) || fail "takeover after kill -9 took ${ms} ms"
kill -STOP "${PIDS[1]}"
stopped_at=$SECONDS
log "SIGSTOP of instance 1 at $(row_count "$TABLE") rows"
ms=$(takeover "${PIDS[1]}" "SIGSTOP")
log "TAKEOVER after SIGSTOP: ${ms} ms (lease_s $LEASE_S); shares now: $(shares)"
((ms <= (LEASE_S + 8) * 1000)) || fail "takeover after SIGSTOP took ${ms} ms"
sleep $((3 * LEASE_S - (SECONDS - stopped_at) > 0 ? 3 * LEASE_S - (SECONDS - stopped_at) : 0))
kill -CONT "${PIDS[1]}"
log "SIGCONT of instance 1 after $((SECONDS - stopped_at)) s, at $(row_count "$TABLE") rows"
for p in "${publishers[@]}"; do wait "$p" || fail "a publisher failed"; done
wait_until 180 "$N rows" rows_equal "$TABLE" $N
wait_until 60 "every partition owned" all_owned
sleep 3 # a write of the woken instance that slipped through would show up now
log "shares at the end (killed, woken, third): $(shares)"
[[ $(sql "SELECT count(*) || ' ' || count(DISTINCT id) FROM \"$TABLE\"") == "$N $N" ]] ||
    fail "rows / distinct ids: $(sql "SELECT count(*) || ' ' || count(DISTINCT id) FROM \"$TABLE\"")"
grep -h "lease of epoch" "$WORK"/daemon1.log | head -3 | cut -c1-200 || true
fenced=$(grep -c "lease of epoch" "$WORK/daemon1.log" || true)
log "the woken instance had $fenced write(s) refused by the fence"
for p in "${PIDS[@]:1}"; do kill -TERM "$p"; done
for p in "${PIDS[@]:1}"; do wait "$p" || true; done
PIDS=()
sql "DROP TABLE \"$TABLE\""
log "PASS: $N rows once each across 3 instances, a kill -9 and a SIGSTOP"
