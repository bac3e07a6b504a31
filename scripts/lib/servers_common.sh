# shellcheck shell=bash disable=SC2154 # the caller sets the variables named below
# Helpers shared by scripts/servers.sh (one RabbitMQ node and PostgreSQL) and scripts/cluster.sh
# (three RabbitMQ nodes): messages, the start/stop lock, process and port checks, this attempt's
# log lines, and a private RabbitMQ node's environment, files and CLI. Sourced, not run.
# The caller sets: log_prefix (first word of every message), dir (absolute; everything lives
# under it), rabbit_user, rabbit_bin; for the RabbitMQ helpers also node, rabbit_env (see
# rabbit_node_env) and rabbit_workdir (the directory rabbitmqctl runs in).

log() { printf '%s: %s\n' "$log_prefix" "$*"; }
die() {
    printf '%s: error: %s\n' "$log_prefix" "$*" >&2
    exit 1
}

# as_user USER CMD...: both servers refuse to run as root (or drop to their own user): as root,
# they run as the Debian packages' service users; as anyone else, as that user.
as_user() {
    local user=$1
    shift
    if ((EUID == 0)); then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

# The daemons must not inherit our stdout/stderr (a caller capturing our output, like ctest or
# $(...), would wait for them forever) nor the lock's fd 9 (the lock would outlive us).
detach() { "$@" </dev/null 9>&-; }

port_open() { timeout 2 bash -c ": <>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# kill -0 alone is not enough: a killed server whose parent (PID 1 here, not an init that reaps
# promptly) has not reaped it yet is a zombie for up to a minute, and kill -0 succeeds on it.
pid_alive() {
    local state
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null || return 1
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ "$state" != Z* ]]
}

# pid_in_file FILE: the live process whose pid FILE holds (nothing, and false, if none).
pid_in_file() {
    local pid=""
    if [[ -r "$1" ]]; then
        read -r pid <"$1" || true # no trailing newline: read fails, pid is set
    fi
    pid_alive "$pid" && echo "$pid"
}

# wait_gone PID SECONDS: true once PID has ended, false if it is still there after SECONDS.
wait_gone() {
    local deadline=$((SECONDS + $2))
    while pid_alive "$1"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# end_process PID SECONDS: SIGTERM, then SIGKILL if PID is still there after SECONDS.
end_process() {
    kill -TERM "$1" 2>/dev/null || true
    wait_gone "$1" "$2" && return 0
    kill -KILL "$1" 2>/dev/null || true
    wait_gone "$1" 10 || true
}

# Serialises start/stop across concurrent callers (parallel test jobs). "take_lock existing":
# only if $dir exists (stopping must not create it).
take_lock() {
    while :; do
        if [[ "${1:-}" == existing && ! -d "$dir" ]]; then
            return 0
        fi
        mkdir -p "$dir"
        chmod 755 "$dir" # the service users must traverse it
        exec 9>>"$dir/.lock"
        flock 9
        # A "clean" may have removed the directory, lock file included, while we waited: that
        # lock no longer excludes anyone, so take the new file's.
        if [[ "$dir/.lock" -ef /dev/fd/9 ]]; then
            return 0
        fi
        exec 9>&-
    done
}

# Keeps the binaries' absence from turning into obscure errors later on.
need_rabbitmq() {
    [[ -x "$rabbit_bin/rabbitmqctl" ]] || die "RabbitMQ is not installed: run scripts/deps.sh"
    if ((EUID == 0)) && ! id -u rabbitmq >/dev/null 2>&1; then
        die "user rabbitmq missing: run scripts/deps.sh"
    fi
}

# Log sizes when this start began, so a failure shows this attempt's lines, not old ones.
declare -A log_mark=()
mark_logs() {
    local f
    for f in "$@"; do
        log_mark[$f]=$(stat -c %s "$f" 2>/dev/null || echo 0)
    done
}
new_log_lines() { tail -c +"$((${log_mark[$1]:-0} + 1))" "$1" 2>/dev/null || true; }
# show_log FILE: this attempt's last lines. show_log FILE errors: its first error lines instead
# if any (RabbitMQ's cause comes first, followed by pages of Erlang terms).
show_log() {
    local errors=""
    if [[ "${2:-}" == errors ]]; then
        errors=$(new_log_lines "$1" | grep -m 12 -E '\[(error|critical)\]' || true)
    fi
    if [[ -n "$errors" ]]; then
        printf -- '---- %s: first errors of this attempt ----\n%s\n' "$1" "$errors" >&2
    else
        printf -- '---- %s: last lines of this attempt ----\n' "$1" >&2
        new_log_lines "$1" | tail -n 20 >&2
    fi
}

# ---------------------------------------------------------------- a RabbitMQ node

# rabbit_node_env NODE_DIR HOME_DIR AMQP_PORT DIST_PORT EPMD_PORT [CTL_PORT_MIN CTL_PORT_MAX]
# Sets rabbit_env for node $node: every path and port the node and its CLI use, so no file under
# /etc/rabbitmq or /var/lib/rabbitmq is read or written. HOME holds the Erlang cookie shared by
# node and CLI.
rabbit_node_env() {
    local node_dir=$1
    rabbit_env=(
        HOME="$2"
        RABBITMQ_NODENAME="$node"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$3"
        RABBITMQ_DIST_PORT="$4"
        RABBITMQ_MNESIA_BASE="$node_dir/mnesia"
        RABBITMQ_LOG_BASE="$node_dir/log"
        RABBITMQ_PID_FILE="$node_dir/rabbitmq.pid"
        RABBITMQ_CONFIG_FILE="$node_dir/rabbitmq.conf"
        RABBITMQ_CONFIG_FILES="$node_dir/conf.d"
        RABBITMQ_ADVANCED_CONFIG_FILE="$node_dir/advanced.config"
        RABBITMQ_ENABLED_PLUGINS_FILE="$node_dir/enabled_plugins"
        RABBITMQ_CONF_ENV_FILE="$node_dir/rabbitmq-env.conf"
        RABBITMQ_MOTD_FILE="$node_dir/motd"
        ERL_EPMD_PORT="$5"
        ERL_EPMD_ADDRESS=127.0.0.1
        # Erlang distribution (node <-> CLI) on loopback only.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
        "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    )
    if (($# > 5)); then
        # CLI calls are short-lived hidden nodes: where several run at once next to other
        # nodes, their distribution port is pinned too.
        rabbit_env+=(RABBITMQ_CTL_DIST_PORT_MIN="$6" RABBITMQ_CTL_DIST_PORT_MAX="$7")
    fi
}

# rabbit_cookie HOME_DIR: the Erlang cookie, created before node and CLI first start, since each
# would otherwise create its own random one and they could not talk.
rabbit_cookie() {
    mkdir -p "$1"
    local cookie="$1/.erlang.cookie"
    if [[ ! -s "$cookie" ]]; then
        od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$cookie"
    fi
    chmod 400 "$cookie"
    if ((EUID == 0)); then
        chown -R "$rabbit_user:" "$1"
    fi
}

# rabbit_node_files NODE_DIR AMQP_PORT [EXTRA_CONF]: the node's files, written afresh each start
# so changed ports take effect on an existing node.
rabbit_node_files() {
    local node_dir=$1 amqp_port=$2 extra_conf=${3:-}
    mkdir -p "$node_dir"/{mnesia,log,conf.d}
    # The users are made by the definitions import at every boot: no extra rabbitmqctl calls
    # (each ~0.5 s). With definitions configured the broker skips creating guest, so it is
    # listed too. "password" (not a hash) is accepted and hashed by the broker.
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
# Tests must not see publishers blocked because the test disk is nearly full.
disk_free_limit.absolute = 50MB
load_definitions = $node_dir/definitions.json
log.file.level = info
log.console = false
EOF
    if [[ -n "$extra_conf" ]]; then
        printf '%s\n' "$extra_conf" >>"$node_dir/rabbitmq.conf"
    fi
    # No plugins: management would add seconds to every boot and the tests do not use it.
    echo '[].' >"$node_dir/enabled_plugins"
    if ((EUID == 0)); then
        chown -R "$rabbit_user:" "$node_dir"
    fi
}

# rabbit_ctl_within SECONDS ARGS...: rabbitmqctl against $node as the node's user, with its
# cookie, killed after SECONDS (0: never). Each call starts an Erlang VM (~0.5 s).
rabbit_ctl_within() {
    local seconds=$1
    shift
    (cd "$rabbit_workdir" && as_user "$rabbit_user" timeout "$seconds" env "${rabbit_env[@]}" \
        "$rabbit_bin/rabbitmqctl" -n "$node" "$@")
}

# rabbit_boot STARTUP_LOG: starts $node's VM in the background (rabbitmq-server -detached),
# appending its output to STARTUP_LOG; false if that command fails.
rabbit_boot() {
    (cd "$rabbit_workdir" && detach as_user "$rabbit_user" env "${rabbit_env[@]}" \
        "$rabbit_bin/rabbitmq-server" -detached >>"$1" 2>&1)
}

# rabbit_halt PID GRACE STARTUP_LOG: "rabbitmqctl stop" (clients get a connection.close), then
# SIGTERM and SIGKILL if the node is still there GRACE seconds later.
rabbit_halt() {
    local pid=$1 grace=$2
    # Returns once the node has begun halting; the wait below is for the process to end.
    rabbit_ctl_within "$timeout_s" stop >>"$3" 2>&1 || true
    if ! wait_gone "$pid" "$grace"; then
        log "$node did not stop cleanly: SIGTERM, then SIGKILL"
        end_process "$pid" 15
    fi
}
