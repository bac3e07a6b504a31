#!/usr/bin/env bash
# A dead letter whose headers do not fit an AMQP frame (a 300 KiB reason; frame_max is 128 KiB)
# is refused as unpublishable before anything is sent, and the same connection then publishes
# the message with a short reason: rabbitmq-c alone would send basic.publish without its content,
# and the broker would close the connection at the next frame.
source "$(dirname "$0")/lib.sh"
publish --queue "$QUEUE" --declare-queue --generate orders --count 1 --header x-tenant=acme
out=$("$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --queue "$QUEUE" \
    --dead-letter-probe $((300 * 1024))) || fail "the probe failed: $out"
log "probe: ${out//$'\n'/ | }"
grep -q "^oversized: unpublishable: publishing to exchange '' routing key '$QUEUE.dead' on .*table too large" \
    <<<"$out" || fail "the oversized dead letter was not refused as unpublishable"
grep -qx "normal: confirmed" <<<"$out" || fail "the connection did not survive the refusal"
# Only the normal one reached the dead-letter queue, with the original's headers; the original
# was acked.
"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_TEST_AMQP_URL" --drain "$QUEUE.dead" \
    --headers x-tenant,x-rmq2pg-error >"$WORK/dead.tsv"
[[ $(wc -l <"$WORK/dead.tsv") == 1 ]] || fail "expected 1 dead letter, got $(wc -l <"$WORK/dead.tsv")"
IFS=$'\t' read -r tenant reason _ <"$WORK/dead.tsv"
[[ $tenant == acme && $reason == rrrrr ]] || fail "dead letter headers: '$tenant' '$reason'"
(($(queue_ready "$QUEUE") == 0)) || fail "the original message was not acked"
log "PASS"
