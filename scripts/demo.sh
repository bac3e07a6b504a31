#!/usr/bin/env bash
# The demo on a fresh Debian 12 machine: installs packages, builds, starts private RabbitMQ and
# PostgreSQL on loopback, publishes sample orders, runs rmq2pg with config/rmq2pg.example.yaml
# and shows the rows arriving. Stop the servers afterwards with: scripts/servers.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${DEMO_MESSAGES:-50000}

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
scripts/servers.sh start
eval "$(scripts/servers.sh env)"
export RMQ2PG_AMQP_URL="$RMQ2PG_TEST_AMQP_URL" RMQ2PG_PG_URL="$RMQ2PG_TEST_PG_URL"
psql "$RMQ2PG_PG_URL" -Xq -v ON_ERROR_STOP=1 -f sql/001_orders.sql
psql "$RMQ2PG_PG_URL" -Xq -c "TRUNCATE public.orders"

echo "== publishing $COUNT sample orders (1% of them malformed) to queue 'orders'"
build/rmq2pg-publish --url "$RMQ2PG_AMQP_URL" --queue orders --declare-queue \
    --generate orders --count "$COUNT" --poison-percent 1 --seed "$RANDOM"

echo "== starting rmq2pg (log: build/demo.log)"
build/rmq2pg --config config/rmq2pg.example.yaml >build/demo.log 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 20); do
    sleep 0.5
    rows=$(psql "$RMQ2PG_PG_URL" -XAtq -c "SELECT count(*) FROM public.orders")
    left=$(build/rmq2pg-publish --url "$RMQ2PG_AMQP_URL" --stats orders | cut -d' ' -f1)
    dead=$(build/rmq2pg-publish --url "$RMQ2PG_AMQP_URL" --stats orders.dead 2>/dev/null | cut -d' ' -f1 || echo 0)
    echo "rows in public.orders: $rows   still queued: $left   dead-lettered: $dead"
    [[ "$left" == 0 && $((rows + dead)) -ge $COUNT ]] && break
done
echo "== a few rows"
psql "$RMQ2PG_PG_URL" -X -c "SELECT id, account, amount, currency, message_id, received_at FROM public.orders ORDER BY id LIMIT 5"
kill -TERM $pid
wait $pid || true
trap - EXIT
echo "== daemon log (last lines)"
tail -n 8 build/demo.log
echo "== done. The servers keep running; stop them with: scripts/servers.sh stop"
