#!/usr/bin/env bash
# Routes: three routes with wildcard patterns, tried in order, first match wins; a message that
# matches no route is dead-lettered with reason "no route", never dropped.
source "$(dirname "$0")/lib.sh"
sql "DROP TABLE IF EXISTS ${TABLE}_a, ${TABLE}_b, ${TABLE}_c;
     CREATE TABLE ${TABLE}_a (id bigint PRIMARY KEY, rk text);
     CREATE TABLE ${TABLE}_b (id bigint PRIMARY KEY, rk text);
     CREATE TABLE ${TABLE}_c (id bigint, rk text)"
sql "SELECT 1" >/dev/null
cat >"$WORK/rmq2pg.yaml" <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$RMQ2PG_TEST_PG_URL" }
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    workers: 2
    routes:
      - match: "orders.*.created"
        table: ${TABLE}_a
        mode: ignore
        key: [id]
        columns: { id: /id, rk: \$routing_key }
      - match: "orders.#"
        table: ${TABLE}_b
        mode: upsert
        key: [id]
        columns: { id: /id, rk: \$routing_key }
      - match: "audit.*"
        table: ${TABLE}_c
        columns: { id: /id, rk: \$routing_key }
YAML
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/rmq2pg.yaml" || fail "config rejected"
sql "SELECT 1" >/dev/null
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "$QUEUE" --declare-queue --count 0 --generate orders >/dev/null
send() { echo "{\"id\": $2}" | "$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" \
    --exchange amq.topic --routing-key "$1" >/dev/null; }
"$RMQ2PG_SOURCE_DIR/scripts/servers.sh" rabbitmqctl eval \
    "rabbit_binding:add({binding, rabbit_misc:r(<<\"/\">>, exchange, <<\"amq.topic\">>), <<\"#\">>, rabbit_misc:r(<<\"/\">>, queue, <<\"$QUEUE\">>), []}, <<\"rmq2pg\">>)." >/dev/null ||
    fail "cannot bind the queue to amq.topic"
send orders.eu.created 1        # → a (first route)
send orders.eu.created.late 2   # → b ('*' is one word)
send orders 3                   # → b ('#' matches zero words)
send orders.us.paid 4           # → b
send audit.login 5              # → c
send audit.login.failed 6       # → no route
send payments.x 7               # → no route
start_daemon "$WORK/rmq2pg.yaml"
total() { (($(row_count "${TABLE}_a") + $(row_count "${TABLE}_b") + $(row_count "${TABLE}_c") == 5)); }
wait_until 30 "5 routed rows" total
wait_until 30 "2 dead letters" bash -c "(( \$(\"$RMQ2PG_BUILD_DIR/rmq2pg-publish\" --url '$RMQ2PG_TEST_AMQP_URL' --stats '$QUEUE.dead' | cut -d' ' -f1) == 2 ))"
stop_daemon
[[ $(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM ${TABLE}_a") == "1" ]] || fail "route a"
[[ $(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM ${TABLE}_b") == "2,3,4" ]] || fail "route b"
[[ $(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM ${TABLE}_c") == "5" ]] || fail "route c"
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-error,x-original-routing-key >"$WORK/dead.tsv"
grep -q "no route matches routing key 'audit.login.failed'" "$WORK/dead.tsv" || fail "dead letter reason"
grep -q "payments.x" "$WORK/dead.tsv" || fail "payments.x not dead-lettered"
log "PASS"
