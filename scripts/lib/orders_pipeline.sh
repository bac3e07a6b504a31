# shellcheck shell=bash
# The "orders" pipeline of the integration tests and the benchmarks, written in one place: the
# messages of `rmq2pg-publish --generate orders` and rmq2pg-bench ({"id", "account", "amount",
# "currency", ...}) mapped onto an orders table (sql/001_orders.sql; create_orders_table in
# tests/integration/lib.sh). Sourced, not run.

# orders_pipeline NAME QUEUE TABLE [SETTING=VALUE]...: one item of a config's "pipelines:" list,
# indented for it. SETTINGs and their defaults (an empty value leaves the key out, so the
# daemon's own default applies):
#   workers=2  prefetch=2000  mode=insert  key=id
#   max_messages=500  max_bytes=1048576  max_delay_ms=50     (the batch)
#   columns=all    all: id, account, amount, currency, payload ($body), routing_key, message_id;
#                  core: the first five (for tables without routing_key and message_id)
#   extra=YAML     lines appended after the columns, verbatim: more columns (indented by 6) or
#                  pipeline keys (indented by 4, e.g. "    dedupe: message_id")
orders_pipeline() {
    local name=$1 queue=$2 table=$3
    shift 3
    # shellcheck disable=SC2034 # the batch's settings are read as ${!part}
    local workers=2 prefetch=2000 mode=insert key=id max_messages=500 max_bytes=1048576
    local max_delay_ms=50 columns=all extra="" setting
    for setting in "$@"; do
        case ${setting%%=*} in
            workers | prefetch | mode | key | max_messages | max_bytes | max_delay_ms | columns | extra)
                printf -v "${setting%%=*}" '%s' "${setting#*=}"
                ;;
            *)
                echo "orders_pipeline: unknown setting '$setting'" >&2
                return 64
                ;;
        esac
    done
    [[ $columns == all || $columns == core ]] || {
        echo "orders_pipeline: columns=all or columns=core, not '$columns'" >&2
        return 64
    }
    local batch="" part
    for part in max_messages max_bytes max_delay_ms; do
        [[ -n ${!part} ]] && batch+="${batch:+, }$part: ${!part}"
    done
    echo "  - name: $name"
    echo "    queue: $queue"
    [[ -n $workers ]] && echo "    workers: $workers"
    [[ -n $prefetch ]] && echo "    prefetch: $prefetch"
    [[ -n $batch ]] && echo "    batch: { $batch }"
    echo "    table: $table"
    [[ -n $mode ]] && echo "    mode: $mode"
    [[ -n $key ]] && echo "    key: [$key]"
    cat <<'YAML'
    columns:
      id: /id
      account: /account
      amount: /amount
      currency: /currency
      payload: $body
YAML
    if [[ $columns == all ]]; then
        echo "      routing_key: \$routing_key"
        echo "      message_id: \$message_id"
    fi
    if [[ -n $extra ]]; then
        printf '%s\n' "$extra"
    fi
    return 0
}
