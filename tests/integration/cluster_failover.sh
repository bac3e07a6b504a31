#!/usr/bin/env bash
# Failover across a real 3-node RabbitMQ cluster (scripts/cluster.sh) with a quorum queue.
# 50 000 messages stream into the queue through c3 while one daemon (2 workers, amqp.urls =
# c1, c2, c3: worker 0 starts on c1, worker 1 on c2) writes them to PostgreSQL in mode ignore.
#   round 1: c1 (worker 0's node and the queue's leader) is stopped gracefully, then restarted;
#   round 2: c2 (by then both workers' node; the leader is moved there) is killed with SIGKILL,
#            then restarted.
# Checked: each worker cut off reconnects to a surviving node while the stopped one is still
# down; the daemon never restarts (same pid, one start line); every id is exactly one row
# (rows == distinct ids == 50 000); the queue and its dead-letter queue end empty. Printed per
# round: each worker's reconnect time, the resume time (from the daemon losing its connection
# until rows grew again after it reconnected) and the longest pause in row growth; docs/ha.md
# quotes them.
# RMQ2PG_CLUSTER_DLQ=default reproduces the daemon's own dead-letter declaration (a classic
# queue whose home node is c1) instead of the quorum dead-letter queue used by default.
source "$(dirname "$0")/lib.sh"
CLUSTER="$RMQ2PG_SOURCE_DIR/scripts/cluster.sh"
export RMQ2PG_CLUSTER_TIMEOUT=${RMQ2PG_CLUSTER_TIMEOUT:-60}
N=50000
RATE=${CLUSTER_FAILOVER_RATE:-750} # messages/s: the stream lasts ~67 s, covering both rounds
PUBLISHER_PID=""
SAMPLER_PID=""

teardown() {
    local status=$1 pid
    for pid in "$SAMPLER_PID" "$PUBLISHER_PID"; do
        if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -9 "$DAEMON_PID" 2>/dev/null || true
    fi
    DAEMON_PID=""
    if ((status == 0)); then
        "$CLUSTER" clean >/dev/null 2>&1 || true
    else
        "$CLUSTER" stop >/dev/null 2>&1 || true
        log "cluster stopped, its logs kept in ${RMQ2PG_CLUSTER_DIR:-/tmp/rmq2pg-cluster}/c*/log"
    fi
}
trap 'status=$?; teardown $status; (exit $status); cleanup' EXIT

ctl() { "$CLUSTER" rabbitmqctl "$@"; }
epoch() { date +%s.%3N; }
# log_epoch LINE: the epoch seconds of a daemon log line's timestamp.
log_epoch() { date -d "${1%% *}" +%s.%3N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# eval_ok NODE ERLANG: evaluates ERLANG on NODE and fails unless it printed ok/{new,...}.
eval_ok() {
    local out
    out=$(ctl "$1" eval "$2" 2>&1) || fail "rabbitmqctl eval on c$1 failed: $out"
    [[ "$out" == ok* || "$out" == "{new,"* || "$out" == "{existing,"* ]] || fail "eval on c$1: $out"
}
# rabbit_amqqueue:declare(Name, Durable, AutoDelete, Arguments, Owner, ActingUser), evaluated on
# c1: the queue's leader (quorum) or home node (classic) is c1.
declare_queue() {
    local name=$1 args=$2
    eval_ok 1 "rabbit_amqqueue:declare(rabbit_misc:r(<<\"/\">>, queue, <<\"$name\">>), true, false, [$args], none, <<\"cluster_failover\">>)."
}
QUORUM_ARGS='{<<"x-queue-type">>, longstr, <<"quorum">>}, {<<"x-quorum-initial-group-size">>, long, 3}'

# queue_field QUEUE COLUMN: one column of list_queues for QUEUE, asked of c3 (never stopped).
queue_field() { ctl 3 list_queues -q --no-table-headers name "$2" | awk -v q="$1" -F'\t' '$1 == q { print $2 }'; }
queue_messages_equal() { [[ "$(queue_field "$1" messages)" == "$2" ]]; }
queue_online_count() { queue_field "$QUEUE" online | tr -cd '@' | wc -c; }
queue_fully_online() { (($(queue_online_count) == 3)); }
leader_is() { [[ "$(queue_field "$QUEUE" leader)" == "$1" ]]; }

port_node() { echo "c$((($1 - ${RMQ2PG_CLUSTER_PORT_BASE:-23672}) / 10 + 1))"; }
# worker_node W: the node worker W last connected to, from the daemon log.
worker_node() {
    local port
    port=$(grep "\[$TEST_ID/$1\] consuming from queue" "$DAEMON_LOG" | tail -n 1 | sed -E 's/.*:([0-9]+)\/$/\1/')
    [[ -n "$port" ]] && port_node "$port"
}

# ---------------------------------------------------------------- setup

log "starting the cluster"
"$CLUSTER" start || fail "cluster start failed"
eval "$("$CLUSTER" env)"
declare_queue "$QUEUE" "$QUORUM_ARGS"
if [[ "${RMQ2PG_CLUSTER_DLQ:-quorum}" == default ]]; then
    # What the daemon declares itself when dead_letter.exchange is empty: a classic queue, whose
    # home is the node that declared it first (c1 here, as if worker 0 had been first).
    declare_queue "$QUEUE.dead" ""
    dead_letter_yaml=""
else
    # A quorum dead-letter queue bound to amq.direct: with dead_letter.exchange set, the daemon
    # publishes there and declares nothing, so no queue of a single node is on its path.
    declare_queue "$QUEUE.dead" "$QUORUM_ARGS"
    eval_ok 1 "rabbit_binding:add({binding, rabbit_misc:r(<<\"/\">>, exchange, <<\"amq.direct\">>), <<\"$QUEUE.dead\">>, rabbit_misc:r(<<\"/\">>, queue, <<\"$QUEUE.dead\">>), []}, <<\"cluster_failover\">>)."
    dead_letter_yaml="    dead_letter: { exchange: amq.direct, routing_key: $QUEUE.dead }"
fi
[[ "$(queue_field "$QUEUE" type)" == quorum ]] || fail "$QUEUE is not a quorum queue: $(ctl 3 list_queues -q name type)"
wait_until 30 "3 online members of $QUEUE" queue_fully_online
log "quorum queue $QUEUE: leader $(queue_field "$QUEUE" leader), members $(queue_field "$QUEUE" online)"

create_orders_table "$TABLE"
sql "ALTER TABLE \"$TABLE\" ADD COLUMN delivery_count int"
# Each failover returns a worker's unacked messages and the quorum queue counts that as a
# delivery: max_redeliveries stays above the failovers a message may live through.
{
    config_header "$RMQ2PG_CLUSTER_URL_1" "$RMQ2PG_CLUSTER_URL_2" "$RMQ2PG_CLUSTER_URL_3"
    echo "log: { level: info }"
    echo "pipelines:"
    orders_pipeline "$TEST_ID" "$QUEUE" "public.$TABLE" mode=ignore extra="\
      delivery_count: \$header.x-delivery-count
    max_redeliveries: 10
$dead_letter_yaml"
} >"$WORK/rmq2pg.yaml"

start_daemon "$WORK/rmq2pg.yaml"
FIRST_PID=$DAEMON_PID
wait_until 30 "every worker consuming" grep -q "ready: every worker is consuming" "$DAEMON_LOG"
log "worker 0 on $(worker_node 0), worker 1 on $(worker_node 1); publishing $N messages at $RATE/s to c3"

"$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "$RMQ2PG_CLUSTER_URL_3" --queue "$QUEUE" \
    --generate orders --count $N --rate "$RATE" >"$WORK/publisher.log" 2>&1 &
PUBLISHER_PID=$!
# Row counts with timestamps, every ~0.1 s, for the resume times. Stamped once the count is
# back (a query can take a while on a busy machine): "N rows at T" means N rows by T at the latest.
while :; do
    count=$(row_count "$TABLE" 2>/dev/null || echo -1)
    printf '%s %s\n' "$(epoch)" "$count"
    sleep 0.1
done >"$WORK/rows.tsv" &
SAMPLER_PID=$!

# ---------------------------------------------------------------- failover rounds

# failover NODE_NUMBER MIN_ROWS [--kill]: once MIN_ROWS rows are in, stops node NODE_NUMBER
# (gracefully, or with SIGKILL), checks that every worker it cut off reconnects elsewhere while it
# is down, reports the times, starts it again and waits for the queue's 3 members to be back.
# Times: from the stop command; "cut off" when the daemon logged the lost connection; "resume"
# from then until rows grew again after the last of those workers consumed again; "pause" the
# longest interval without row growth from the stop command until a few seconds after that.
failover() {
    local n=$1 min_rows=$2 how=${3:-} down=c$1
    wait_until 120 "$min_rows rows before stopping $down" rows_at_least "$TABLE" "$min_rows"
    daemon_alive || fail "daemon died"
    local on_node=() w
    for w in 0 1; do [[ "$(worker_node $w)" == "$down" ]] && on_node+=("$w"); done
    ((${#on_node[@]} > 0)) || fail "no worker on $down to cut off"
    # The node takes the queue's leader down with it: moved there first if an election put it
    # elsewhere (rabbit_quorum_queue:transfer_leadership, what maintenance mode uses).
    local leader
    leader=$(queue_field "$QUEUE" leader)
    if [[ "$leader" != "rmq2pg-$down@localhost" ]]; then
        eval_ok 1 "{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"$QUEUE\">>)), {migrated, _} = rabbit_quorum_queue:transfer_leadership(Q, 'rmq2pg-$down@localhost'), ok."
        wait_until 30 "leader of $QUEUE on $down" leader_is "rmq2pg-$down@localhost"
        log "queue leader moved from $leader to $down"
        leader=rmq2pg-$down@localhost
    fi
    local log_line rows_before t_cmd t_stopped
    log_line=$(wc -l <"$DAEMON_LOG")
    rows_before=$(row_count "$TABLE")
    local verb=stopping
    [[ -z "$how" ]] || verb="killing (SIGKILL)"
    log "$verb $down at $rows_before rows (workers there: ${on_node[*]}; queue leader $leader)"
    t_cmd=$(epoch)
    "$CLUSTER" stop-node "$n" ${how:+"$how"} >/dev/null || fail "stop-node $n $how failed"
    t_stopped=$(epoch)
    log "$down down ($(elapsed "$t_cmd" "$t_stopped") s)"

    # Every worker that was on the node reconnects elsewhere while it is down.
    local t_seen="" t_back="" lines lost back t_lost t_reconnected
    for w in "${on_node[@]}"; do
        wait_until 30 "worker $w consuming again while $down is down" bash -c \
            "tail -n +$((log_line + 1)) '$DAEMON_LOG' | grep -q '\[$TEST_ID/$w\] consuming from queue'"
        lines=$(tail -n +"$((log_line + 1))" "$DAEMON_LOG")
        lost=$(grep -m 1 "\[$TEST_ID/$w\] broker:" <<<"$lines") ||
            fail "worker $w consumed again without having lost its connection"
        back=$(grep -m 1 "\[$TEST_ID/$w\] consuming from queue" <<<"$lines")
        t_lost=$(log_epoch "$lost")
        t_reconnected=$(log_epoch "$back")
        [[ -z "$t_seen" || "$t_lost" < "$t_seen" ]] && t_seen=$t_lost
        [[ -z "$t_back" || "$t_reconnected" > "$t_back" ]] && t_back=$t_reconnected
        log "  worker $w: cut off $(elapsed "$t_cmd" "$t_lost") s after the stop command," \
            "consuming again on $(worker_node "$w") $(elapsed "$t_lost" "$t_reconnected") s later"
    done
    [[ "$(ctl 3 eval "lists:member('rmq2pg-$down@localhost', rabbit_nodes:all_running())." 2>/dev/null)" == false ]] ||
        fail "$down is still in the cluster after stop-node"
    local target=$((rows_before + 3000 < N ? rows_before + 3000 : N))
    wait_until 60 "rows growing after $down stopped" rows_at_least "$TABLE" "$target"
    local times
    times=$(awk -v t_cmd="$t_cmd" -v t_seen="$t_seen" -v t_back="$t_back" '
        $2 < 0 || $1 < t_cmd - 0.5 { next }
        $1 <= t_cmd { last_t = $1; last = $2; next }
        $1 > t_back + 5 && resume != "" { exit }
        $2 > last { if ($1 - last_t > pause) pause = $1 - last_t; last_t = $1 }
        $1 <= t_back { at_back = $2 }
        $1 > t_back && resume == "" && $2 > at_back { resume = $1 - t_seen }
        { last = $2 }
        END { printf "%.2f %.2f", resume, pause }' "$WORK/rows.tsv")
    RESUME+=("$down${how:+ (SIGKILL)}: resume ${times% *} s, longest pause ${times#* } s")
    log "  rows growing again ${times% *} s after the cut-off; longest pause in row growth ${times#* } s"
    log "starting $down again"
    local t_start
    t_start=$(epoch)
    "$CLUSTER" start-node "$n" >/dev/null || fail "start-node $n failed"
    wait_until 60 "3 online members of $QUEUE after $down restarted" queue_fully_online
    log "$down back in $(elapsed "$t_start" "$(epoch)") s; queue leader $(queue_field "$QUEUE" leader)," \
        "members online $(queue_field "$QUEUE" online)"
}

RESUME=()
failover 1 8000           # graceful stop: the node closes its connections (320 CONNECTION_FORCED)
failover 2 25000 --kill   # a crash: the connections are reset, no goodbye

# ---------------------------------------------------------------- checks

wait_until 120 "publisher done" bash -c "! kill -0 $PUBLISHER_PID 2>/dev/null"
wait "$PUBLISHER_PID" || fail "publisher failed: $(cat "$WORK/publisher.log")"
PUBLISHER_PID=""
log "publisher: $(head -n 1 "$WORK/publisher.log")"
wait_until 120 "$N rows" rows_at_least "$TABLE" $N
wait_until 60 "queue $QUEUE empty (ready + unacked)" queue_messages_equal "$QUEUE" 0
kill "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
daemon_alive || fail "daemon died"
[[ "$DAEMON_PID" == "$FIRST_PID" ]] || fail "daemon pid changed"
starts=$(grep -c "rmq2pg .* starting:" "$DAEMON_LOG")
((starts == 1)) || fail "daemon started $starts times"
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
read -r rows distinct lo hi <<<"$(sql "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM \"$TABLE\"" | tr '|' ' ')"
[[ "$rows $distinct $lo $hi" == "$N $N 1 $N" ]] ||
    fail "rows $rows, distinct ids $distinct, ids $lo..$hi (expected $N $N 1 $N)"
queue_messages_equal "$QUEUE" 0 || fail "messages left in $QUEUE"
queue_messages_equal "$QUEUE.dead" 0 || fail "$(queue_field "$QUEUE.dead" messages) dead letters"
redelivered=$(sql "SELECT count(*) || ' rows (max x-delivery-count ' || coalesce(max(delivery_count), 0) || ')' FROM \"$TABLE\" WHERE delivery_count > 0")
log "first written from a redelivery: $redelivered"
log "resume times: ${RESUME[0]}; ${RESUME[1]}"
log "PASS: $N rows == $N distinct ids, 0 lost, 0 duplicated, queue empty, daemon pid $FIRST_PID throughout"
