#!/usr/bin/env bash
# Every write mode through PgBouncer in transaction pooling (scripts/pgbouncer.sh, 2 server
# connections for 14 workers): consecutive transactions of one worker land on different server
# connections, so nothing may outlive a transaction. Seven pipelines (insert, ignore, upsert,
# upsert with a version guard, deletes with tombstones, dedupe, routes), 2 workers each, with
# poison in each, through three disruptions mid-stream: a PgBouncer RECONNECT (every server
# connection replaced), a daemon restart (SIGTERM; PgBouncer keeps its server connections) and a
# kill -9. Every table must end exactly as expected and every poison be dead-lettered once.
source "$(dirname "$0")/lib.sh"

BOUNCER="$RMQ2PG_SOURCE_DIR/scripts/pgbouncer.sh"
eval "$("$BOUNCER" env)"
"$BOUNCER" start >/dev/null || fail "pgbouncer did not start"
# set +e: the handler must reach cleanup (which kills the daemon) whatever the status.
trap 'status=$?; set +e; "$BOUNCER" stop >/dev/null 2>&1; (exit $status); cleanup' EXIT
bsql() { psql "$RMQ2PG_TEST_PGBOUNCER_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
[[ $(bsql "SELECT 1") == 1 ]] || fail "no query through pgbouncer"

T=$TABLE
# Queues are named per run too: a recycled pid must not meet an earlier run's dead letters.
Q="${QUEUE}_$(date +%s)"
PIPES=(ins ign ups ver del ded rte)
for p in ins ded; do
    sql "DROP TABLE IF EXISTS ${T}_$p; CREATE TABLE ${T}_$p (id bigint, account text NOT NULL,
           amount numeric(12,2))"
done
for p in ign ups rte_a rte_b; do
    sql "DROP TABLE IF EXISTS ${T}_$p; CREATE TABLE ${T}_$p (id bigint PRIMARY KEY,
           account text NOT NULL, amount numeric(12,2))"
done
for p in ver del; do
    sql "DROP TABLE IF EXISTS ${T}_$p; CREATE TABLE ${T}_$p (id bigint PRIMARY KEY,
           version bigint NOT NULL, account text NOT NULL, amount numeric(12,2))"
done

pipeline() { # NAME MODE [EXTRA YAML]
    cat <<YAML
  - name: ${TEST_ID}_$1
    queue: ${Q}_$1
    declare: { durable: true }
    workers: 2
    prefetch: 500
    batch: { max_messages: 200, max_delay_ms: 20 }
    table: public.${T}_$1
    mode: $2
$3
YAML
}
{
    cat <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"], heartbeat_s: 10 }
postgres: { url: "$RMQ2PG_TEST_PGBOUNCER_URL"${RMQ2PG_TEST_POOL_SIZE:+, pool_size: $RMQ2PG_TEST_POOL_SIZE} }
shutdown_timeout_ms: 20000
retry: { initial_ms: 100, max_ms: 1000 }
log: { level: info }
pipelines:
YAML
    cols="    columns: { id: /id, account: /account, amount: /amount }"
    vcols="    columns: { id: /id, version: /version, account: /account, amount: /amount }"
    pipeline ins insert "$cols"
    pipeline ign ignore "    key: [id]
$cols"
    pipeline ups upsert "    key: [id]
$cols"
    pipeline ver upsert "    key: [id]
    version: version
$vcols"
    pipeline del upsert "    key: [id]
    version: version
    delete_when: { field: /op, equals: delete }
$vcols"
    pipeline ded insert "    dedupe: /event_id
$cols"
    cat <<YAML
  - name: ${TEST_ID}_rte
    queue: ${Q}_rte
    declare:
      bindings: [{ exchange: amq.topic, routing_key: "${TEST_ID}.#" }]
    workers: 2
    prefetch: 500
    batch: { max_messages: 200, max_delay_ms: 20 }
    routes:
      - match: "${TEST_ID}.a"
        table: ${T}_rte_a
        mode: ignore
        key: [id]
$(echo "$cols" | sed 's/^/    /')
      - match: "${TEST_ID}.b"
        table: ${T}_rte_b
        mode: upsert
        key: [id]
$(echo "$cols" | sed 's/^/    /')
YAML
} >"$WORK/rmq2pg.yaml"
# Tombstones and dedupe need rmq2pg's own tables: --migrate, through pgbouncer too.
"$RMQ2PG_BUILD_DIR/rmq2pg" --migrate --config "$WORK/rmq2pg.yaml" >/dev/null 2>&1 ||
    fail "--migrate through pgbouncer failed"
sql "DELETE FROM rmq2pg_state.tombstones WHERE table_name LIKE 'public.${T}_%';
     DELETE FROM rmq2pg_state.inbox WHERE pipeline LIKE '${TEST_ID}_%'"
"$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/rmq2pg.yaml" 2>"$WORK/check.log" ||
    fail "--check-config: $(cat "$WORK/check.log")"

# The messages of each phase and the expected final tables and dead-letter counts. Phases 1
# and 2 carry poison (a NULL in a NOT NULL column, caught by the INSERT; a non-number, caught by
# COPY; for routes also a routing key no route matches). Phase 3 (kill -9) has none: a poison
# dead-lettered just before the kill would be dead-lettered again after it, and insert mode has
# no messages there, since a kill between COMMIT and ack writes a batch twice in insert mode by
# design (docs/reliability.md); dedupe is the insert mode that survives it.
python3 - "$WORK" <<'PY'
import json, os, random, sys
random.seed(20261201)
work = sys.argv[1]
N = 600                        # keys per pipeline
msgs = {}                      # (pipe, phase) -> list of bodies
expected = {}                  # table suffix -> list of rows (tuples)
dead = {}                      # pipe -> expected dead letters
def add(pipe, phase, body):
    msgs.setdefault((pipe, phase), []).append(body)
def poison(pipe, phase, base):
    if phase == 3:
        return
    for k, bad in enumerate([{"account": None, "amount": "1.00"}, {"account": "x", "amount": "abc"},
                             {"account": None, "amount": "2.00"}]):
        body = {"id": base + phase * 10 + k, **bad}
        if pipe == "ded":
            body["event_id"] = f"poison-{phase}-{k}"
        add(pipe, phase, body)
        dead[pipe] = dead.get(pipe, 0) + 1
def amount(key, phase):
    return f"{key}.{phase:02d}"
for phase in (1, 2, 3):
    if phase < 3:  # insert: new ids every phase
        for i in range(N):
            add("ins", phase, {"id": phase * 100000 + i, "account": f"a{i}", "amount": amount(i, phase)})
            expected.setdefault("ins", []).append((phase * 100000 + i, f"a{i}", amount(i, phase)))
    for pipe in ("ign", "ups"):  # the same keys every phase, new values
        for i in range(1, N + 1):
            add(pipe, phase, {"id": i, "account": f"p{phase}", "amount": amount(i, phase)})
    for i in range(1, N + 1):  # dedupe: unique events, plus 20% exact duplicates
        ev = {"id": phase * 100000 + i, "event_id": f"e{phase}-{i}", "account": f"a{i}",
              "amount": amount(i, phase)}
        add("ded", phase, ev)
        expected.setdefault("ded", []).append((ev["id"], ev["account"], ev["amount"]))
        if random.random() < 0.2:
            add("ded", phase, ev)
    for i in range(1, N + 1):  # routes: a is ignore, b is upsert
        add("rte.a", phase, {"id": i, "account": f"p{phase}", "amount": amount(i, phase)})
        add("rte.b", phase, {"id": i, "account": f"p{phase}", "amount": amount(i, phase)})
    for pipe in ("ins", "ign", "ups", "ded", "rte.a"):
        poison(pipe, phase, 900000)
    if phase < 3:  # a routing key that no route matches
        add("rte.none", phase, {"id": 1, "account": "none", "amount": "1.00"})
        dead["rte"] = dead.get("rte", 0) + 1
expected["ign"] = [(i, "p1", amount(i, 1)) for i in range(1, N + 1)]
expected["ups"] = [(i, "p3", amount(i, 3)) for i in range(1, N + 1)]
expected["rte_a"] = [(i, "p1", amount(i, 1)) for i in range(1, N + 1)]
expected["rte_b"] = [(i, "p3", amount(i, 3)) for i in range(1, N + 1)]
dead["rte"] += dead.pop("rte.a")
# Version guard and deletes: 200 keys, versions 1..30 (10 per phase), shuffled within a phase;
# del also deletes at some versions (tombstones refuse the older updates that arrive later).
final = {"ver": {}, "del": {}}
for pipe in ("ver", "del"):
    for key in range(1, 201):
        deletes = set(random.sample(range(1, 31), random.choice([0, 1, 2]))) if pipe == "del" else set()
        if pipe == "del" and key % 5 == 0:
            deletes.add(random.choice([10, 20, 30]))  # a delete is a phase's last version
        for v in range(1, 31):
            phase = (v - 1) // 10 + 1
            op = "delete" if v in deletes else "upsert"
            add(pipe, phase, {"id": key, "version": v, "op": op, "account": f"k{key}",
                              "amount": amount(key, v)})
        top = 30
        if top not in deletes:
            final[pipe][key] = (key, top, f"k{key}", amount(key, top))
    for phase in (1, 2):
        for k, bad in enumerate([{"account": None}, {"amount": "abc"}]):
            add(pipe, phase, {"id": 900000 + phase * 10 + k, "version": 1, "op": "upsert",
                              "account": "x", "amount": "1.00", **bad})
            dead[pipe] = dead.get(pipe, 0) + 1
    expected[pipe] = [final[pipe][k] for k in sorted(final[pipe])]
for (pipe, phase), bodies in msgs.items():
    random.shuffle(bodies)
    with open(f"{work}/{pipe}.{phase}.jsonl", "w") as f:
        for b in bodies:
            f.write(json.dumps(b) + "\n")
for table, rows in expected.items():
    with open(f"{work}/expected_{table}.tsv", "w") as f:
        for r in sorted(rows):
            f.write("\t".join(str(x) for x in r) + "\n")
with open(f"{work}/dead.txt", "w") as f:
    for pipe in ("ins", "ign", "ups", "ver", "del", "ded", "rte"):
        f.write(f"{pipe} {dead.get(pipe, 0)}\n")
PY

# Declares every queue (and the routes' binding) before anything is published.
start_daemon "$WORK/rmq2pg.yaml"
consumed_by_two() {
    [[ $("$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --stats "$1" 2>/dev/null) == "0 2" ]]
}
for p in "${PIPES[@]}"; do
    wait_until 60 "queue ${Q}_$p consumed by 2 workers" consumed_by_two "${Q}_$p"
done

# Publishes a phase's files in the background, each spread over about 4 s, so that the
# disruption, sent about 1 s in, lands mid-stream in every pipeline.
rate_of() { echo $(($(wc -l <"$1") / 4 + 1)); }
publish_phase() {
    local phase=$1 pids=() f p
    for p in ins ign ups ver del ded; do
        f="$WORK/$p.$phase.jsonl"
        [[ -f "$f" ]] || continue
        publish --queue "${Q}_$p" --rate "$(rate_of "$f")" --file "$f" &
        pids+=($!)
    done
    for p in a b none; do
        f="$WORK/rte.$p.$phase.jsonl"
        [[ -f "$f" ]] || continue
        publish --exchange amq.topic --routing-key "${TEST_ID}.$p" --rate "$(rate_of "$f")" --file "$f" &
        pids+=($!)
    done
    PUBLISHERS=("${pids[@]}")
}
wait_publishers() {
    local pid
    for pid in "${PUBLISHERS[@]}"; do
        wait "$pid" || fail "a publisher failed"
    done
}
# Every queue of the test empty, ready and unacked alike (one rabbitmqctl call).
all_settled() {
    "$RMQ2PG_SOURCE_DIR/scripts/servers.sh" rabbitmqctl list_queues -q name messages |
        awk -v q="${Q}_" 'index($1, q) == 1 && $1 !~ /\.dead$/ && $2 != 0 { busy = 1 } END { exit busy }'
}
# More than 20 rows of the upsert table carry this phase's values: the stream is under way.
ups_rows_of() { (($(sql "SELECT count(*) FROM ${T}_ups WHERE account = '$1'") > 20)); }

log "phase 1: stream with a pgbouncer RECONNECT (every server connection replaced)"
publish_phase 1
wait_until 60 "phase 1 rows arriving" ups_rows_of p1
before=$("$BOUNCER" admin "SHOW SERVERS" | wc -l)
"$BOUNCER" admin "RECONNECT" >/dev/null || fail "RECONNECT failed"
log "RECONNECT with $before server connections"
wait_publishers
wait_until 90 "phase 1 written" all_settled
daemon_alive || fail "daemon died in phase 1"

log "phase 2: stream with a daemon restart (SIGTERM; pgbouncer keeps its server connections)"
publish_phase 2
wait_until 60 "phase 2 rows arriving" ups_rows_of p2
servers_before=$("$BOUNCER" admin "SHOW SERVERS" | wc -l)
stop_daemon
((DAEMON_EXIT == 0)) || fail "SIGTERM: exit $DAEMON_EXIT"
servers_after=$("$BOUNCER" admin "SHOW SERVERS" | wc -l)
log "SIGTERM: exit 0; pgbouncer server connections $servers_before before, $servers_after after"
((servers_after > 0)) || fail "pgbouncer dropped its server connections: the restart test needs them kept"
start_daemon "$WORK/rmq2pg.yaml"
wait_publishers
wait_until 90 "phase 2 written" all_settled

log "phase 3: stream with a kill -9 of the daemon"
publish_phase 3
wait_until 60 "phase 3 rows arriving" ups_rows_of p3
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
log "kill -9 sent"
start_daemon "$WORK/rmq2pg.yaml"
wait_publishers
wait_until 90 "phase 3 written" all_settled
stop_daemon
pooled_as_asked
((DAEMON_EXIT == 0)) || fail "final SIGTERM: exit $DAEMON_EXIT"

# Exact rows, every pipeline.
for t in ins ign ups ver del ded rte_a rte_b; do
    if [[ $t == ver || $t == del ]]; then
        sql "SELECT id, version, account, amount FROM ${T}_$t ORDER BY 1, 2, 3, 4" | tr '|' '\t' >"$WORK/actual_$t.tsv"
    else
        sql "SELECT id, account, amount FROM ${T}_$t ORDER BY 1, 2, 3" | tr '|' '\t' >"$WORK/actual_$t.tsv"
    fi
    sort "$WORK/expected_$t.tsv" -o "$WORK/expected_$t.tsv"
    sort "$WORK/actual_$t.tsv" -o "$WORK/actual_$t.tsv"
    diff "$WORK/expected_$t.tsv" "$WORK/actual_$t.tsv" >"$WORK/diff_$t" ||
        fail "table ${T}_$t differs from expected ($(wc -l <"$WORK/diff_$t") diff lines): $(head -4 "$WORK/diff_$t" | tr '\n' ' ')"
    log "${T}_$t: $(wc -l <"$WORK/actual_$t.tsv") rows, exactly as expected"
done
# Exact dead letters, every pipeline.
while read -r p n; do
    got=$(queue_ready "${Q}_$p.dead")
    ((got == n)) || fail "pipeline $p: $got dead letters, expected $n"
    log "pipeline $p: $n dead letters, as expected"
done <"$WORK/dead.txt"
# Session state would have shown as these SQLSTATEs (missing / duplicate staging table, unknown
# prepared statement).
if grep -E '42P01|42P07|26000|42P05' "$DAEMON_LOG" >/dev/null; then
    fail "session state leaked through pgbouncer: $(grep -m 3 -E '42P01|42P07|26000|42P05' "$DAEMON_LOG")"
fi
log "PASS: 7 pipelines x 3 disruptions through pgbouncer (transaction pooling, pool 2): exact rows and dead letters"
