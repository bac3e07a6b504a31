#!/usr/bin/env bash
# docker-compose for real: builds the rmq2pg image from the Dockerfile, brings the project's
# docker-compose.yml up unchanged (RabbitMQ and PostgreSQL images made from Debian's packages by
# scripts/compose_images.sh, as public images cannot be pulled here), publishes 1 000 orders to
# the compose broker, sees them arrive as rows in the compose database, then `docker-compose
# down`. Needs root (dockerd); starts dockerd when none runs, and stops the one it started.
set -euo pipefail
: "${RMQ2PG_SOURCE_DIR:?}" "${RMQ2PG_BUILD_DIR:?}"
cd "$RMQ2PG_SOURCE_DIR"
N=1000
PROJECT="rmq2pg_compose_$$"
WORK="$(mktemp -d /tmp/rmq2pg-compose-XXXX)"
DOCKERD_PID=""
COMPOSE=(docker-compose -p "$PROJECT" -f docker-compose.yml)

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
fail() {
    log "FAIL: $*"
    "${COMPOSE[@]}" ps 2>/dev/null || true
    "${COMPOSE[@]}" logs --no-color --tail 30 2>/dev/null || true
    exit 1
}
cleanup() {
    local status=$?
    "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    [[ -n $DOCKERD_PID ]] && kill "$DOCKERD_PID" 2>/dev/null || true
    if [[ $status -eq 0 ]]; then rm -rf "$WORK"; else log "work dir kept: $WORK"; fi
}
trap cleanup EXIT
# wait_until SECONDS DESCRIPTION COMMAND...
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for: $what"
        sleep 1
    done
}

((EUID == 0)) || fail "needs root to run dockerd"
command -v dockerd >/dev/null && command -v mmdebstrap >/dev/null || scripts/deps.sh
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    dockerd >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    wait_until 60 "dockerd" docker info
fi
for port in 5672 15672 5432; do
    ! ss -Hltn "sport = :$port" | grep -q . || fail "port $port is taken: docker-compose.yml publishes it"
done

started=$SECONDS
scripts/compose_images.sh || fail "could not make the base images"
images_s=$((SECONDS - started))

started=$SECONDS
"${COMPOSE[@]}" build --quiet rmq2pg || fail "docker build of the Dockerfile failed"
build_s=$((SECONDS - started))

started=$SECONDS
"${COMPOSE[@]}" up -d || fail "docker-compose up failed"
healthy() {
    local service id
    for service in rabbitmq postgres; do
        id=$("${COMPOSE[@]}" ps -q "$service")
        [[ $(docker inspect -f '{{.State.Health.Status}}' "$id") == healthy ]] || return 1
    done
}
wait_until 180 "rabbitmq and postgres healthy (their compose health checks)" healthy
rmq2pg_running() { [[ $(docker inspect -f '{{.State.Running}}' "$("${COMPOSE[@]}" ps -q rmq2pg)") == true ]]; }
wait_until 60 "the rmq2pg container running" rmq2pg_running
up_s=$((SECONDS - started))

# The sql/ init directory made the orders table; the example config consumes queue "orders".
PG_URL="postgresql://rmq2pg:rmq2pg@127.0.0.1:5432/app"
[[ $(psql "$PG_URL" -XAtc "SELECT to_regclass('public.orders') IS NOT NULL") == t ]] ||
    fail "sql/001_orders.sql was not applied"
# The health check says the listener is up; docker's port proxy may still take a moment. A
# publish cut short is repeated whole: the example pipeline's mode ignore keeps each id once.
publish_orders() {
    "$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url amqp://guest:guest@127.0.0.1:5672/ --queue orders \
        --declare-queue --generate orders --count $N >/dev/null
}
wait_until 30 "publishing $N orders to the compose broker" publish_orders
rows_arrived() { [[ $(psql "$PG_URL" -XAtc "SELECT count(*) FROM orders") == "$N" ]]; }
wait_until 120 "$N rows in the compose database" rows_arrived
"${COMPOSE[@]}" logs --no-color rmq2pg | tail -n 5
"${COMPOSE[@]}" logs --no-color rmq2pg | grep -q "consuming from queue" || fail "rmq2pg did not log its consuming"

started=$SECONDS
"${COMPOSE[@]}" down -v >/dev/null 2>&1 || fail "docker-compose down failed"
down_s=$((SECONDS - started))
[[ -z $("${COMPOSE[@]}" ps -q) ]] || fail "containers left after down"
log "images ${images_s} s, docker build ${build_s} s, up until healthy ${up_s} s, down ${down_s} s"
log "PASS"
