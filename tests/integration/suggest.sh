#!/usr/bin/env bash
# `rmq2pg suggest` on a table of 12 columns and messages with camelCase fields: it maps each
# column to its field, header or AMQP property, flags the column it cannot map, the field no
# column takes and values that would not convert; it takes no message; the YAML it prints passes
# --check-config and, run, writes the messages correctly.
source "$(dirname "$0")/lib.sh"
RMQ2PG="$RMQ2PG_BUILD_DIR/rmq2pg"
N=20
sql "CREATE TABLE \"$TABLE\" (
       order_id bigint PRIMARY KEY, customer_name text NOT NULL, total_amount numeric(12,2),
       currency_code char(3), is_paid boolean, created_at timestamptz, item_count integer,
       tags text[], shipping_address jsonb, tenant text, routing_key text, notes text)"
for i in $(seq 1 $N); do
    printf '{"orderId": %d, "customerName": "Customer %d", "totalAmount": %d.25, "currencyCode": "EUR", "isPaid": %s, "createdAt": "2026-12-01T10:%02d:00Z", "itemCount": %d, "tags": ["a", "b%d"], "shippingAddress": {"city": "Lyon", "zip": "6900%d"}, "extraField": "x"}\n' \
        "$i" "$i" "$i" "$([[ $((i % 2)) == 0 ]] && echo true || echo false)" "$i" "$i" "$i" "$((i % 10))"
done >"$WORK/messages.jsonl"
publish --queue "$QUEUE" --declare-queue --file "$WORK/messages.jsonl" --header tenant=acme
{
    config_header
    cat <<YAML
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    table: public.$TABLE
    columns:
      order_id: /orderId
YAML
} >"$WORK/start.yaml"

"$RMQ2PG" suggest --config "$WORK/start.yaml" --pipeline "$TEST_ID" >"$WORK/suggested.yaml" \
    2>"$WORK/suggest.err" || fail "suggest failed: $(cat "$WORK/suggest.err")"
cat "$WORK/suggested.yaml" "$WORK/suggest.err"
[[ $(queue_ready "$QUEUE") == "$N" ]] || fail "suggest took messages: $(queue_ready "$QUEUE") left"
for expected in "order_id: /orderId" "customer_name: /customerName" "total_amount: /totalAmount" \
    "currency_code: /currencyCode" "is_paid: /isPaid" "created_at: /createdAt" \
    "item_count: /itemCount" "tags: /tags" "shipping_address: /shippingAddress" \
    'tenant: $header.tenant' 'routing_key: $routing_key'; do
    grep -qF "      $expected  #" "$WORK/suggested.yaml" || fail "no mapping '$expected'"
done
grep -qE '^    #   notes \(text\)' "$WORK/suggested.yaml" || fail "notes not flagged as unmapped"
grep -qE '^    #   /extraField' "$WORK/suggested.yaml" || fail "extraField not flagged as unused"
grep -q "would not convert" "$WORK/suggested.yaml" && fail "good values flagged"
grep -q "11 of 12 columns mapped" "$WORK/suggest.err" || fail "summary: $(cat "$WORK/suggest.err")"

"$RMQ2PG" --check-config --config "$WORK/suggested.yaml" || fail "suggested config does not pass --check-config"
start_daemon "$WORK/suggested.yaml"
wait_until 60 "$N rows" rows_equal "$TABLE" $N
stop_daemon
expected_sum=$(seq 1 $N | awk '{ s += $1 + 0.25 } END { printf "%.2f", s }')
got=$(sql "SELECT sum(total_amount), count(*) FILTER (WHERE customer_name = 'Customer ' || order_id),
             count(*) FILTER (WHERE is_paid = (order_id % 2 = 0)), count(*) FILTER (WHERE tenant = 'acme'),
             count(*) FILTER (WHERE routing_key = '$QUEUE'), count(*) FILTER (WHERE currency_code = 'EUR'),
             count(*) FILTER (WHERE tags = ARRAY['a', 'b' || order_id]),
             count(*) FILTER (WHERE shipping_address->>'city' = 'Lyon'),
             count(*) FILTER (WHERE item_count = order_id),
             count(*) FILTER (WHERE created_at = '2026-12-01T10:00:00Z'::timestamptz + order_id * interval '1 minute'),
             count(*) FILTER (WHERE notes IS NULL) FROM \"$TABLE\"")
[[ $got == "$expected_sum|$N|$N|$N|$N|$N|$N|$N|$N|$N|$N" ]] || fail "rows not written as sent: $got"

# Values that would not convert are flagged, by the mapper and by PostgreSQL; URLs instead of
# a config file.
printf '%s\n' '{"orderId": 1, "customerName": "A", "totalAmount": "abc", "itemCount": 1e20}' \
    '{"orderId": 2, "totalAmount": 1.5, "itemCount": 2}' >"$WORK/bad.jsonl"
publish --queue "$QUEUE.bad" --declare-queue --file "$WORK/bad.jsonl"
"$RMQ2PG" suggest --amqp-url "$RMQ2PG_TEST_AMQP_URL" --postgres-url "$RMQ2PG_TEST_PG_URL" \
    --queue "$QUEUE.bad" --table "$TABLE" >"$WORK/bad.yaml" || fail "suggest with URLs failed"
cat "$WORK/bad.yaml"
grep -A3 '^      total_amount:' "$WORK/bad.yaml" | grep -q 'message 1: .*numeric' ||
    fail "'abc' for numeric not flagged"
grep -A3 '^      item_count:' "$WORK/bad.yaml" | grep -q 'message 1:' || fail "1e20 for integer not flagged"
grep -A3 '^      customer_name:' "$WORK/bad.yaml" | grep -q 'message 2: .*NOT NULL' ||
    fail "missing NOT NULL value not flagged"
grep -A1 '^      routing_key:' "$WORK/bad.yaml" | grep -q 'would not convert' && fail "routing_key flagged"
grep -A2 '^      total_amount:' "$WORK/bad.yaml" | grep -q 'message 2:' && fail "1.5 for numeric flagged"
[[ $(queue_ready "$QUEUE.bad") == 2 ]] || fail "suggest took messages"
"$RMQ2PG" --check-config --config "$WORK/bad.yaml" || fail "URL-made config does not pass --check-config"
log "PASS"
