#!/usr/bin/env bash
# content_encoding: gzip and deflate (zlib-wrapped and raw) bodies are decompressed before they
# are mapped ($body is the decompressed body); a gzip bomb declaring 1 GiB is poison and the
# daemon's peak memory stays far below it; an unknown encoding and a corrupt stream are poison
# with their reasons, and their batch-mates commit.
source "$(dirname "$0")/lib.sh"
N=150  # per encoding
sql "DROP TABLE IF EXISTS \"$TABLE\"; CREATE TABLE \"$TABLE\" (
       id bigint PRIMARY KEY, note text, doc jsonb, enc text)"
{
    config_header
    cat <<YAML
log: { level: info }
pipelines:
  - name: $TEST_ID
    queue: $QUEUE
    table: public.$TABLE
    mode: upsert
    key: [id]
    columns: { id: /id, note: /note, doc: \$body, enc: \$header.enc }
YAML
} >"$WORK/rmq2pg.yaml"

python3 - "$WORK" "$N" <<'PY'
import gzip, json, os, sys, zlib
work, n = sys.argv[1], int(sys.argv[2])
def body(i):
    return json.dumps({"id": i, "note": "n%d " % i + "é" * (i % 50) + "x" * (i * 37 % 3000)}).encode()
for kind, start in (("gzip", 0), ("zlib", 10000), ("raw", 20000)):
    os.makedirs(f"{work}/{kind}")
    for i in range(start, start + n):
        b = body(i)
        if kind == "gzip":
            data = gzip.compress(b)
        elif kind == "zlib":
            data = zlib.compress(b)
        else:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            data = c.compress(b) + c.flush()
        open(f"{work}/{kind}/{i}", "wb").write(data)
# 1 GiB of a JSON string's content, streamed through gzip: the file is about 1 MB.
with gzip.open(f"{work}/bomb.gz", "wb", compresslevel=9) as f:
    f.write(b'{"id": 99999, "note": "')
    chunk = b"a" * (1 << 20)
    for _ in range(1024):
        f.write(chunk)
    f.write(b'"}')
open(f"{work}/corrupt.gz", "wb").write(gzip.compress(body(99998))[:-40] + b"garbage" * 5)
open(f"{work}/brotli", "wb").write(body(99997))
PY
log "bomb: $(stat -c %s "$WORK/bomb.gz") bytes compressed"

files() { local f; for f in "$@"; do printf -- '--body-file\n%s\n' "$f"; done; }
mapfile -t args < <(files "$WORK"/gzip/*)
publish --queue "$QUEUE" --declare-queue --content-encoding gzip --header enc=gzip "${args[@]}"
mapfile -t args < <(files "$WORK"/zlib/*)
publish --queue "$QUEUE" --content-encoding deflate --header enc=zlib "${args[@]}"
mapfile -t args < <(files "$WORK"/raw/*)
publish --queue "$QUEUE" --content-encoding Deflate --header enc=raw "${args[@]}"
publish --queue "$QUEUE" --content-encoding gzip --body-file "$WORK/bomb.gz"
publish --queue "$QUEUE" --content-encoding gzip --body-file "$WORK/corrupt.gz"
publish --queue "$QUEUE" --content-encoding br --body-file "$WORK/brotli"

start_daemon "$WORK/rmq2pg.yaml"
wait_until 120 "every message written or dead-lettered" rows_plus_dead_equal "$TABLE" "$QUEUE" $((3 * N + 3))
peak_kb=$(awk '/^VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status")
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
log "peak RSS ${peak_kb} kB"
# The cap is max_message_bytes (64 MiB by default): the 1 GiB never reaches memory.
((peak_kb < 200 * 1024)) || fail "peak RSS ${peak_kb} kB: the bomb was inflated"

[[ $(row_count "$TABLE") == $((3 * N)) ]] || fail "$(row_count "$TABLE") rows, expected $((3 * N))"
# Every row holds exactly the body that was compressed ($body = the decompressed body).
python3 - "$WORK" "$N" >"$WORK/expected.tsv" <<'PY'
import json, sys
n = int(sys.argv[2])
for kind, start in (("gzip", 0), ("zlib", 10000), ("raw", 20000)):
    for i in range(start, start + n):
        note = "n%d " % i + "é" * (i % 50) + "x" * (i * 37 % 3000)
        print(f"{i}\t{note}\t{kind}\t{note}")
PY
sql "SELECT id, note, enc, doc->>'note' FROM \"$TABLE\" ORDER BY id" | tr "|" "\t" >"$WORK/actual.tsv"
diff -q "$WORK/expected.tsv" "$WORK/actual.tsv" >/dev/null || fail "rows differ from the bodies sent"

"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-rmq2pg-error >"$WORK/dead.tsv" 2>/dev/null || true
grep -q "more than max_message_bytes 67108864" "$WORK/dead.tsv" || fail "no bomb reason"
grep -q "content_encoding 'br' is not one rmq2pg decodes" "$WORK/dead.tsv" || fail "no unknown-encoding reason"
grep -qE "gzip body (does not decompress|is cut short)" "$WORK/dead.tsv" || fail "no corrupt-gzip reason"
[[ $(wc -l <"$WORK/dead.tsv") == 3 ]] || fail "expected 3 dead letters, got $(wc -l <"$WORK/dead.tsv")"
log "PASS"
