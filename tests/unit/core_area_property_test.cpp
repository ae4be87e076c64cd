// Property: random alloc/free sequences on random areas (segments, order_per_bit,
// DMA limits, alignments) make exactly the decisions of a naive reference
// model; no two live buffers overlap; alignment and the mask hold; counters
// match; invariant() holds after every step; F3 holds at the end.
// External storage: an Area over a buffer and an owned one decide alike and
// as the model; two Areas over one storage (two processes) see each other.
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

// ---- external storage ---------------------------------------------------------

namespace {

using numacma::core::AreaCounters;
using numacma::core::AreaStorage;
using numacma::core::Block;

/** Random segments (gaps in DMA space between them), as MatchesTheNaiveModel. */
AreaConfig gen_config(unsigned opb, unsigned max_seg_bits) {
  const unsigned nseg = *rc::gen::inRange(1u, 4u);
  AreaConfig c;
  c.name = "x";
  c.order_per_bit = opb;
  c.cpu_base = 0x100000000ULL;
  std::uint64_t page = 0, dma = static_cast<std::uint64_t>(*rc::gen::inRange(0, 64)) * 4096 << opb;
  for (unsigned i = 0; i < nseg; ++i) {
    const std::uint64_t pages = static_cast<std::uint64_t>(*rc::gen::inRange(1u, max_seg_bits)) << opb;
    c.segments.push_back({page, pages, dma});
    page += pages;
    dma += pages * 4096 + (static_cast<std::uint64_t>(*rc::gen::inRange(0, 5)) * 4096 << opb);
  }
  c.pages = page;
  return c;
}

/** Bitmap words and counters of an external area, between guard words. */
struct GuardedStorage {
  static constexpr std::size_t kGuard = 4;
  static constexpr std::uint64_t kGuardWord = 0x3c6ef372fe94f82bULL;
  std::vector<std::uint64_t> buf;
  std::size_t words;
  GuardedStorage(const AreaConfig& c, std::uint64_t seed)
      : buf(Area::storage_words(c) + 5 + 3 * kGuard), words(Area::storage_words(c)) {
    for (auto& w : buf) w = seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;  // garbage
    for (std::size_t i = 0; i < kGuard; ++i)
      buf[i] = buf[kGuard + words + i] = buf[buf.size() - 1 - i] = kGuardWord;
  }
  AreaStorage at() {
    return {buf.data() + kGuard, reinterpret_cast<AreaCounters*>(buf.data() + 2 * kGuard + words)};
  }
  bool intact() const {
    for (std::size_t i = 0; i < kGuard; ++i)
      if (buf[i] != kGuardWord || buf[kGuard + words + i] != kGuardWord || buf[buf.size() - 1 - i] != kGuardWord)
        return false;
    return true;
  }
};

/** alloc(), or find() then commit(): the same decision either way. */
numacma::Result<Block> alloc_either(Area& a, bool split, std::uint64_t count, unsigned align,
                                    std::uint64_t limit) {
  if (!split) return a.alloc(count, align, limit);
  Block above;
  auto f = a.find(count, align, limit, &above);
  if (f) a.commit(*f);
  else if (above.pages != 0) a.count_taken_and_released(above.pages);  // as the pool does
  return f;
}

std::uint64_t bits_of(std::uint64_t count, unsigned opb) { return (count + (1ULL << opb) - 1) >> opb; }

}  // namespace

// An external Area over a buffer (created over garbage with init), an owned
// Area and the naive model make the same decisions: first page, DMA and CPU
// address, error codes, counters, bitmap. order_per_bit 0..2 with odd counts
// (no odd_ map in the external one: it releases by the run's bits, so a
// count of the same bits is accepted there, a count of other bits, a start
// inside a run, or nothing live refused by both). F3 at the end.
RC_GTEST_PROP(AreaProperty, ExternalAndOwnedAreasDecideAsTheModel, ()) {
  const unsigned opb = *rc::gen::inRange(0u, 3u);
  const AreaConfig c = gen_config(opb, 48);
  GuardedStorage store(c, *rc::gen::arbitrary<std::uint64_t>());
  auto ext_r = Area::create_over(c, store.at(), true);
  auto own_r = Area::create(c);
  RC_ASSERT(ext_r.ok() && own_r.ok());
  Area ext = std::move(ext_r).value();
  Area own = std::move(own_r).value();
  RC_ASSERT(ext.external() && !own.external());
  NaiveArea model(c);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  std::uint64_t ext_extra_released = 0;  // same-bits releases: counts differ by this
  const std::uint64_t top_dma = c.segments.back().dma_base + c.segments.back().pages * 4096;
  const int steps = *rc::gen::inRange(1, 150);
  for (int s = 0; s < steps; ++s) {
    const int op = live.empty() ? 0 : *rc::gen::inRange(0, 10);
    if (op <= 5) {
      const std::uint64_t count =
          *rc::gen::inRange(0, 8) != 0
              ? static_cast<std::uint64_t>(*rc::gen::inRange(1, 40))
              : c.pages - 1 + static_cast<std::uint64_t>(*rc::gen::inRange(0, 3) * (1 << opb));
      const unsigned align = *rc::gen::inRange(0u, 10u);
      // Limits on bit boundaries and off them (the buffer's own pages are
      // held against the limit, as dma_coherent_ok holds the buffer).
      const std::uint64_t granule = 4096ULL << opb;
      const std::uint64_t limit =
          *rc::gen::element<std::uint64_t>(UINT64_MAX, top_dma / 2 / granule * granule + granule - 1,
                                           top_dma / 3 / granule * granule + granule - 1, 0x7fff,
                                           top_dma / 2 + 4095);
      auto e = alloc_either(ext, *rc::gen::arbitrary<bool>(), count, align, limit);
      auto o = alloc_either(own, *rc::gen::arbitrary<bool>(), count, align, limit);
      auto want = model.alloc(count, align, limit);
      RC_ASSERT(e.ok() == want.has_value());
      RC_ASSERT(o.ok() == want.has_value());
      if (want) {
        RC_ASSERT(e->first_page == *want && o->first_page == *want);
        RC_ASSERT(e->dma_addr == o->dma_addr && e->cpu == o->cpu && e->pages == count);
        live.emplace_back(*want, count);
      } else {
        RC_ASSERT(e.error().code == o.error().code);
      }
    } else if (op <= 7) {
      const std::size_t k = *rc::gen::inRange<std::size_t>(0, live.size());
      RC_ASSERT(ext.release(live[k].first, live[k].second).ok());
      RC_ASSERT(own.release(live[k].first, live[k].second).ok());
      RC_ASSERT(model.release(live[k].first, live[k].second));
      live.erase(live.begin() + static_cast<long>(k));
    } else if (op == 8) {
      // A bad free, refused by both with nothing changed.
      const auto [page, count] = live[*rc::gen::inRange<std::size_t>(0, live.size())];
      const std::uint64_t bits = bits_of(count, opb);
      std::uint64_t bad_page = page, bad_count = count;
      switch (*rc::gen::inRange(0, 5)) {
        case 0: bad_count = count + (1ULL << opb); break;                 // a bit more
        case 1: bad_count = bits > 1 ? count - (1ULL << opb) : 0; break;  // a bit less
        case 2: bad_count = *rc::gen::element<std::uint64_t>(0, UINT64_MAX, 1ULL << 32); break;
        case 3: bad_page = bits > 1 ? page + (1ULL << opb) : page + 1; break;  // inside, or off a bit
        default: bad_page = c.pages + (*rc::gen::inRange(0, 3) << opb); break;  // past the end
      }
      if (bad_page == page && bits_of(bad_count, opb) == bits && bad_count != 0) continue;
      const std::string before = own.dump_bitmap();
      auto er = ext.release(bad_page, bad_count);
      auto orr = own.release(bad_page, bad_count);
      RC_ASSERT(!er.ok() && !orr.ok());
      RC_ASSERT(er.error().code == numacma::Errc::bad_free && orr.error().code == numacma::Errc::bad_free);
      RC_ASSERT(ext.dump_bitmap() == before && own.dump_bitmap() == before);
    } else {
      // The external area takes any count of the run's bits; the owned one
      // (exact counts in odd_) only the count itself. (At most the count, so
      // that no more pages are released than allocated, which invariant()
      // checks.)
      const std::size_t k = *rc::gen::inRange<std::size_t>(0, live.size());
      const auto [page, count] = live[k];
      const std::uint64_t bits = bits_of(count, opb);
      const std::uint64_t below = (bits - 1) << opb;  // < count
      const std::uint64_t other = below + 1 + *rc::gen::inRange<std::uint64_t>(0, count - below);
      RC_ASSERT(bits_of(other, opb) == bits);
      if (other != count) RC_ASSERT(!own.release(page, other).ok());
      RC_ASSERT(ext.release(page, other).ok());
      RC_ASSERT(own.release(page, count).ok());
      RC_ASSERT(model.release(page, count));
      ext_extra_released += other - count;  // mod 2^64
      live.erase(live.begin() + static_cast<long>(k));
    }
    const auto es = ext.stats(), os = own.stats();
    RC_ASSERT(es.alloc_pages_success == model.alloc_pages_success);
    RC_ASSERT(os.alloc_pages_success == model.alloc_pages_success);
    RC_ASSERT(es.alloc_pages_fail == model.alloc_pages_fail);
    RC_ASSERT(os.alloc_pages_fail == model.alloc_pages_fail);
    RC_ASSERT(es.release_pages_success == os.release_pages_success + ext_extra_released);
    RC_ASSERT(es.used == os.used && es.maxchunk == os.maxchunk);
    RC_ASSERT(ext.live_allocations() == live.size() && own.live_allocations() == live.size());
    RC_ASSERT(ext.dump_bitmap() == own.dump_bitmap());
    std::string why;
    if (!ext.invariant(&why)) RC_FAIL(why);
    if (!own.invariant(&why)) RC_FAIL(why);
    RC_ASSERT(store.intact());
  }
  for (auto& l : live) {
    RC_ASSERT(ext.release(l.first, l.second).ok());
    RC_ASSERT(own.release(l.first, l.second).ok());
  }
  std::uint64_t biggest = 0;
  for (const Segment& seg : c.segments) biggest = std::max(biggest, seg.pages);
  RC_ASSERT(ext.stats().used == 0u && own.stats().used == 0u);
  RC_ASSERT(ext.stats().maxchunk == biggest && own.stats().maxchunk == biggest);  // F3
  RC_ASSERT(store.intact());
}

// Two external Areas over the same storage (the second adopting it, init
// false: a second process attaching to a live area) see each other's
// allocations: operations alternate between them at random and match one
// model; both read the same counters. Now and then a process re-attaches
// (init false, whatever is live stays), or one forgets everything and the
// other rebuilds it from the live list (restore), as a shared pool recovers.
RC_GTEST_PROP(AreaProperty, TwoAreasOverOneStorageSeeEachOther, ()) {
  const unsigned opb = *rc::gen::inRange(0u, 3u);
  const AreaConfig c = gen_config(opb, 200);
  GuardedStorage store(c, *rc::gen::arbitrary<std::uint64_t>());
  const auto attach = [&](bool init) {
    auto a = Area::create_over(c, store.at(), init);
    RC_ASSERT(a.ok());
    return std::move(a).value();
  };
  std::vector<Area> areas;
  areas.push_back(attach(true));
  NaiveArea model(c);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  const int steps = *rc::gen::inRange(1, 200);
  for (int s = 0; s < steps; ++s) {
    const int op = live.empty() ? 0 : *rc::gen::inRange(0, 22);
    if (op >= 20 || (areas.size() == 1 && *rc::gen::inRange(0, 8) == 0)) {
      if (areas.size() == 1) areas.push_back(attach(false));  // the second process arrives
      else areas[*rc::gen::inRange(0, 2)] = attach(false);   // one re-attaches
      continue;
    }
    Area& a = areas[*rc::gen::inRange<std::size_t>(0, areas.size())];
    if (op < 12) {
      const std::uint64_t count = static_cast<std::uint64_t>(*rc::gen::inRange(1, 70));
      const unsigned align = *rc::gen::inRange(0u, 9u);
      auto got = alloc_either(a, *rc::gen::arbitrary<bool>(), count, align, UINT64_MAX);
      auto want = model.alloc(count, align, UINT64_MAX);
      RC_ASSERT(got.ok() == want.has_value());
      if (want) {
        RC_ASSERT(got->first_page == *want);
        live.emplace_back(*want, count);
      }
    } else if (op < 19) {
      const std::size_t k = *rc::gen::inRange<std::size_t>(0, live.size());
      RC_ASSERT(a.release(live[k].first, live[k].second).ok());
      RC_ASSERT(model.release(live[k].first, live[k].second));
      live.erase(live.begin() + static_cast<long>(k));
    } else {
      a.clear_allocations();
      Area& b = areas[*rc::gen::inRange<std::size_t>(0, areas.size())];
      RC_ASSERT(b.stats().used == 0u && b.live_allocations() == 0u);
      for (auto& l : live) RC_ASSERT(b.restore(l.first, l.second).ok());
    }
    for (const Area& x : areas) {
      const auto st = x.stats();
      RC_ASSERT(st.alloc_pages_success == model.alloc_pages_success);
      RC_ASSERT(st.alloc_pages_fail == model.alloc_pages_fail);
      RC_ASSERT(x.live_allocations() == live.size());
      std::string why;
      if (!x.invariant(&why)) RC_FAIL(why);
      RC_ASSERT(x.dump_bitmap() == areas[0].dump_bitmap());
      RC_ASSERT(st.maxchunk == areas[0].stats().maxchunk);
    }
    RC_ASSERT(store.intact());
  }
}
