#!/usr/bin/env bash
# The cost of the Debezium envelope: the same N changes (K keys, in log order) applied once as
# Debezium change events with the schema wrapper (format: debezium) and once as plain JSON with
# mode: upsert and version:, in one run against the private servers (scripts/servers.sh). Prints
# each rate (backlog published first, daemon started, time until the queue is drained and every
# change committed), their ratio, and the daemon's CPU per message (user + system).
set -euo pipefail
source_dir=${RMQ2PG_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build_dir=${RMQ2PG_BUILD_DIR:-$source_dir/build}
n=${1:-200000}
keys=${2:-20000}
workers=${3:-2}
eval "$("$source_dir/scripts/servers.sh" env)"
work=$(mktemp -d /tmp/rmq2pg-dbzbench-XXXX)
trap 'rm -rf "$work"' EXIT
sql() { psql "$RMQ2PG_TEST_PG_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
ready() { "$build_dir/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --stats "$1" | cut -d' ' -f1; }

python3 - "$work" "$n" "$keys" <<'PY'
import base64, json, random, sys
work, n, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(7)
ROW = [{"type": "int32", "optional": False, "field": "id"},
       {"type": "string", "optional": True, "field": "name"},
       {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "12"},
        "field": "amount"},
       {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp",
        "version": 1, "field": "updated_at"}]
SOURCE = [{"type": t, "optional": o, "field": f} for t, o, f in [
    ("string", False, "version"), ("string", False, "connector"), ("string", False, "name"),
    ("int64", False, "ts_ms"), ("string", True, "snapshot"), ("string", False, "db"),
    ("string", True, "sequence"), ("string", False, "schema"), ("string", False, "table"),
    ("int64", True, "txId"), ("int64", True, "lsn"), ("int64", True, "xmin")]]
SCHEMA = {"type": "struct", "optional": False, "name": "db.public.t.Envelope", "version": 1,
          "fields": [{"type": "struct", "fields": ROW, "optional": True,
                      "name": "db.public.t.Value", "field": "before"},
                     {"type": "struct", "fields": ROW, "optional": True,
                      "name": "db.public.t.Value", "field": "after"},
                     {"type": "struct", "fields": SOURCE, "optional": False,
                      "name": "io.debezium.connector.postgresql.Source", "field": "source"},
                     {"type": "string", "optional": False, "field": "op"},
                     {"type": "int64", "optional": True, "field": "ts_ms"}]}
seen = set()
with open(f"{work}/dbz.jsonl", "w") as d, open(f"{work}/json.jsonl", "w") as j:
    for i in range(n):
        key = random.randint(1, keys)
        cents = random.randint(-10**9, 10**9)
        micros = 1700000000000000 + i * 1000
        lsn = 24000000 + i * 64
        after = {"id": key, "name": f"customer {key} change {i}",
                 "amount": base64.b64encode(cents.to_bytes(5, "big", signed=True)).decode(),
                 "updated_at": micros}
        payload = {"before": None, "after": after, "op": "u" if key in seen else "c",
                   "ts_ms": micros // 1000, "transaction": None,
                   "source": {"version": "2.5.4.Final", "connector": "postgresql",
                              "name": "db", "ts_ms": micros // 1000, "snapshot": "false",
                              "db": "app", "sequence": None, "schema": "public", "table": "t",
                              "txId": 1000 + i, "lsn": lsn, "xmin": None}}
        seen.add(key)
        d.write(json.dumps({"schema": SCHEMA, "payload": payload}, separators=(",", ":")) + "\n")
        amount = f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"
        j.write(json.dumps({"id": key, "name": after["name"], "amount": amount,
                            "updated_at": micros / 1e6, "version": lsn},
                           separators=(",", ":")) + "\n")
PY
for t in dbz json; do
    sql "DROP TABLE IF EXISTS bench_$t; CREATE TABLE bench_$t (id int PRIMARY KEY, name text,
           amount numeric(12,2), updated_at timestamp, $([[ $t == dbz ]] && echo _rmq2pg_version || echo version) numeric)"
done
header() {
    cat <<YAML
amqp: { urls: ["$RMQ2PG_TEST_AMQP_URL"] }
postgres: { url: "$RMQ2PG_TEST_PG_URL" }
log: { level: warn }
pipelines:
YAML
}
{ header; cat <<YAML; } >"$work/dbz.yaml"
  - name: bench_dbz
    queue: bench_dbz
    format: debezium
    table: public.bench_dbz
    mode: upsert
    workers: $workers
    prefetch: 10000
YAML
{ header; cat <<YAML; } >"$work/json.yaml"
  - name: bench_json
    queue: bench_json
    table: public.bench_json
    mode: upsert
    key: [id]
    version: version
    workers: $workers
    prefetch: 10000
    columns: { id: /id, name: /name, amount: /amount, updated_at: /updated_at, version: /version }
YAML
"$build_dir/rmq2pg" --migrate --config "$work/dbz.yaml" >/dev/null
clk=$(getconf CLK_TCK)
declare -A rate cpu bytes
for t in dbz json; do
    "$build_dir/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "bench_$t" --declare-queue \
        --file "$work/$t.jsonl" >/dev/null
    bytes[$t]=$(($(wc -c <"$work/$t.jsonl") / n))
    start=$(date +%s.%N)
    "$build_dir/rmq2pg" --config "$work/$t.yaml" >"$work/$t.log" 2>&1 &
    pid=$!
    while (($(ready "bench_$t") > 0)); do sleep 0.05; done
    # Drained means delivered; committed is when the last change's version is in the table.
    last=$(tail -n 1 "$work/json.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    while [[ $(sql "SELECT count(*) FROM bench_$t WHERE id = $last AND name LIKE '% change $((n - 1))'") != 1 ]]; do sleep 0.02; done
    end=$(date +%s.%N)
    read -r utime stime < <(awk '{print $14, $15}' "/proc/$pid/stat")
    kill -TERM "$pid"
    wait "$pid" || true
    rate[$t]=$(echo "$n / ($end - $start)" | bc -l)
    cpu[$t]=$(echo "($utime + $stime) * 1000000 / $clk / $n" | bc -l)
    # Both tables must hold the same state.
done
same=$(sql "SELECT count(*) FROM bench_dbz d FULL JOIN bench_json j USING (id)
            WHERE d.name IS DISTINCT FROM j.name OR d.amount IS DISTINCT FROM j.amount
               OR d.updated_at IS DISTINCT FROM j.updated_at")
printf 'changes %d over %d keys, %d workers; bodies: debezium %d B, json %d B\n' "$n" "$keys" \
    "$workers" "${bytes[dbz]}" "${bytes[json]}"
printf '%-28s %10s %12s\n' format msgs/s 'CPU us/msg'
printf '%-28s %10.0f %12.1f\n' 'debezium (schema wrapper)' "${rate[dbz]}" "${cpu[dbz]}"
printf '%-28s %10.0f %12.1f\n' 'json upsert + version' "${rate[json]}" "${cpu[json]}"
printf 'ratio debezium/json: %.2f (target >= 0.8); rows differing between the tables: %s\n' \
    "$(echo "${rate[dbz]} / ${rate[json]}" | bc -l)" "$same"
