#!/usr/bin/env bash
# --check-config: 0 for a valid file, 78 with file:line:key for a broken one, and 78 naming the
# column when the database lacks a mapped column or the unique key ignore/upsert needs. A server
# that answers but refuses the role (wrong password, unknown role) is 78 naming server and role;
# no server at all is a note and 0 (the file itself is valid).
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
write_config "$WORK/ok.yaml" ignore 1
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/ok.yaml" 2>"$WORK/out" ||
    fail "valid config rejected: $(cat "$WORK/out")"
grep -q "note: connection budget: config needs 1 PostgreSQL connection (one per worker); server 127.0.0.1:$RMQ2PG_TEST_PG_PORT max_connections" \
    "$WORK/out" || fail "no connection budget note: $(cat "$WORK/out")"

server="127.0.0.1:$RMQ2PG_TEST_PG_PORT"
sed "s#postgresql://rmq2pg:rmq2pg@#postgresql://rmq2pg:wrong@#" "$WORK/ok.yaml" >"$WORK/badpw.yaml"
grep -q "rmq2pg:wrong@" "$WORK/badpw.yaml" || fail "could not change the password"
status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/badpw.yaml" 2>"$WORK/out" || status=$?
((status == 78)) || fail "wrong password: expected 78, got $status: $(cat "$WORK/out")"
grep -q "badpw.yaml: postgres.url: PostgreSQL at $server refused role 'rmq2pg': .*password authentication failed" \
    "$WORK/out" || fail "unclear wrong-password error: $(cat "$WORK/out")"
grep -q "wrong" "$WORK/out" && fail "the password leaked into the message: $(cat "$WORK/out")"

sed "s#postgresql://rmq2pg:rmq2pg@#postgresql://nobody_$$:x@#" "$WORK/ok.yaml" >"$WORK/norole.yaml"
status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/norole.yaml" 2>"$WORK/out" || status=$?
((status == 78)) || fail "unknown role: expected 78, got $status: $(cat "$WORK/out")"
grep -q "PostgreSQL at $server refused role 'nobody_$$'" "$WORK/out" ||
    fail "unclear unknown-role error: $(cat "$WORK/out")"

# Nothing listens on port 1: not reachable is not a config error.
sed "s#@127.0.0.1:$RMQ2PG_TEST_PG_PORT/#@127.0.0.1:1/#" "$WORK/ok.yaml" >"$WORK/down.yaml"
grep -q "127.0.0.1:1/" "$WORK/down.yaml" || fail "could not change the port"
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/down.yaml" 2>"$WORK/out" ||
    fail "unreachable database made the check fail: $(cat "$WORK/out")"
grep -q "note: PostgreSQL not reachable, tables not checked" "$WORK/out" ||
    fail "no note for the unreachable database: $(cat "$WORK/out")"

sed 's/workers: 1/workers: lots/' "$WORK/ok.yaml" >"$WORK/bad.yaml"
status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/bad.yaml" 2>"$WORK/out" || status=$?
((status == 78)) || fail "expected 78, got $status"
grep -q "bad.yaml:[0-9]*: pipelines\[0\].workers: expected a whole number, got 'lots'" "$WORK/out" ||
    fail "unclear error: $(cat "$WORK/out")"

sql "ALTER TABLE \"$TABLE\" DROP COLUMN currency"
status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/ok.yaml" 2>"$WORK/out" || status=$?
((status == 78)) || fail "missing column: expected 78, got $status"
grep -q "column 'currency' does not exist" "$WORK/out" || fail "unclear error: $(cat "$WORK/out")"

create_orders_table "$TABLE" ""
status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/ok.yaml" 2>"$WORK/out" || status=$?
((status == 78)) || fail "missing unique key: expected 78, got $status"
grep -q "needs a unique index" "$WORK/out" || fail "unclear error: $(cat "$WORK/out")"

status=0
"$RMQ2PG_BUILD_DIR/rmq2pg" --config "$WORK/missing.yaml" 2>"$WORK/out" || status=$?
((status == 78)) || fail "missing file: expected 78, got $status"
log "PASS"
