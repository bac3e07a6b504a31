#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ (separate from the g++ build/) and runs one.
#   scripts/fuzz.sh config|row|all [SECONDS] [libFuzzer flags...]   fuzz (default 60 s each)
#   scripts/fuzz.sh config|row repro FILE...                        rerun saved inputs
# Seeds are read from fuzz/corpus/<target>/ (kept small, committed); inputs found while fuzzing go
# to build-fuzz/corpus/<target>/ and failing ones to build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 config|row|all [SECONDS] [libFuzzer flags...] | $0 config|row repro FILE..." >&2
    exit 64
}
(($# >= 1)) || usage
which=$1
shift
case "$which" in
    config | row | all) ;;
    *) usage ;;
esac

# libFuzzer ships with clang's runtime libraries (libclang-rt-14-dev on Debian 12).
if ! command -v clang++ >/dev/null || ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
    apt-get install -y clang libclang-rt-14-dev || { apt-get update && apt-get install -y clang libclang-rt-14-dev; }
fi

build_dir=build-fuzz
mkdir -p "$build_dir"
# Locked, so that two runs started together (config and row in parallel) build one at a time.
{
    flock 9
    if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
        CC=clang CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DRMQ2PG_FUZZ=ON -DRMQ2PG_BUILD_TESTS=OFF
    fi
    # Only the fuzz target(s) asked for (and the core library): the daemon is not needed here.
    case "$which" in
        config) targets=(fuzz_config) ;;
        row) targets=(fuzz_row_mapper) ;;
        all) targets=(fuzz_config fuzz_row_mapper) ;;
    esac
    cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"
} 9>"$build_dir/.build.lock"

# Any sanitizer report is a failure with a stack; leaks too (the targets free what they allocate).
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

binary_of() { [[ $1 == row ]] && echo fuzz_row_mapper || echo fuzz_config; }

if [[ "${1:-}" == repro ]]; then
    [[ $which != all ]] && (($# >= 2)) || usage
    shift
    exec "$build_dir/fuzz/$(binary_of "$which")" "$@"
fi

seconds=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi

run() {
    local target=$1 binary
    shift
    binary=$(binary_of "$target")
    mkdir -p "$build_dir/corpus/$target" "$build_dir/crashes"
    echo "== fuzzing $binary for ${seconds}s" >&2
    # The first corpus directory receives new inputs, so the committed seeds stay untouched.
    # -timeout flags a single input taking over 10 s as a hang; -max_len lets inputs nest JSON
    # deeper than simdjson's 1024 levels.
    "$build_dir/fuzz/$binary" "$build_dir/corpus/$target" "fuzz/corpus/$target" \
        -dict="fuzz/$target.dict" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 \
        -artifact_prefix="$build_dir/crashes/$target-" -print_final_stats=1 "$@"
}

if [[ $which == all ]]; then
    run config "$@"
    run row "$@"
else
    run "$which" "$@"
fi
