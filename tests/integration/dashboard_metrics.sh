#!/usr/bin/env bash
# The Grafana dashboard (dashboards/rmq2pg.json) queries only metrics a running daemon exports:
# every rmq2pg_* name in its expressions is a series of /metrics. Also the dead-letter queue's
# depth (rmq2pg_dead_letter_queue_messages) and /api/status's top reasons of the last hour,
# after a few poison messages: reason groups only, never a body.
source "$(dirname "$0")/lib.sh"
DASHBOARD="$RMQ2PG_SOURCE_DIR/dashboards/rmq2pg.json"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" insert 1
echo "http: { listen: \"127.0.0.1:$PORT\" }" >>"$WORK/rmq2pg.yaml"
publish --queue "$QUEUE" --declare-queue --generate orders --count 100
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "100 rows" rows_equal "$TABLE" 100
printf '%s\n' '{"id": 1001, "account": "a", "amount": "secret-value-1"}' \
    '{"id": 1002, "account": "a", "amount": "secret-value-2"}' '{"id": 1003, broken' >"$WORK/poison.jsonl"
publish --queue "$QUEUE" --file "$WORK/poison.jsonl"
wait_until 60 "3 dead letters" queue_ready_equal "$QUEUE.dead" 3

dlq_metric() {
    curl -sf "$BASE/metrics" | awk -v m="rmq2pg_dead_letter_queue_messages{pipeline=\"$TEST_ID\",queue=\"$QUEUE.dead\"}" \
        '$1 == m { print $2 }'
}
dlq_metric_is_3() { [[ $(dlq_metric) == 3 ]]; }
wait_until 30 "rmq2pg_dead_letter_queue_messages 3" dlq_metric_is_3

curl -sf "$BASE/metrics" >"$WORK/metrics.txt"
python3 - "$DASHBOARD" "$WORK/metrics.txt" <<'PY' || fail "the dashboard queries metrics /metrics does not have"
import json, re, sys
dashboard = json.load(open(sys.argv[1]))
series = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
          for line in open(sys.argv[2]) if line.strip() and not line.startswith("#")}
queried = set()
def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                queried.update(re.findall(r"\brmq2pg_[a-z0-9_]+", value))
            walk(value)
    elif isinstance(node, list):
        for item in node:
            walk(item)
walk(dashboard)
missing = sorted(queried - series)
print(f"dashboard queries {len(queried)} metrics; /metrics has {len(series)} series names")
if len(queried) < 15 or missing:
    print("missing from /metrics:", missing)
    sys.exit(1)
PY

curl -sf "$BASE/api/status" >"$WORK/status.json"
python3 - "$WORK/status.json" "$TEST_ID" "$QUEUE.dead" <<'PY' || fail "status: dead letters wrong: $(cat "$WORK/status.json")"
import json, sys
status = json.load(open(sys.argv[1]))
p = next(p for p in status["pipelines"] if p["name"] == sys.argv[2])
d = p["dead_letters"]
reasons = d["top_reasons_last_hour"]
print(d["queue"], d["messages"], reasons)
assert d["queue"] == sys.argv[3] and d["messages"] == 3
assert sum(r["count"] for r in reasons) == 3 and len(reasons) == 2, reasons
assert reasons[0]["count"] == 2 and "22P02" in reasons[0]["reason"], reasons
assert "secret-value" not in json.dumps(d)
PY
stop_daemon
log "PASS"
