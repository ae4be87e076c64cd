// bench/lib/scaling.cpp — does alloc+free stay cheap as the area grows?
//
// The allocator itself (core::Area: the bitmap search, the live map, the
// counters — what Pool::alloc_coherent runs under its area lock) over a span
// of 64 MiB and of 64 GiB. The span is never dereferenced, so 64 GiB costs
// only the bitmap (2 MiB) and the live map.
//
//   fill     the whole area with 64 KiB blocks (16 pages, A6-aligned to 64 KiB)
//   holes    free 1 block in 64, chosen at random (fixed seed): 98.4 % used,
//            the free space scattered over the whole area in 64 KiB holes
//   measure  rounds of 1024 pairs: free a random live block, allocate 64 KiB
//            (first fit from the start of the area, as cma_alloc); the sample is
//            round time / 1024; median and p99 over the rounds
//
// ratio = 64 GiB median / 64 MiB median (the target is <= 1.5).
#include <chrono>
#include <random>

#include "bench.hpp"
#include "core/area.hpp"

namespace numacma::bench {

namespace {

constexpr std::uint64_t kPage = 4096, kBlockPages = 16;
constexpr unsigned kAlignOrder = 4;  // A6: 16 pages -> order 4

ScalingResult measure(std::uint64_t bytes, unsigned rounds, std::uint64_t seed) {
  using clock = std::chrono::steady_clock;
  ScalingResult r;
  r.area_bytes = bytes;
  core::AreaConfig c;
  c.name = "scaling";
  c.node = 0;
  c.pages = bytes / kPage;
  c.segments = {{0, c.pages, 1ULL << 32}};
  c.cpu_base = std::uintptr_t{1} << 44;  // never dereferenced
  Result<core::Area> a = core::Area::create(c);
  if (!a) return r;
  core::Area& area = *a;

  const auto f0 = clock::now();
  std::vector<std::uint64_t> live;
  live.reserve(c.pages / kBlockPages);
  for (;;) {
    Result<core::Block> b = area.alloc(kBlockPages, kAlignOrder);
    if (!b) break;
    live.push_back(b->first_page);
  }
  r.blocks = live.size();
  std::mt19937_64 rng(seed);
  // Free 1 in 64 at random: swap the chosen ones to the back and drop them.
  const std::size_t holes = live.size() / 64;
  for (std::size_t k = 0; k < holes; ++k) {
    const std::size_t j = std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(rng);
    (void)area.release(live[j], kBlockPages);
    live[j] = live.back();
    live.pop_back();
  }
  r.fill_s = std::chrono::duration<double>(clock::now() - f0).count();
  r.holes = holes;
  r.used_pct = 100.0 * static_cast<double>(live.size()) / static_cast<double>(r.blocks);

  constexpr std::size_t kPairs = 1024;
  std::vector<std::size_t> pick(kPairs);
  std::vector<double> samples;
  bool failed = false;
  for (unsigned round = 0; round <= rounds && !failed; ++round) {  // round 0: warm-up
    for (auto& p : pick) p = std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(rng);
    const auto t0 = clock::now();
    for (std::size_t k = 0; k < kPairs; ++k) {
      // The harness's own bookkeeping (which block is where) is prefetched so
      // that its cache misses are not charged to the allocator.
      if (k + 8 < kPairs) __builtin_prefetch(&live[pick[k + 8]], 1);
      const std::size_t j = pick[k];
      failed |= !area.release(live[j], kBlockPages).ok();
      Result<core::Block> b = area.alloc(kBlockPages, kAlignOrder);
      if (!b) {
        failed = true;
        break;
      }
      live[j] = b->first_page;
    }
    const auto t1 = clock::now();
    if (round > 0)
      samples.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / kPairs);
  }
  if (failed) return r;
  const Summary s = summarize(samples);
  r.median_ns = s.median;
  r.p99_ns = s.p99;
  return r;
}

}  // namespace

ScalingReport run_scaling(const ScalingOptions& o) {
  ScalingReport rep;
  const unsigned rounds = o.quick ? 15 : 201;
  rep.workload =
      "core::Area filled with 64K blocks, 1 in 64 freed at random; "
      "pairs of (free a random live block, alloc 64K first-fit)";
  rep.small = measure(o.small_bytes, rounds, 7);
  rep.large = measure(o.large_bytes, rounds, 7);
  if (rep.small.median_ns > 0) rep.ratio = rep.large.median_ns / rep.small.median_ns;
  return rep;
}

}  // namespace numacma::bench
