#!/usr/bin/env bash
# scripts/bench.sh — the benchmarks with their set-up: installs what is missing
# (DPDK, libnuma), builds, and as root reserves 2 MiB hugepages and mounts
# hugetlbfs for the run (both restored afterwards), so that DPDK's EAL and
# numacma's hugetlb backing run on hugepages. Then:
#   numacma bench alloc --backing auto --plot build/bench/alloc.svg
#   numacma bench pool --backing auto --plot build/bench/pool.svg
#   numacma bench scaling / reserve / cmdq
#   numacma bench shared   (sim backing; only when BENCHES names it)
# Extra arguments go to every `numacma bench` command (e.g. --json, --quick).
# BENCHES="alloc pool" (the environment) runs only those benchmarks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/deps.sh bench
mkdir -p build
bash scripts/build.sh build/bench -DCMAKE_BUILD_TYPE=Release -DNUMACMA_BUILD_TESTS=OFF \
  >build/bench.build.log 2>&1 || { tail -50 build/bench.build.log; exit 1; }
cli=build/bench/tools/numacma/numacma

nr=/proc/sys/vm/nr_hugepages
old_nr="" mounted=""
cleanup() {
  [ -n "$mounted" ] && umount "$mounted" 2>/dev/null || true
  [ -n "$old_nr" ] && echo "$old_nr" >"$nr" || true
}
trap cleanup EXIT
if [ "$(id -u)" -eq 0 ]; then
  old_nr="$(cat $nr)"
  want=$((old_nr + 1100))  # DPDK's 1 GiB + numacma's pool, beyond what was there
  echo "$want" >"$nr"
  echo "bench.sh: 2 MiB hugepages: $(cat $nr) reserved for the run (was $old_nr)"
  if ! grep -q "^hugetlbfs " /proc/mounts; then
    mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages && mounted=/dev/hugepages
  fi
else
  echo "bench.sh: not root: no hugepages reserved (DPDK runs with --no-huge, numacma on anon)"
fi
benches="${BENCHES:-alloc pool scaling reserve cmdq}"
for b in $benches; do
  case "$b" in
    alloc | pool) "$cli" bench "$b" --backing auto --plot "build/bench/$b.svg" "$@" ;;
    scaling | reserve | cmdq) "$cli" bench "$b" "$@" ;;
    shared) "$cli" bench shared "$@" ;;
    *) echo "bench.sh: unknown benchmark '$b' in BENCHES" >&2; exit 2 ;;
  esac
done
