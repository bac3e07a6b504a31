#!/usr/bin/env bash
# Installs the Debian 12 packages rmq2pg needs to build, test and run the demo (or, with
# --build-only, just to build; with --runtime, just to run the binary). Idempotent: when
# everything is already there it only asks dpkg (well under a second) and never touches apt, so
# the Dockerfile's stages need no network on a base image that has them.
#   scripts/deps.sh --print build|runtime   lists those packages (scripts/compose_images.sh)
set -euo pipefail

# What building needs (the Dockerfile's build stage runs `deps.sh --build-only`).
build_packages=(
    build-essential cmake pkg-config g++ git
    librabbitmq-dev libpqxx-dev libpq-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
    libsimdjson-dev libsystemd-dev libmicrohttpd-dev catch2 libssl-dev
    # content_encoding gzip/deflate (src/body_decoding.cpp)
    zlib1g-dev
    # format: protobuf (src/protobuf_schema.cpp, src/protobuf_decoder.cpp); protoc makes the
    # tests' descriptor set at build time
    libprotobuf-dev protobuf-compiler
)
# What the binary needs at run time (the Dockerfile's runtime stage runs `deps.sh --runtime`).
runtime_packages=(
    librabbitmq4 libpqxx-6.4 libspdlog1.10 libyaml-cpp0.7 libsimdjson14 libmicrohttpd12
    libsystemd0
    # format: protobuf
    libprotobuf32
)
packages=(
    "${build_packages[@]}"
    clang-format
    # packaging (cpack's dpkg-shlibdeps) and checking docker-compose.yml without an engine
    dpkg-dev docker-compose
    # private servers for the integration tests and the demo (scripts/servers.sh)
    rabbitmq-server postgresql postgresql-client
    # a private PgBouncer in transaction pooling for tests/integration/pgbouncer.sh (scripts/pgbouncer.sh)
    pgbouncer
    # pgrep/pkill, fuser/killall used by the test scripts
    procps psmisc bc python3
    # tests/integration/protobuf.sh and scripts/protobuf_bench.sh build messages with it
    python3-protobuf
    # the HTTP endpoints' tests: curl scrapes, headless Chromium renders the status page
    curl chromium
    # certificates for the TLS test (tests/integration/tls.sh)
    openssl
    # a pooler in front of PostgreSQL (tests/integration/connection_budget.sh)
    pgbouncer
    # docker-compose for real (tests/integration/compose.sh): the engine, and mmdebstrap to make
    # the base images from Debian's packages where public images cannot be pulled
    docker.io mmdebstrap
)

case "${1:-}" in
    --build-only) packages=("${build_packages[@]}") ;;
    --runtime) packages=("${runtime_packages[@]}") ;;
    --print)
        case "${2:-}" in
            build) echo "${build_packages[*]}" ;;
            runtime) echo "${runtime_packages[*]}" ;;
            *) echo "usage: $0 --print build|runtime" >&2; exit 64 ;;
        esac
        exit 0
        ;;
esac

missing=()
for pkg in "${packages[@]}"; do
    # "install ok installed" is the only state in which the package's files are all there; a
    # removed-but-configured or half-installed package needs apt-get too.
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#packages[@]} packages already installed"
    exit 0
fi

sudo=()
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null; then
        echo "deps: missing packages (${missing[*]}) and not root, without sudo: install them as root" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "deps: installing ${missing[*]}"
# Another apt/dpkg (e.g. unattended upgrades, a parallel job) may hold the lock: wait for it
# rather than failing at once.
apt_opts=(-o DPkg::Lock::Timeout=600)
"${sudo[@]}" apt-get "${apt_opts[@]}" update -qq
# Package post-install scripts may try to start the system services (no systemd here, so they
# may print failures); the project never uses those instances, scripts/servers.sh runs its own.
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
echo "deps: done"
