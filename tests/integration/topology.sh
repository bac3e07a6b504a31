#!/usr/bin/env bash
# Topology from YAML: rmq2pg declares a topic exchange, a quorum queue bound to it, and consumes;
# declaring it again is harmless; a declaration that conflicts with the existing queue names the
# differing argument and pauses the pipeline instead of reconnecting in a loop.
source "$(dirname "$0")/lib.sh"
create_orders_table "$TABLE"
EXCHANGE="ex_$TEST_ID"
write_config "$WORK/rmq2pg.yaml" ignore 2 "    declare:
      type: quorum
      arguments: { x-max-in-memory-length: 1000 }
      bindings:
        - { exchange: $EXCHANGE, routing_key: \"orders.#\" }"
sed -i "s/^pipelines:/exchanges:\n  - { name: $EXCHANGE, type: topic }\npipelines:/" "$WORK/rmq2pg.yaml"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 30 "workers consuming" grep -q "ready: every worker is consuming" "$DAEMON_LOG"
type=$("$RMQ2PG_SOURCE_DIR/scripts/servers.sh" rabbitmqctl list_queues -q name type | awk -v q="$QUEUE" '$1 == q { print $2 }')
[[ "$type" == "quorum" ]] || fail "queue type is '$type', not quorum"
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --exchange "$EXCHANGE" \
    --routing-key orders.eu.created --generate orders --count 3000 >/dev/null
wait_until 60 "3000 rows through the exchange" rows_equal "$TABLE" 3000
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"

# The same declarations again: idempotent.
start_daemon "$WORK/rmq2pg.yaml"
wait_until 30 "consuming again" bash -c "(( \$(grep -c 'ready: every worker' '$DAEMON_LOG') == 2 ))"
stop_daemon

# A classic declaration of the existing quorum queue conflicts.
sed -e 's/type: quorum/type: classic/' "$WORK/rmq2pg.yaml" >"$WORK/conflict.yaml"
: >"$DAEMON_LOG"
start_daemon "$WORK/conflict.yaml"
wait_until 30 "conflict reported" grep -q "conflicts with what exists" "$DAEMON_LOG"
grep -q "x-queue-type" "$DAEMON_LOG" || fail "the differing argument is not named: $(grep conflicts "$DAEMON_LOG")"
sleep 2
daemon_alive || fail "daemon exited on a conflict"
conflicts=$(grep -c "conflicts with what exists" "$DAEMON_LOG")
((conflicts <= 2)) || fail "reconnect loop: $conflicts conflict lines for 2 workers"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS"
