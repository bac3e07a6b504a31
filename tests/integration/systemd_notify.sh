#!/usr/bin/env bash
# systemd's notify protocol without systemd: a unix datagram socket as NOTIFY_SOCKET and
# WATCHDOG_USEC=2 s; the daemon must send READY=1, then WATCHDOG=1 pings, a STATUS= line with
# rates, and STOPPING=1 on SIGTERM, in that order. Also `systemd-analyze verify` of the unit.
source "$(dirname "$0")/lib.sh"

# The unit: ExecStart must name an existing executable, so verify a copy pointing at the build.
if command -v systemd-analyze >/dev/null; then
    sed "s#/usr/bin/rmq2pg#$RMQ2PG_BUILD_DIR/rmq2pg#g" "$RMQ2PG_SOURCE_DIR/systemd/rmq2pg.service" \
        >"$WORK/rmq2pg.service"
    if systemd-analyze verify "$WORK/rmq2pg.service" >"$WORK/verify.log" 2>&1; then
        log "systemd-analyze verify: unit is valid"
    elif grep -qiE "failed to (connect|initialize)|not been booted|no such file or directory.*(bus|run/systemd)" \
        "$WORK/verify.log"; then
        log "SKIP systemd-analyze verify: cannot run in this container: $(head -1 "$WORK/verify.log")"
    else
        fail "systemd-analyze verify: $(cat "$WORK/verify.log")"
    fi
else
    log "SKIP systemd-analyze verify: systemd-analyze is not installed (package systemd)"
fi

# The listener writes every datagram as one line (newlines inside a datagram become spaces).
SOCKET="$WORK/notify.sock"
python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        data = s.recv(4096).decode(errors="replace")
        out.write(data.replace("\n", " ").strip() + "\n")
        out.flush()
' "$SOCKET" "$WORK/notify.log" &
LISTENER=$!
trap 'kill $LISTENER 2>/dev/null || true; cleanup' EXIT
wait_until 10 "notify socket" test -S "$SOCKET"
touch "$WORK/notify.log"

create_orders_table "$TABLE"
write_config "$WORK/rmq2pg.yaml" ignore 2
publish --queue "$QUEUE" --declare-queue --generate orders --count 1000
NOTIFY_SOCKET="$SOCKET" WATCHDOG_USEC=2000000 start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "READY=1" grep -qx "READY=1" "$WORK/notify.log"
publish --queue "$QUEUE" --generate orders --count 2000 --start 1001
wait_until 60 "3000 rows" rows_equal "$TABLE" 3000
# The periodic STATUS= comes with the progress line, every 10 s.
wait_until 30 "STATUS= with rates" grep -q "^STATUS=.*msg/s committed" "$WORK/notify.log"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
wait_until 10 "STOPPING=1" grep -qx "STOPPING=1" "$WORK/notify.log"
log "notifications: $(sort "$WORK/notify.log" | uniq -c | sed 's/^ *//' | cut -c1-60 | tr '\n' ';')"

# Order: READY=1, then a WATCHDOG=1 after it, then a rates STATUS= after that, then STOPPING=1.
python3 - "$WORK/notify.log" <<'PY' || fail "notifications out of order: $(cat "$WORK/notify.log")"
import sys
lines = open(sys.argv[1]).read().splitlines()
def index(pred, start):
    return next(i for i in range(start, len(lines)) if pred(lines[i]))
ready = index(lambda l: l == "READY=1", 0)
watchdog = index(lambda l: l == "WATCHDOG=1", ready)
status = index(lambda l: l.startswith("STATUS=") and "msg/s committed" in l, watchdog)
stopping = index(lambda l: l == "STOPPING=1", status)
assert lines.index("READY=1") == ready and lines.count("READY=1") == 1
assert lines.count("STOPPING=1") == 1 and not any(l == "WATCHDOG=1" for l in lines[stopping:])
PY
# WATCHDOG_USEC=2 s: a ping at least every second while running.
pings=$(grep -cx "WATCHDOG=1" "$WORK/notify.log")
log "$pings watchdog pings"
((pings >= 5)) || fail "too few watchdog pings in ~10 s: $pings"
log "PASS"
