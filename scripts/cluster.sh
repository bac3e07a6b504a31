#!/usr/bin/env bash
# A private 3-node RabbitMQ 3.10 cluster on loopback, for the failover test
# (tests/integration/cluster_failover.sh) and for trying high availability by hand (docs/ha.md).
# Nodes rmq2pg-c1@localhost, -c2, -c3; c2 and c3 join c1 with join_cluster. One private epmd
# serves the three nodes and their CLI calls; everything lives under $RMQ2PG_CLUSTER_DIR
# (stop + rm -rf is a full cleanup); system instances and scripts/servers.sh's node are left
# alone. The techniques (no Debian wrapper, cookie written before anything starts, zombie-aware
# liveness, daemons detached from our stdout) are shared with scripts/servers.sh and explained in
# scripts/lib/servers_common.sh.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/cluster.sh COMMAND [ARGS...]
  start                    all three nodes, one after another. With no node running, a fresh
                           cluster: old data is discarded, c1 boots, c2 and c3 join it. With some
                           running, only the stopped ones start (they keep their data and rejoin).
  stop                     all nodes (c3, c2, then c1), and the private epmd
  clean                    stop + rm -rf the cluster directory
  stop-node N [--kill]     stop node N (1-3) gracefully, or with SIGKILL (a crash)
  start-node N             start node N again with its data; it rejoins the cluster
  status                   each node's state and the cluster's view (exit 3 unless all 3 run)
  env                      export lines: eval "$(scripts/cluster.sh env)"
  rabbitmqctl N ARGS...    rabbitmqctl against node N
ports (node N = 1..3, base = RMQ2PG_CLUSTER_PORT_BASE, 23672): AMQP base+10(N-1) (23672, 23682,
  23692), distribution base+10(N-1)+1 (23673, 23683, 23693), epmd base+2 (23674), CLI
  distribution base+3..base+7 (23675-23679). All below 32768, outside the ephemeral range.
settings (environment): RMQ2PG_CLUSTER_DIR (/tmp/rmq2pg-cluster), RMQ2PG_CLUSTER_PORT_BASE,
  RMQ2PG_CLUSTER_TIMEOUT (90, seconds one node's start or stop may take)
EOF
}

dir=${RMQ2PG_CLUSTER_DIR:-/tmp/rmq2pg-cluster}
[[ "$dir" == /* ]] || dir="$PWD/$dir"
base=${RMQ2PG_CLUSTER_PORT_BASE:-23672}
epmd_port=$((base + 2))
timeout_s=${RMQ2PG_CLUSTER_TIMEOUT:-90}
rabbit_bin=/usr/lib/rabbitmq/bin
nodes=(1 2 3)
first_node=rmq2pg-c1@localhost

if ((EUID == 0)); then rabbit_user=rabbitmq; else rabbit_user=$(id -un); fi

log_prefix=cluster
# shellcheck source=scripts/lib/servers_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/servers_common.sh"
# rabbitmqctl and the nodes run from the cluster directory.
rabbit_workdir=$dir

need_packages() { need_rabbitmq; }

# select_node N: sets this node's name, ports, paths and environment (globals below).
select_node() {
    [[ "$1" =~ ^[123]$ ]] || die "node number must be 1, 2 or 3, not '$1'"
    n=$1
    node=rmq2pg-c$n@localhost
    amqp_port=$((base + 10 * (n - 1)))
    dist_port=$((amqp_port + 1))
    node_dir="$dir/c$n"
    pid_file="$node_dir/rabbitmq.pid"
    node_log="$node_dir/log/$node.log"
    startup_log="$node_dir/log/startup.log"
    # The shared HOME holds the one Erlang cookie of nodes and CLI. CLI calls' distribution
    # ports stay below 32768 too (the default, 35672-35682, is in the ephemeral range).
    rabbit_node_env "$node_dir" "$dir/home" "$amqp_port" "$dist_port" "$epmd_port" \
        $((base + 3)) $((base + 7))
}

# ctl_within SECONDS ARGS...: rabbitmqctl against the selected node, killed after SECONDS.
ctl_within() { rabbit_ctl_within "$@"; }

node_pid() { pid_in_file "$pid_file"; }

node_running() { [[ -n "$(node_pid || true)" ]] && port_open "$amqp_port"; }

# This attempt's startup output and the node log's first errors.
node_fail() {
    show_log "$startup_log"
    show_log "$node_log" errors
    kill_node # a node whose boot failed keeps its VM: end it so the next start is clean
    die "$node: $*"
}

# boot_node: starts the selected node's VM and waits until its rabbit app accepts AMQP.
boot_node() {
    local p
    for p in "$amqp_port" "$dist_port"; do
        port_open "$p" && die "port $p is in use by another process (not $node): set RMQ2PG_CLUSTER_PORT_BASE"
    done
    rabbit_node_files "$node_dir" "$amqp_port"
    rm -f "$pid_file"
    mark_logs "$startup_log" "$node_log"
    log "starting $node (amqp 127.0.0.1:$amqp_port)"
    rabbit_boot "$startup_log" || node_fail "rabbitmq-server -detached failed"
    # Waits for the pid file, then for the rabbit application; gives up if the VM dies.
    ctl_within "$((timeout_s + 10))" wait --timeout "$timeout_s" "$pid_file" >>"$startup_log" 2>&1 ||
        node_fail "did not start within ${timeout_s}s"
    wait_amqp
}

wait_amqp() {
    local deadline=$((SECONDS + 15))
    until port_open "$amqp_port"; do
        ((SECONDS < deadline)) || node_fail "running but 127.0.0.1:$amqp_port does not accept connections"
        sleep 0.2
    done
}

# join_first: the selected (freshly booted) node resets itself and joins c1's cluster.
join_first() {
    log "$node joins $first_node"
    mark_logs "$startup_log" "$node_log"
    local step
    for step in stop_app "join_cluster $first_node" start_app; do
        # shellcheck disable=SC2086 # "join_cluster NODE" is two arguments
        ctl_within "$timeout_s" $step >>"$startup_log" 2>&1 || node_fail "rabbitmqctl $step failed"
    done
    wait_amqp
}

kill_node() {
    local pid
    pid=$(node_pid || true)
    [[ -n "$pid" ]] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || true
    rm -f "$pid_file"
}

# stop_node [--kill]: the selected node, gracefully (rabbitmqctl stop: clients get a
# connection.close) or by SIGKILL (clients see their TCP connections reset).
stop_node() {
    local pid
    pid=$(node_pid || true)
    if [[ -z "$pid" ]]; then
        log "$node not running"
        return 0
    fi
    if [[ "${1:-}" == --kill ]]; then
        log "killing $node (pid $pid, SIGKILL)"
        kill_node
        log "$node killed"
        return 0
    fi
    log "stopping $node (pid $pid)"
    mark_logs "$startup_log" "$node_log"
    rabbit_halt "$pid" 15 "$startup_log"
    rm -f "$pid_file"
    log "$node stopped"
}

any_node_alive() {
    local i
    for i in "${nodes[@]}"; do
        select_node "$i"
        [[ -n "$(node_pid || true)" ]] && return 0
    done
    return 1
}

stop_all() {
    local i
    for i in 3 2 1; do
        select_node "$i"
        stop_node
    done
    # The private epmd (started by the first node or CLI call); it refuses while a node is
    # registered.
    epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
}

start_all() {
    local i
    if ! any_node_alive; then
        log "fresh cluster in $dir"
        rm -rf "$dir"/c1 "$dir"/c2 "$dir"/c3
        rabbit_cookie "$dir/home"
        for i in "${nodes[@]}"; do
            select_node "$i"
            boot_node
            ((i == 1)) || join_first
        done
    else
        for i in "${nodes[@]}"; do
            select_node "$i"
            if node_running; then
                log "$node already running (pid $(node_pid), amqp 127.0.0.1:$amqp_port)"
            else
                start_node
            fi
        done
    fi
    select_node 1
    log "cluster running: $(ctl_within 30 eval 'lists:sort(rabbit_nodes:all_running()).' 2>/dev/null | tr -d '\n' || echo '?')"
}

# start_node: the selected node again, with its data: it rejoins the others by itself.
start_node() {
    if node_running; then
        log "$node already running (pid $(node_pid))"
        return 0
    fi
    [[ -d "$node_dir/mnesia" ]] || die "$node was never part of this cluster: use 'start'"
    local pid
    pid=$(node_pid || true)
    if [[ -n "$pid" ]]; then
        # Still booting, or its app was stopped: wait for it like a fresh boot would.
        mark_logs "$startup_log" "$node_log"
        log "$node up (pid $pid) but 127.0.0.1:$amqp_port closed: waiting for it"
        ctl_within "$((timeout_s + 10))" await_startup --timeout "$timeout_s" >>"$startup_log" 2>&1 ||
            node_fail "did not finish starting within ${timeout_s}s"
        wait_amqp
    else
        boot_node
    fi
    log "$node running (pid $(node_pid || echo '?'), amqp 127.0.0.1:$amqp_port)"
}

status() {
    local i rc=0
    for i in "${nodes[@]}"; do
        select_node "$i"
        if node_running; then
            log "$node: running (pid $(node_pid), amqp 127.0.0.1:$amqp_port)"
        elif [[ -n "$(node_pid || true)" ]]; then
            log "$node: starting or unhealthy (pid $(node_pid), amqp port $amqp_port closed)"
            rc=3
        else
            log "$node: stopped"
            rc=3
        fi
    done
    for i in "${nodes[@]}"; do
        select_node "$i"
        if node_running; then
            log "running nodes seen by $node: $(ctl_within 30 eval 'lists:sort(rabbit_nodes:all_running()).' 2>/dev/null | tr -d '\n' || echo '?')"
            break
        fi
    done
    return "$rc"
}

node_arg() {
    [[ $# -ge 1 ]] || die "which node? (1, 2 or 3)"
    select_node "$1"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
    start)
        need_packages
        take_lock
        start_all
        ;;
    stop)
        take_lock existing
        [[ -d "$dir" ]] && stop_all
        log "cluster stopped"
        ;;
    clean)
        take_lock existing
        if [[ -d "$dir" ]]; then
            stop_all
            rm -rf "$dir"
        fi
        log "removed $dir"
        ;;
    stop-node)
        node_arg "$@"
        [[ -z "${2:-}" || "$2" == --kill ]] || die "stop-node N [--kill], not '$*'"
        take_lock existing
        stop_node "${2:-}"
        ;;
    start-node)
        need_packages
        node_arg "$@"
        take_lock
        start_node
        ;;
    status)
        status
        ;;
    env)
        urls=()
        for i in "${nodes[@]}"; do
            select_node "$i"
            urls+=("amqp://rmq2pg:rmq2pg@127.0.0.1:$amqp_port/")
            printf 'export %s=%q\n' "RMQ2PG_CLUSTER_URL_$i" "${urls[-1]}" "RMQ2PG_CLUSTER_NODE_$i" "$node"
        done
        printf 'export %s=%q\n' RMQ2PG_CLUSTER_DIR "$dir" RMQ2PG_CLUSTER_URLS "${urls[*]}"
        ;;
    rabbitmqctl)
        need_packages
        node_arg "$@"
        shift
        [[ -f "$dir/home/.erlang.cookie" ]] || die "no cluster here yet: scripts/cluster.sh start"
        ctl_within 0 "$@"
        ;;
    -h | --help | help)
        usage
        ;;
    *)
        usage >&2
        exit 64
        ;;
esac
