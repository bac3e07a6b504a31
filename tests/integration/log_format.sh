#!/usr/bin/env bash
# log.format json and repeated-error folding: with PostgreSQL unreachable every worker retries
# about once a second with the same error text; the log must hold one JSON object per line, write
# that error once per 10 s window and then a "(repeated N times in the last 10 s)" summary.
source "$(dirname "$0")/lib.sh"
write_config "$WORK/rmq2pg.yaml" ignore 1
# A closed port on loopback (nothing listens on 1); retries capped at 1 s by write_config.
sed -i -e "s#$RMQ2PG_TEST_PG_URL#postgresql://rmq2pg:rmq2pg@127.0.0.1:1/rmq2pg_test#" \
    -e 's/^log: { level: info }$/log: { level: info, format: json }/' "$WORK/rmq2pg.yaml"
grep -q "format: json" "$WORK/rmq2pg.yaml" || fail "could not switch the log to json"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 30 "a repeat summary" grep -q "repeated [0-9]* times in the last 10 s" "$DAEMON_LOG"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
python3 - "$DAEMON_LOG" <<'PY' || fail "log check failed"
import json, re, sys
entries = [json.loads(line) for line in open(sys.argv[1]).read().splitlines()]
assert all(set(e) == {"time", "level", "message"} for e in entries), "keys"
errors = [e["message"] for e in entries if e["level"] == "error" and "] database (connection" in e["message"]]
summaries = [m for m in errors if re.search(r"\(repeated \d+ times in the last 10 s\)$", m)]
plain = [m for m in errors if m not in summaries]
repeats = sum(int(re.search(r"repeated (\d+) times", m).group(1)) for m in summaries)
print(f"{len(entries)} JSON lines; connection error written {len(plain)} times, "
      f"{len(summaries)} summaries standing for {repeats} repeats")
assert summaries and repeats >= 5, "no folding"
assert len(plain) <= 3, f"{len(plain)} unfolded copies"
assert all(s.startswith(plain[0]) for s in summaries), "summary text differs from the line"
PY
log "PASS"
