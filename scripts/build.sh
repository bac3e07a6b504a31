#!/usr/bin/env bash
# The build, one command for the README, the Dockerfile, the demo and the tests, so their build
# steps cannot drift apart. Extra arguments go to CMake's configure step.
#   BUILD_DIR=build (default) scripts/build.sh [-DCMAKE_INSTALL_PREFIX=/usr ...]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$build_dir" -j"$(nproc)"
