#!/usr/bin/env bash
# --check-config: 0 for a valid file, 78 with file:line:key for a broken one, and 78 naming the
# column when the database lacks a mapped column or the unique key ignore/upsert needs.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
write_config "$WORK/ok.yaml" ignore 1
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/ok.yaml" 2>"$WORK/out" ||
    fail "valid config rejected: $(cat "$WORK/out")"

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
