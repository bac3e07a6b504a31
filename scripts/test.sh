#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs packages, builds, and runs ctest
# (unit tests, then integration tests against private RabbitMQ/PostgreSQL started on loopback).
#   scripts/test.sh                      normal build (build/)
#   scripts/test.sh --sanitize address   ASan+UBSan build (build-asan/)
#   scripts/test.sh --sanitize thread    TSan build (build-tsan/)
# Further arguments go to ctest (e.g. -R unit, -L integration).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
sanitize=""
if [[ "${1:-}" == "--sanitize" ]]; then
    case "${2:-}" in
        address) sanitize="address;undefined"; build_dir=build-asan ;;
        thread) sanitize="thread"; build_dir=build-tsan ;;
        *) echo "usage: $0 [--sanitize address|thread] [ctest args]" >&2; exit 64 ;;
    esac
    shift 2
fi

scripts/deps.sh
# Warnings are errors here (this is what CI runs); a plain scripts/build.sh only shows them.
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DRMQ2PG_SANITIZE=$sanitize" -DRMQ2PG_WERROR=ON
cmake --build "$build_dir" -j"$(nproc)"
if [[ -n "$sanitize" ]]; then
    # Fail the test on any sanitizer report, and keep libpq/rabbitmq-c (not instrumented) quiet.
    export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"
    export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
fi
cd "$build_dir"
exec ctest --output-on-failure "$@"
