#!/usr/bin/env bash
# scripts/demo.sh — installs what is missing, builds numacma and runs the main
# job: `numacma demo` on this machine (extra arguments go to the demo).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/deps.sh build
mkdir -p build
bash scripts/build.sh build/demo -DCMAKE_BUILD_TYPE=Release -DNUMACMA_BUILD_TESTS=OFF \
  -DNUMACMA_BUILD_BENCH=OFF >build/demo.build.log 2>&1 || { tail -50 build/demo.build.log; exit 1; }
exec build/demo/tools/numacma/numacma demo "$@"
