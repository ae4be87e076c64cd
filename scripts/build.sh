#!/usr/bin/env bash
# scripts/build.sh BUILD_DIR [cmake args...] — configure (once) and build
# everything, or only the targets NUMACMA_BUILD_TARGETS names (space-separated).
set -euo pipefail
dir="$1"; shift
root="$(cd "$(dirname "$0")/.." && pwd)"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
mkdir -p "$(dirname "$dir")"
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$dir" "${gen[@]}" "$@" >"$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log" >&2; exit 1; }
fi
targets=()
for t in ${NUMACMA_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
