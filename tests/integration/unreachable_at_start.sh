#!/usr/bin/env bash
# Servers unreachable at start: a clear log line per attempt and not ready; with
# startup_timeout_s the daemon exits non-zero; a wrong password is named as such.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 1
# A closed port on loopback: nothing listens on 1.
sed -e "s#$RMQ2PG_TEST_AMQP_URL#amqp://rmq2pg:rmq2pg@127.0.0.1:1/#" \
    -e 's/^shutdown_timeout_ms: .*/shutdown_timeout_ms: 2000\nstartup_timeout_s: 3/' \
    "$WORK/rmq2pg.yaml" >"$WORK/unreachable.yaml"
status=0
timeout 30 "$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/unreachable.yaml" >"$DAEMON_LOG" 2>&1 || status=$?
((status == 1)) || fail "expected exit 1 after startup_timeout_s, got $status"
grep -q "cannot connect to 127.0.0.1:1" "$DAEMON_LOG" || fail "no clear connect error"
grep -q "startup_timeout_s=3" "$DAEMON_LOG" || fail "no startup timeout message"

sed -e "s#amqp://rmq2pg:rmq2pg@#amqp://rmq2pg:wrong-password@#" \
    -e 's/^shutdown_timeout_ms: .*/shutdown_timeout_ms: 2000\nstartup_timeout_s: 3/' \
    "$WORK/rmq2pg.yaml" >"$WORK/badpass.yaml"
status=0
timeout 30 "$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/badpass.yaml" >"$WORK/badpass.log" 2>&1 || status=$?
((status == 1)) || fail "wrong password: expected exit 1, got $status"
grep -q "refused: check the user, password and vhost\|ACCESS_REFUSED" "$WORK/badpass.log" ||
    fail "wrong password not named: $(tail -3 "$WORK/badpass.log")"
grep -q "wrong-password" "$WORK/badpass.log" && fail "password leaked into the log"
log "PASS"
