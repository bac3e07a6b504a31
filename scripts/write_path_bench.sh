#!/usr/bin/env bash
# Compares the two ways to write a batch in ignore/upsert mode, on the same 100 000 rows in the
# same run (issue: "measure both and keep the faster"): COPY into a temporary staging table +
# one INSERT ... SELECT ... ON CONFLICT per batch (what rmq2pg does), versus one multi-row
# INSERT ... VALUES ... ON CONFLICT per batch. Batches of 1000 rows, each its own transaction.
# Usage: scripts/write_path_bench.sh [ROWS] (servers from scripts/servers.sh, started if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
scripts/servers.sh start >/dev/null
eval "$(scripts/servers.sh env)"
work=$(mktemp -d /tmp/rmq2pg-write-path-XXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$rows" <<'PY'
import random, sys
work, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
rows = [(i, f"acct-{random.randrange(5000)}", f"{random.randrange(1000000)/100:.2f}",
         random.choice(["EUR", "USD"]),
         '{"id": %d, "note": "order placed via web checkout"}' % i) for i in range(1, n + 1)]
with open(f"{work}/copy.sql", "w") as f:
    for b in range(0, n, 1000):
        f.write("BEGIN;\nCOPY stage (id, account, amount, currency, payload) FROM STDIN;\n")
        for r in rows[b:b + 1000]:
            f.write("\t".join(map(str, r)) + "\n")
        f.write("\\.\nINSERT INTO wp_copy (id, account, amount, currency, payload) SELECT DISTINCT ON (id) "
                "id, account, amount, currency, payload FROM stage ORDER BY id "
                "ON CONFLICT (id) DO UPDATE SET account = EXCLUDED.account, amount = EXCLUDED.amount, "
                "currency = EXCLUDED.currency, payload = EXCLUDED.payload;\nCOMMIT;\n")
with open(f"{work}/values.sql", "w") as f:
    for b in range(0, n, 1000):
        values = ",".join("(%d,'%s',%s,'%s','%s')" % r for r in rows[b:b + 1000])
        f.write("BEGIN;\nINSERT INTO wp_values (id, account, amount, currency, payload) VALUES "
                + values + " ON CONFLICT (id) DO UPDATE SET account = EXCLUDED.account, "
                "amount = EXCLUDED.amount, currency = EXCLUDED.currency, payload = EXCLUDED.payload;\nCOMMIT;\n")
PY
schema="DROP TABLE IF EXISTS wp_copy, wp_values;
CREATE TABLE wp_copy (id bigint PRIMARY KEY, account varchar(64) NOT NULL, amount numeric(12,2), currency text, payload jsonb);
CREATE TABLE wp_values (LIKE wp_copy INCLUDING ALL);"
psql "$RMQ2PG_TEST_PG_URL" -Xq -c "$schema"
run() { # run NAME FILE: prints seconds
    local start end
    start=$(date +%s.%N)
    psql "$RMQ2PG_TEST_PG_URL" -Xq -v ON_ERROR_STOP=1 \
        -c "CREATE TEMP TABLE stage ON COMMIT DELETE ROWS AS SELECT id, account, amount, currency, payload FROM wp_copy WITH NO DATA" \
        -f "$2" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
copy_s=$(run copy "$work/copy.sql")
values_s=$(run values "$work/values.sql")
check=$(psql "$RMQ2PG_TEST_PG_URL" -XAtc "SELECT (SELECT count(*) FROM wp_copy) || ' ' || (SELECT count(*) FROM wp_values)")
printf '%-44s %8s s  %9s rows/s\n' "COPY → staging + INSERT…SELECT ON CONFLICT" "$copy_s" "$(echo "$rows / $copy_s" | bc)"
printf '%-44s %8s s  %9s rows/s\n' "multi-row INSERT … VALUES ON CONFLICT" "$values_s" "$(echo "$rows / $values_s" | bc)"
printf 'ratio COPY path / VALUES path: %.2f×   (rows written: %s)\n' "$(echo "$values_s / $copy_s" | bc -l)" "$check"
psql "$RMQ2PG_TEST_PG_URL" -Xq -c "DROP TABLE wp_copy, wp_values"
