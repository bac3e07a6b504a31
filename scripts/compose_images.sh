#!/usr/bin/env bash
# The three images docker-compose.yml names, made from Debian 12's own packages with mmdebstrap
# for machines that cannot pull public images (tests/integration/compose.sh):
#   debian:bookworm-slim       the Dockerfile's base, with the build and runtime packages already
#                              in (scripts/deps.sh then needs no network inside `docker build`)
#   rabbitmq:3.10-management   Debian's rabbitmq-server 3.10 with the management plugin; guest may
#                              log in from other containers, as in the official image
#   postgres:15                Debian's postgresql-15 with an entrypoint that honours
#                              POSTGRES_USER/PASSWORD/DB and /docker-entrypoint-initdb.d
# An image is kept between runs while what it is made from (packages, entrypoint) is the same:
# each carries a label with the hash of its inputs. --rebuild makes them all again.
set -euo pipefail
cd "$(dirname "$0")/.."
rebuild=${1:-}

log() { printf '[%s] compose_images: %s\n' "$(date +%T)" "$*"; }

# make_image NAME PACKAGES ENTRYPOINT|- DOCKER_CHANGES... : imports a root filesystem of
# PACKAGES as NAME, unless NAME was made from the same inputs already.
make_image() {
    local name=$1 packages=$2 entrypoint=$3
    shift 3
    local inputs hash
    inputs="$packages"
    [[ $entrypoint != - ]] && inputs+=$'\n'"$(cat "$entrypoint")"
    inputs+=$'\n'"$*"
    hash=$(printf '%s' "$inputs" | sha256sum | cut -c1-16)
    if [[ $rebuild != --rebuild ]] &&
        [[ $(docker image inspect -f '{{ index .Config.Labels "rmq2pg.inputs" }}' "$name" 2>/dev/null) == "$hash" ]]; then
        log "$name: kept (inputs $hash)"
        return
    fi
    log "$name: mmdebstrap bookworm with: $packages"
    local started=$SECONDS hooks=()
    if [[ $entrypoint != - ]]; then
        hooks+=(--customize-hook="install -m 0755 '$PWD/$entrypoint' \"\$1/usr/local/bin/entrypoint.sh\"")
    fi
    if [[ $name == rabbitmq:* ]]; then
        hooks+=(--customize-hook='echo "loopback_users = none" >"$1/etc/rabbitmq/rabbitmq.conf"'
            --customize-hook='echo "[rabbitmq_management]." >"$1/etc/rabbitmq/enabled_plugins"')
    fi
    local changes=(--change "LABEL rmq2pg.inputs=$hash"
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
    for change in "$@"; do changes+=(--change "$change"); done
    mmdebstrap --quiet --variant=apt --include="${packages// /,}" "${hooks[@]}" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm - | docker import "${changes[@]}" - "$name" >/dev/null
    log "$name: made in $((SECONDS - started)) s"
}

make_image debian:bookworm-slim "bash $(scripts/deps.sh --print build) $(scripts/deps.sh --print runtime)" - \
    'CMD ["bash"]'
make_image rabbitmq:3.10-management "rabbitmq-server" tests/compose/rabbitmq-entrypoint.sh \
    'CMD ["/usr/local/bin/entrypoint.sh"]' 'EXPOSE 5672 15672'
make_image postgres:15 "postgresql-15 postgresql-client-15" tests/compose/postgres-entrypoint.sh \
    'CMD ["/usr/local/bin/entrypoint.sh"]' 'EXPOSE 5432'
