// Property: random alloc/free sequences on random areas (segments, order_per_bit,
// DMA limits, alignments) make exactly the decisions of a naive reference
// model; no two live buffers overlap; alignment and the mask hold; counters
// match; invariant() holds after every step; F3 holds at the end.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <bit>

#include "core/area.hpp"
#include "core_model.hpp"

using numacma::core::Area;
using numacma::core::AreaConfig;
using numacma::core::Segment;
using numacma::testing::NaiveArea;

RC_GTEST_PROP(AreaProperty, MatchesTheNaiveModel, ()) {
  const unsigned opb = *rc::gen::inRange(0u, 3u);
  const unsigned nseg = *rc::gen::inRange(1u, 4u);
  AreaConfig c;
  c.name = "p";
  c.cpu_base = 0x100000000ULL;
  std::uint64_t page = 0, dma = static_cast<std::uint64_t>(*rc::gen::inRange(0, 64)) * 4096 << opb;
  for (unsigned i = 0; i < nseg; ++i) {
    const std::uint64_t pages = static_cast<std::uint64_t>(*rc::gen::inRange(1, 48)) << opb;
    c.segments.push_back({page, pages, dma});
    page += pages;
    dma += pages * 4096 + (static_cast<std::uint64_t>(*rc::gen::inRange(0, 5)) * 4096 << opb);
  }
  c.pages = page;
  auto created = Area::create(c);
  RC_ASSERT(created.ok());
  Area area = std::move(created).value();
  NaiveArea model(c);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  const int steps = *rc::gen::inRange(1, 120);
  for (int s = 0; s < steps; ++s) {
    if (live.empty() || *rc::gen::inRange(0, 3) != 0) {
      // Now and then the whole area or more (a request larger than the area
      // is not counted, __cma_alloc's bitmap_count > bitmap_maxno).
      const std::uint64_t count =
          *rc::gen::inRange(0, 8) != 0
              ? static_cast<std::uint64_t>(*rc::gen::inRange(1, 40))
              : c.pages - 1 + static_cast<std::uint64_t>(*rc::gen::inRange(0, 3) * (1 << opb));
      const unsigned align = *rc::gen::inRange(0u, 10u);
      const std::uint64_t limit =
          *rc::gen::element<std::uint64_t>(UINT64_MAX, dma / 2, dma / 3 + 4095, 0x7fff);
      auto got = area.alloc(count, align, limit);
      auto want = model.alloc(count, align, limit);
      RC_ASSERT(got.ok() == want.has_value());
      if (got.ok()) {
        RC_ASSERT(got->first_page == *want);
        const std::uint64_t a = 4096ULL << std::min(align, 8u);
        if (a > (4096ULL << opb)) RC_ASSERT(got->dma_addr % a == 0);
        RC_ASSERT(got->dma_addr + count * 4096 - 1 <= limit);
        RC_ASSERT(got->dma_addr == area.dma_of_page(got->first_page));
        live.emplace_back(got->first_page, count);
      }
    } else {
      const std::size_t k = *rc::gen::inRange<std::size_t>(0, live.size());
      RC_ASSERT(area.release(live[k].first, live[k].second).ok());
      RC_ASSERT(model.release(live[k].first, live[k].second));
      live.erase(live.begin() + static_cast<long>(k));
    }
    RC_ASSERT(area.stats().alloc_pages_success == model.alloc_pages_success);
    RC_ASSERT(area.stats().alloc_pages_fail == model.alloc_pages_fail);
    std::string why;
    RC_ASSERT(area.invariant(&why));
  }
  std::uint64_t sum = 0;
  for (auto& l : live) sum += l.second;
  RC_ASSERT(area.stats().alloc_pages_success - area.stats().release_pages_success == sum);
  for (auto& l : live) RC_ASSERT(area.release(l.first, l.second).ok());
  const auto st = area.stats();
  RC_ASSERT(st.used == 0u);
  std::uint64_t biggest = 0;
  for (const Segment& seg : c.segments) biggest = std::max(biggest, seg.pages);
  RC_ASSERT(st.maxchunk == biggest);  // F3
}

// Larger areas (several bitmap words even when a bit covers 16 pages), mostly
// block-sized requests (the coarse bits stay coarse for a while, then an odd
// count refines them), allocation-heavy so that words fill and empty again
// (the first-fit start hint and the summary tree): same decisions as the model.
RC_GTEST_PROP(AreaProperty, LargeAreasOfBlocksMatchTheNaiveModel, ()) {
  const unsigned nseg = *rc::gen::inRange(1u, 3u);
  AreaConfig c;
  c.name = "big";
  c.cpu_base = 0x100000000ULL;
  std::uint64_t page = 0;
  std::uint64_t dma = *rc::gen::element<std::uint64_t>(0, 0x200000, 0x40000000, 5 * 4096);
  for (unsigned i = 0; i < nseg; ++i) {
    const std::uint64_t pages = static_cast<std::uint64_t>(*rc::gen::inRange(1, 9)) * 512;
    c.segments.push_back({page, pages, dma});
    page += pages;
    dma += pages * 4096 + *rc::gen::element<std::uint64_t>(0, 0x200000, 16 * 4096);
  }
  c.pages = page;
  auto created = Area::create(c);
  RC_ASSERT(created.ok());
  Area area = std::move(created).value();
  NaiveArea model(c);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  const int steps = *rc::gen::inRange(1, 700);
  for (int s = 0; s < steps; ++s) {
    if (live.empty() || *rc::gen::inRange(0, 4) != 0) {
      const std::uint64_t count =
          *rc::gen::element<std::uint64_t>(16, 16, 16, 32, 64, 48, 256, 512, 16, 16, 3, 1, 24);
      const unsigned align = static_cast<unsigned>(std::bit_width(count - 1));  // A6
      auto got = area.alloc(count, align);
      auto want = model.alloc(count, align, UINT64_MAX);
      RC_ASSERT(got.ok() == want.has_value());
      if (got.ok()) {
        RC_ASSERT(got->first_page == *want);
        live.emplace_back(got->first_page, count);
      }
    } else {
      const std::size_t k = *rc::gen::inRange<std::size_t>(0, live.size());
      RC_ASSERT(area.release(live[k].first, live[k].second).ok());
      RC_ASSERT(model.release(live[k].first, live[k].second));
      live.erase(live.begin() + static_cast<long>(k));
    }
    RC_ASSERT(area.stats().alloc_pages_fail == model.alloc_pages_fail);
    if (s % 16 == 0) {
      std::string why;
      RC_ASSERT(area.invariant(&why));
    }
  }
  for (auto& l : live) RC_ASSERT(area.release(l.first, l.second).ok());
  RC_ASSERT(area.stats().used == 0u);
  std::string why;
  RC_ASSERT(area.invariant(&why));
}
