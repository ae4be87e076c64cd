#!/usr/bin/env bash
# scripts/test.sh — the whole test suite, as CI runs it (.ci/run calls this).
#
#   1. release  (g++, Release): every test: unit, property, conformance, CLI,
#               examples, consumer package, fuzz smoke, benchmark smoke, the
#               QEMU multi-node and VFIO guests (label vm) and the differential
#               tests against a real Linux 6.12 (label kernel: builds the kernel
#               once, cached under build/kernel/)
#   2. asan     (clang, ASan+UBSan): the suite without the guests, plus the
#               libFuzzer targets for NUMACMA_FUZZ_SECONDS each (label fuzz)
#   3. tsan     (clang, TSan): the tests that start threads (label threads;
#               only their programs are built)
#
#   scripts/test.sh quick   a developer's loop: one Release build without the
#                           guests, the kernel and the benchmarks, running the
#                           tests labelled unit, threads and cli (no sanitizers)
#
# Installs the Debian packages it needs first (scripts/deps.sh). Build trees
# live under build/ and are reused. The last line is
#   test.sh: N passed, M failed (K skipped)
# and the exit code is 0 only when nothing failed.
#   NUMACMA_TEST_SUITES="release asan tsan"   which suites to run
#   NUMACMA_FUZZ_SECONDS=20                    seconds per fuzz target
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
suites="${NUMACMA_TEST_SUITES:-release asan tsan}"
deps=all
if [ "${1:-}" = quick ]; then suites=quick deps=build; fi
bash scripts/deps.sh "$deps" || exit 1
fuzz_s="${NUMACMA_FUZZ_SECONDS:-20}"
jobs="$(nproc)"
mkdir -p build
total_pass=0 total_fail=0 total_skip=0
summary=()

run_suite() {  # name, ctest args (one string), cmake args...
  local name="$1" ctest_args="$2"; shift 2
  local dir="build/$name" log="build/$name.test.log" t0=$SECONDS
  echo "==> [$name] configure + build"
  if ! bash scripts/build.sh "$dir" "$@" >"build/$name.build.log" 2>&1; then
    tail -60 "build/$name.build.log"
    echo "==> [$name] BUILD FAILED (build/$name.build.log)"
    total_fail=$((total_fail + 1)); summary+=("$name: build failed"); return
  fi
  echo "==> [$name] ctest $ctest_args"
  # shellcheck disable=SC2086
  ctest --test-dir "$dir" --output-on-failure --timeout 900 -j "$jobs" $ctest_args 2>&1 | tee "$log" \
    | grep -E "^ *[0-9]+/[0-9]+ Test|tests passed|Failed|\*\*\*" || true
  local line n_total n_fail n_skip
  line="$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1)"
  if [ -z "$line" ]; then
    echo "==> [$name] ctest produced no summary"; total_fail=$((total_fail + 1))
    summary+=("$name: no ctest summary"); return
  fi
  n_fail="$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")"
  n_total="$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")"
  n_skip="$(grep -cE "\(Skipped\)$" "$log" || true)"
  total_pass=$((total_pass + n_total - n_fail - n_skip))
  total_fail=$((total_fail + n_fail)); total_skip=$((total_skip + n_skip))
  summary+=("$name: $((n_total - n_fail - n_skip)) passed, $n_fail failed, $n_skip skipped in $((SECONDS - t0)) s")
}

san_flags=(-DCMAKE_C_FLAGS="-O1 -g1" -DCMAKE_CXX_FLAGS="-O1 -g1")
for s in $suites; do
  case "$s" in
    release) run_suite release "" -DCMAKE_BUILD_TYPE=Release -DNUMACMA_VM_TESTS=ON ;;
    # Sanitizer builds: -O1 with line tables only (readable reports, half the
    # compile time of -O2 -g on this 2-core machine).
    asan) CC=clang CXX=clang++ run_suite asan "-LE vm|kernel" -DCMAKE_BUILD_TYPE=None "${san_flags[@]}" \
            -DNUMACMA_SANITIZER=address,undefined -DNUMACMA_BUILD_FUZZ=ON \
            -DNUMACMA_FUZZ_SECONDS="$fuzz_s" -DNUMACMA_VM_TESTS=OFF -DNUMACMA_KERNEL_TESTS=OFF \
            -DNUMACMA_BUILD_BENCH=OFF ;;
    quick) run_suite quick "-L unit|threads|cli" -DCMAKE_BUILD_TYPE=Release -DNUMACMA_VM_TESTS=OFF \
             -DNUMACMA_KERNEL_TESTS=OFF -DNUMACMA_BUILD_BENCH=OFF ;;
    tsan) NUMACMA_BUILD_TARGETS=numacma_thread_tests CC=clang CXX=clang++ \
            run_suite tsan "-L threads" -DCMAKE_BUILD_TYPE=None "${san_flags[@]}" \
            -DNUMACMA_SANITIZER=thread -DNUMACMA_VM_TESTS=OFF -DNUMACMA_KERNEL_TESTS=OFF \
            -DNUMACMA_BUILD_BENCH=OFF ;;
    *) echo "unknown suite $s"; total_fail=$((total_fail + 1)) ;;
  esac
done
for l in "${summary[@]}"; do echo "  $l"; done
echo "test.sh: $total_pass passed, $total_fail failed ($total_skip skipped)"
[ "$total_fail" -eq 0 ]
