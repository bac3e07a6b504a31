#!/usr/bin/env bash
# clang-format over every C++ file of the project (.clang-format at the top).
#   scripts/format.sh           rewrite the files in place
#   scripts/format.sh --check   change nothing; list the files that differ and exit 1 (ctest's
#                               "format" test runs this, so CI fails on unformatted code)
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.h.in' 2>/dev/null || find src tools tests fuzz -name '*.cpp' -o -name '*.h')
if [[ "${1:-}" == "--check" ]]; then
    bad=()
    for f in "${files[@]}"; do
        clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
    done
    if ((${#bad[@]} > 0)); then
        printf 'format: clang-format would change %s\n' "${bad[@]}" >&2
        echo "format: run scripts/format.sh" >&2
        exit 1
    fi
    echo "format: ${#files[@]} files formatted as .clang-format says"
else
    clang-format -i "${files[@]}"
fi
