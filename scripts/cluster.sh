#!/usr/bin/env bash
# A private 3-node RabbitMQ 3.10 cluster on loopback, for the failover test
# (tests/integration/cluster_failover.sh) and for trying high availability by hand (docs/ha.md).
# Nodes rmq2pg-c1@localhost, -c2, -c3; c2 and c3 join c1 with join_cluster. One private epmd
# serves the three nodes and their CLI calls; everything lives under $RMQ2PG_CLUSTER_DIR
# (stop + rm -rf is a full cleanup); system instances and scripts/servers.sh's node are left
# alone. The techniques (no Debian wrapper, cookie written before anything starts, zombie-aware
# liveness, daemons detached from our stdout) are those of scripts/servers.sh, explained there.
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

log() { printf 'cluster: %s\n' "$*"; }
die() {
    printf 'cluster: error: %s\n' "$*" >&2
    exit 1
}

as_user() {
    if ((EUID == 0)); then runuser -u "$rabbit_user" -- "$@"; else "$@"; fi
}
# Servers must not keep our stdout/stderr (a caller's $(...) or ctest would wait for them) nor
# the lock's fd 9.
detach() { "$@" </dev/null 9>&-; }
port_open() { timeout 2 bash -c ": <>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# kill -0 succeeds on a zombie (a killed node not yet reaped by PID 1): look at its state too.
pid_alive() {
    local state
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null || return 1
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ "$state" != Z* ]]
}

# Serialises commands across concurrent callers; "existing": only if $dir exists.
take_lock() {
    while :; do
        [[ "${1:-}" == existing && ! -d "$dir" ]] && return 0
        mkdir -p "$dir"
        chmod 755 "$dir"
        exec 9>>"$dir/.lock"
        flock 9
        [[ "$dir/.lock" -ef /dev/fd/9 ]] && return 0 # not removed by a "clean" meanwhile
        exec 9>&-
    done
}

need_packages() {
    [[ -x "$rabbit_bin/rabbitmqctl" ]] || die "RabbitMQ is not installed: run scripts/deps.sh"
    if ((EUID == 0)) && ! id -u rabbitmq >/dev/null 2>&1; then
        die "user rabbitmq missing: run scripts/deps.sh"
    fi
}

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
    # Every path and port of node and CLI, so nothing under /etc/rabbitmq or /var/lib/rabbitmq
    # is read or written. The shared HOME holds the one Erlang cookie of nodes and CLI.
    node_env=(
        HOME="$dir/home"
        RABBITMQ_NODENAME="$node"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$amqp_port"
        RABBITMQ_DIST_PORT="$dist_port"
        RABBITMQ_MNESIA_BASE="$node_dir/mnesia"
        RABBITMQ_LOG_BASE="$node_dir/log"
        RABBITMQ_PID_FILE="$pid_file"
        RABBITMQ_CONFIG_FILE="$node_dir/rabbitmq.conf"
        RABBITMQ_CONFIG_FILES="$node_dir/conf.d"
        RABBITMQ_ADVANCED_CONFIG_FILE="$node_dir/advanced.config"
        RABBITMQ_ENABLED_PLUGINS_FILE="$node_dir/enabled_plugins"
        RABBITMQ_CONF_ENV_FILE="$node_dir/rabbitmq-env.conf"
        RABBITMQ_MOTD_FILE="$node_dir/motd"
        ERL_EPMD_PORT="$epmd_port"
        ERL_EPMD_ADDRESS=127.0.0.1
        # CLI calls are short-lived hidden nodes: their distribution port too stays below
        # 32768 (the default, 35672-35682, is in the ephemeral range).
        RABBITMQ_CTL_DIST_PORT_MIN=$((base + 3))
        RABBITMQ_CTL_DIST_PORT_MAX=$((base + 7))
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
        "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    )
}

# ctl_within SECONDS ARGS...: rabbitmqctl against the selected node, killed after SECONDS.
ctl_within() {
    local seconds=$1
    shift
    (cd "$dir" && as_user timeout "$seconds" env "${node_env[@]}" \
        "$rabbit_bin/rabbitmqctl" -n "$node" "$@")
}

node_pid() {
    local pid=""
    [[ -r "$pid_file" ]] && { read -r pid <"$pid_file" || true; }
    pid_alive "$pid" && echo "$pid"
}

node_running() { [[ -n "$(node_pid || true)" ]] && port_open "$amqp_port"; }

# This attempt's startup output and the node log's first errors (RabbitMQ's cause comes first,
# followed by pages of Erlang terms).
declare -A log_mark=()
mark_logs() {
    local f
    for f in "$startup_log" "$node_log"; do log_mark[$f]=$(stat -c %s "$f" 2>/dev/null || echo 0); done
}
new_lines() { tail -c +"$((${log_mark[$1]:-0} + 1))" "$1" 2>/dev/null || true; }
node_fail() {
    {
        printf -- '---- %s: this attempt ----\n' "$startup_log"
        new_lines "$startup_log" | tail -n 20
        printf -- '---- %s: first errors of this attempt ----\n' "$node_log"
        new_lines "$node_log" | grep -m 12 -E '\[(error|critical)\]' || new_lines "$node_log" | tail -n 20
    } >&2
    kill_node # a node whose boot failed keeps its VM: end it so the next start is clean
    die "$node: $*"
}

# The shared cookie, written before any node or CLI starts (each would otherwise make its own).
prepare_home() {
    mkdir -p "$dir/home"
    local cookie="$dir/home/.erlang.cookie"
    [[ -s "$cookie" ]] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$cookie"
    chmod 400 "$cookie"
    ((EUID == 0)) && chown -R "$rabbit_user:" "$dir/home"
    return 0
}

# The selected node's files, rewritten at each start. Users come from a definitions import at
# boot (the import skips creating guest, so it is listed too).
prepare_node() {
    mkdir -p "$node_dir"/{mnesia,log,conf.d}
    cat >"$node_dir/definitions.json" <<'EOF'
{
  "vhosts": [{"name": "/"}],
  "users": [
    {"name": "rmq2pg", "password": "rmq2pg", "tags": ["administrator"]},
    {"name": "guest", "password": "guest", "tags": ["administrator"]}
  ],
  "permissions": [
    {"user": "rmq2pg", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
    {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
  ]
}
EOF
    cat >"$node_dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$amqp_port
disk_free_limit.absolute = 50MB
load_definitions = $node_dir/definitions.json
log.file.level = info
log.console = false
EOF
    echo '[].' >"$node_dir/enabled_plugins" # no plugins: management would slow every boot
    ((EUID == 0)) && chown -R "$rabbit_user:" "$node_dir"
    return 0
}

# boot_node: starts the selected node's VM and waits until its rabbit app accepts AMQP.
boot_node() {
    local p
    for p in "$amqp_port" "$dist_port"; do
        port_open "$p" && die "port $p is in use by another process (not $node): set RMQ2PG_CLUSTER_PORT_BASE"
    done
    prepare_node
    rm -f "$pid_file"
    mark_logs
    log "starting $node (amqp 127.0.0.1:$amqp_port)"
    (cd "$dir" && detach as_user env "${node_env[@]}" \
        "$rabbit_bin/rabbitmq-server" -detached >>"$startup_log" 2>&1) ||
        node_fail "rabbitmq-server -detached failed"
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
    mark_logs
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
    local deadline=$((SECONDS + 10))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
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
    mark_logs
    ctl_within "$timeout_s" stop >>"$startup_log" 2>&1 || true
    local deadline=$((SECONDS + 15))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if pid_alive "$pid"; then
        log "$node did not stop cleanly: SIGTERM, then SIGKILL"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 15))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        kill_node
    fi
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
        prepare_home
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
        mark_logs
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
