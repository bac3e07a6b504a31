#!/usr/bin/env bash
# The PostgreSQL connection budget: a config whose workers need more connections than the server
# can give without taking its last free slots is refused before any worker starts (exit 78,
# nothing consumed) with the numbers, and --check-config says the same. A role's CONNECTION
# LIMIT binds the same way. Through PgBouncer the check is skipped with a warning. Through PgBouncer the check is skipped with a warning.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
publish --queue "$QUEUE" --declare-queue --generate orders --count 20

max_connections=$(sql "SHOW max_connections")
reserved=$(sql "SHOW superuser_reserved_connections")
# Enough pipelines of 64 workers (the most one pipeline may have) to need more than the server has.
pipelines=$(((max_connections + 63) / 64 + 1))
needed=$((pipelines * 64))
# pool_size above the workers: each worker would have a connection of its own (the pooled case
# follows the refusal).
{
    RMQ2PG_TEST_POOL_SIZE=10000 config_header
    echo "pipelines:"
    for ((i = 0; i < pipelines; i++)); do
        cat <<YAML
  - name: ${TEST_ID}_$i
    queue: $QUEUE
    workers: 64
    table: public.$TABLE
    columns: { id: /id, account: /account }
YAML
    done
} >"$WORK/big.yaml"
log "config with $pipelines pipelines x 64 workers = $needed connections; max_connections $max_connections"

# The numbers in a refusal must add up: allowed = usable - in use - max(3, ceil(usable / 10)).
check_numbers() {
    local line
    line=$(grep -o "config needs $needed PostgreSQL connections.*" "$1" | head -1)
    [[ -n "$line" ]] || fail "no budget line in $1: $(cat "$1")"
    [[ "$line" =~ max_connections\ ([0-9]+)\ \(([0-9]+)\ reserved\ for\ superusers\),\ ([0-9]+)\ in\ use.*role\ rmq2pg\ limit\ none:\ at\ most\ ([0-9]+)\ can\ be\ taken\ without\ locking\ other\ clients\ out\ \(([0-9]+)\ stay\ free ]] ||
        fail "unexpected wording: $line"
    local max=${BASH_REMATCH[1]} res=${BASH_REMATCH[2]} used=${BASH_REMATCH[3]} allowed=${BASH_REMATCH[4]} free=${BASH_REMATCH[5]}
    ((max == max_connections && res == reserved)) || fail "server settings misread: $line"
    local usable=$((max - res))
    local want_free=$(((usable + 9) / 10))
    ((want_free < 3)) && want_free=3
    ((free == want_free)) || fail "kept free $free, expected $want_free: $line"
    ((allowed == usable - used - free)) || fail "allowed $allowed != $usable - $used - $free: $line"
    log "numbers add up: $line"
}

status=0
timeout 60 "$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/big.yaml" >"$DAEMON_LOG" 2>&1 || status=$?
((status == 78)) || fail "start: expected exit 78, got $status"
grep -q "critical connection budget: config needs $needed .*; not starting" "$DAEMON_LOG" ||
    fail "no refusal at start"
check_numbers "$DAEMON_LOG"
grep -q "consuming from queue" "$DAEMON_LOG" && fail "a worker started"
[[ $(queue_ready "$QUEUE") == 20 ]] || fail "messages were consumed: $(queue_ready "$QUEUE") left"
[[ $(row_count "$TABLE") == 0 ]] || fail "rows were written"

status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/big.yaml" 2>"$WORK/check.out" || status=$?
((status == 78)) || fail "--check-config: expected 78, got $status: $(cat "$WORK/check.out")"
grep -q "big.yaml: connection budget: config needs $needed PostgreSQL connections" "$WORK/check.out" ||
    fail "--check-config does not say why: $(cat "$WORK/check.out")"
check_numbers "$WORK/check.out"

# The same workers on the default postgres.pool_size share 16 connections: the budget counts 16.
sed '/pool_size: 10000/d' "$WORK/big.yaml" >"$WORK/pooled.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/pooled.yaml" 2>"$WORK/pooled.out" ||
    fail "--check-config of the pooled config failed: $(cat "$WORK/pooled.out")"
grep -q "note: connection budget: config needs 16 PostgreSQL connections (postgres.pool_size)" \
    "$WORK/pooled.out" || fail "the pool's size is not what the budget counts: $(cat "$WORK/pooled.out")"

# A role with CONNECTION LIMIT 2: three workers are one too many, two fit.
role="budget_${TEST_ID}"
sql "DROP ROLE IF EXISTS $role; CREATE ROLE $role LOGIN PASSWORD 'budget' CONNECTION LIMIT 2"
write_config "$WORK/role.yaml" insert 3
sed -i "s#postgresql://rmq2pg:rmq2pg@#postgresql://$role:budget@#" "$WORK/role.yaml"
grep -q "$role:budget@" "$WORK/role.yaml" || fail "could not switch the role"
status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/role.yaml" 2>"$WORK/role.out" || status=$?
((status == 78)) || fail "role limit: expected 78, got $status: $(cat "$WORK/role.out")"
grep -q "config needs 3 PostgreSQL connections .*role $role limit 2 (0 in use): at most 2 can be taken" \
    "$WORK/role.out" || fail "role limit not named: $(cat "$WORK/role.out")"
status=0
timeout 60 "$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/role.yaml" >"$WORK/role.log" 2>&1 || status=$?
((status == 78)) || fail "role limit at start: expected 78, got $status: $(tail "$WORK/role.log")"
sed -i 's/workers: 3/workers: 2/' "$WORK/role.yaml"
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/role.yaml" 2>"$WORK/role.out" || true
grep -q "note: connection budget: config needs 2 PostgreSQL connections .*: 2 can be taken" \
    "$WORK/role.out" || fail "two workers should fit: $(cat "$WORK/role.out")"

sql "DROP ROLE $role"

# Through PgBouncer the server's numbers do not bound rmq2pg's connections (the pooler's do): the
# check is skipped with a warning saying why, and the daemon goes on.
BOUNCER="$RMQ2PG_SOURCE_DIR/scripts/pgbouncer.sh"
eval "$("$BOUNCER" env)"
"$BOUNCER" start >/dev/null || fail "pgbouncer did not start"
stop_bouncer() { "$BOUNCER" stop >/dev/null 2>&1 || true; }
# A failure anywhere below stops it too; cleanup (lib.sh) still sees the script's exit status.
trap 'rc=$?; stop_bouncer; set +e; (exit $rc); cleanup' EXIT
bouncer_url=$RMQ2PG_TEST_PGBOUNCER_URL
bouncer_port=${bouncer_url##*:}
bouncer_port=${bouncer_port%%/*}
sed "s#$RMQ2PG_TEST_PG_URL#$bouncer_url#" "$WORK/big.yaml" >"$WORK/bouncer.yaml"
grep -q ":$bouncer_port/" "$WORK/bouncer.yaml" || fail "could not switch to pgbouncer"
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/bouncer.yaml" 2>"$WORK/bouncer.out" ||
    { stop_bouncer; fail "--check-config through pgbouncer failed: $(cat "$WORK/bouncer.out")"; }
grep -q "warning: connection budget not checked: the server behind 127.0.0.1:$bouncer_port listens on port $RMQ2PG_TEST_PG_PORT: a pooler such as PgBouncer" \
    "$WORK/bouncer.out" || { stop_bouncer; fail "no pooler warning: $(cat "$WORK/bouncer.out")"; }
write_config "$WORK/one.yaml" insert 1
sed -i "s#$RMQ2PG_TEST_PG_URL#$bouncer_url#" "$WORK/one.yaml"
start_daemon "$WORK/one.yaml"
wait_until 60 "20 rows through pgbouncer" rows_equal "$TABLE" 20
stop_daemon
stop_bouncer
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
grep -q "warning connection budget not checked: the server behind 127.0.0.1:$bouncer_port listens on port" \
    "$DAEMON_LOG" || fail "no pooler warning at start"
# A reload is held to the same budget for the connections it adds: two workers running under
# CONNECTION LIMIT 2 cannot become three (the daemon keeps the running config and goes on), and
# going down to one is not checked at all.
sql "DROP ROLE IF EXISTS $role; CREATE ROLE $role LOGIN PASSWORD 'budget' CONNECTION LIMIT 2"
sql "GRANT ALL ON $TABLE TO $role"
start_daemon "$WORK/role.yaml"
publish --queue "$QUEUE" --generate orders --count 20 --start 101
wait_until 60 "20 more rows with two workers" rows_equal "$TABLE" 40
sed -i 's/workers: 2/workers: 3/' "$WORK/role.yaml"
kill -HUP "$DAEMON_PID"
wait_until 30 "the reload refused" grep -q "reload refused: still running the previous config" "$DAEMON_LOG"
grep -q "reload: connection budget: the new config needs 1 more PostgreSQL connection(s) and PostgreSQL at .* has no free slot: .*too many connections for role" \
    "$DAEMON_LOG" || fail "the refused reload does not say why: $(grep reload "$DAEMON_LOG")"
daemon_alive || fail "the daemon exited after a refused reload"
publish --queue "$QUEUE" --generate orders --count 5 --start 121
wait_until 60 "5 more rows on the previous config" rows_equal "$TABLE" 45
sed -i 's/workers: 3/workers: 1/' "$WORK/role.yaml"
kill -HUP "$DAEMON_PID"
wait_until 30 "the smaller config reloaded" grep -q "reload: 0 pipeline(s) kept, 1 drained, 1 started" "$DAEMON_LOG"
(($(grep -c "reload: connection budget" "$DAEMON_LOG") == 1)) ||
    fail "a reload needing fewer connections was checked: $(grep "reload: connection budget" "$DAEMON_LOG")"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT after the reloads"
sql "DROP OWNED BY $role; DROP ROLE $role"
log "PASS"
