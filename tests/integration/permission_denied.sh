#!/usr/bin/env bash
# INSERT revoked from the daemon's role while it runs: every write fails with "permission denied"
# (SQLSTATE 42501), which must be logged as a schema problem with its SQLSTATE (libpqxx 6.4 drops
# the code of this one error; it once read as "connection lost"), nothing is dead-lettered, and
# once INSERT is granted again the held messages are written, in insert and upsert mode alike.
source "$(dirname "$0")/lib.sh"
ROLE=rmq2pg_limited
sql "DO \$\$BEGIN
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
         CREATE ROLE $ROLE LOGIN PASSWORD 'limited';
       END IF;
     END\$\$;
     DROP TABLE IF EXISTS ${TABLE}_ins, ${TABLE}_ups;
     CREATE TABLE ${TABLE}_ins (id bigint, v text);
     CREATE TABLE ${TABLE}_ups (id bigint PRIMARY KEY, v text);
     GRANT SELECT, INSERT, UPDATE ON ${TABLE}_ins, ${TABLE}_ups TO $ROLE"
LIMITED_URL=${RMQ2PG_TEST_PG_URL/rmq2pg:rmq2pg@/$ROLE:limited@}
[[ "$LIMITED_URL" != "$RMQ2PG_TEST_PG_URL" ]] || fail "cannot derive the limited role's URL"
cat >"$WORK/rmq2pg.yaml" <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$LIMITED_URL" }
retry: { initial_ms: 100, max_ms: 500 }
pipelines:
  - name: ${TEST_ID}_ins
    queue: ${QUEUE}_ins
    table: public.${TABLE}_ins
    mode: insert
    columns: { id: /id, v: /v }
  - name: ${TEST_ID}_ups
    queue: ${QUEUE}_ups
    table: public.${TABLE}_ups
    mode: upsert
    key: [id]
    columns: { id: /id, v: /v }
YAML
send() { # FIRST LAST: ids FIRST..LAST to both queues
    local q
    for q in ins ups; do
        seq "$1" "$2" | sed 's/.*/{"id": &, "v": "x&"}/' | publish --queue "${QUEUE}_$q" --declare-queue
    done
}
both_rows() { (($(row_count "${TABLE}_ins") == $1 && $(row_count "${TABLE}_ups") == $1)); }
send 1 10
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "first 10 rows in both tables" both_rows 10

sql "REVOKE INSERT ON ${TABLE}_ins, ${TABLE}_ups FROM $ROLE"
send 11 20
denied() { grep -F "permission denied for table $1 (SQLSTATE 42501) (schema)" "$DAEMON_LOG" >/dev/null; }
wait_until 60 "insert mode's denial logged as schema with its SQLSTATE" denied "${TABLE}_ins"
wait_until 60 "upsert mode's denial logged as schema with its SQLSTATE" denied "${TABLE}_ups"
if grep -F "permission denied" "$DAEMON_LOG" | grep -F "(connection lost)" >/dev/null; then
    fail "permission denied logged as a lost connection: $(grep -m1 -F 'permission denied' "$DAEMON_LOG")"
fi
both_rows 10 || fail "rows written without INSERT permission"
[[ $(queue_ready "${QUEUE}_ins.dead") == 0 && $(queue_ready "${QUEUE}_ups.dead") == 0 ]] ||
    fail "a permission problem dead-lettered messages"
log "denied: both pipelines log SQLSTATE 42501 (schema) and hold their messages"

sql "GRANT INSERT ON ${TABLE}_ins, ${TABLE}_ups TO $ROLE"
wait_until 60 "held rows written once INSERT is granted again" both_rows 20
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "PASS: permission denied is a schema error with SQLSTATE 42501; 20 rows in each table after the GRANT"
