#!/usr/bin/env bash
# scripts/bench.sh --smoke end to end (5000 messages, 3 s of paced latency): every step completes
# and every count is exact. No timed assertion: figures depend on the machine.
source "$(dirname "$0")/lib.sh"
[[ -x "$RMQ2PG_BUILD_DIR/rmq2pg-bench" ]] || fail "rmq2pg-bench is not built"
# bench.sh exits non-zero when a step fails or times out, or when a count is not exact (drained,
# COPY rows, daemon rows and distinct ids, latency rows, queue empty after stop).
"$RMQ2PG_SOURCE_DIR/scripts/bench.sh" --smoke --step-timeout 180 >"$WORK/bench.out" 2>&1 ||
    { cat "$WORK/bench.out"; fail "scripts/bench.sh --smoke failed"; }
cat "$WORK/bench.out"
grep -q '^all counts exact: 5000 backlog rows + 1500 latency rows, queue empty$' "$WORK/bench.out" ||
    fail "the summary does not report exact counts"
log "PASS"
