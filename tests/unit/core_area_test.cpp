// Area: docs/semantics.md A6 (alignment in DMA space), A8 (mask), segments, counters,
// F2 (bad frees leave the bitmap alone), F3, order_per_bit, config validation.
#include <gtest/gtest.h>

#include "core/area.hpp"
#include "core_area_util.hpp"

using numacma::Errc;
using numacma::core::Area;
using numacma::core::AreaConfig;
using numacma::core::Segment;

namespace {

using numacma::testing::cfg;
using numacma::testing::make;

}  // namespace

TEST(Area, AlignmentIsInDmaSpaceAndCappedAtOrder8) {
  // The DMA base is 3 pages past a 64 KiB boundary: page 0 is NOT aligned.
  Area a = make(cfg(1024, {{0, 1024, 0x100000 + 3 * 4096}}));
  auto b1 = a.alloc(1, 0);
  ASSERT_TRUE(b1.ok());
  EXPECT_EQ(b1->first_page, 0u);
  auto b3 = a.alloc(3, 2);  // 16 KiB aligned in DMA space
  ASSERT_TRUE(b3.ok());
  EXPECT_EQ(b3->dma_addr % 16384, 0u);
  EXPECT_EQ(b3->first_page, 1u);  // 0x103000 + 1 page = 0x104000
  auto big = a.alloc(300, 9);  // capped at order 8: 1 MiB
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->dma_addr % (1u << 20), 0u);
  EXPECT_EQ(big->cpu, 0x7f0000000000ULL + big->first_page * 4096);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
}

TEST(Area, NeverSpansTwoSegments) {
  // Two 4-page segments far apart in DMA space.
  Area a = make(cfg(8, {{0, 4, 0x10000}, {4, 4, 0x900000}}));
  ASSERT_TRUE(a.alloc(2, 0).ok());  // pages 0-1
  auto b = a.alloc(4, 0);           // cannot use pages 2-5: goes to segment 1
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first_page, 4u);
  EXPECT_EQ(b->dma_addr, 0x900000u);
  auto c = a.alloc(3, 0);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::no_memory);
  EXPECT_EQ(a.stats().maxchunk, 2u);
  EXPECT_EQ(a.stats().segments, 2u);
  EXPECT_EQ(a.dma_of_page(5), 0x901000u);
  EXPECT_EQ(a.lowest_dma(), 0x10000u);
}

// A8 as dma-direct meets it: cma_alloc searches the whole area, the mask is
// looked at afterwards (dma_coherent_ok), and a first fit above it is taken
// and released at once, both counted; no fit at all is a failure.
TEST(Area, DmaLimitIsHeldAgainstCmaAllocsFirstFit) {
  Area a = make(cfg(16, {{0, 16, 0x10000000}}));  // 256 MiB .. +64 KiB
  auto un = a.alloc(2, 0, 0x0fffffff);  // the whole area is above the mask
  ASSERT_FALSE(un.ok());
  EXPECT_EQ(un.error().code, Errc::unreachable);
  EXPECT_EQ(a.stats().alloc_pages_fail, 0u);
  EXPECT_EQ(a.stats().alloc_pages_success, 2u);  // taken, checked ...
  EXPECT_EQ(a.stats().release_pages_success, 2u);  // ... and released
  EXPECT_EQ(a.stats().used, 0u);
  // Only the first 4 pages lie below the limit.
  const std::uint64_t limit = 0x10000000 + 4 * 4096 - 1;
  auto b = a.alloc(4, 0, limit);
  ASSERT_TRUE(b.ok());
  EXPECT_LE(b->dma_addr + 4 * 4096 - 1, limit);
  auto c = a.alloc(1, 0, limit);  // the first fit, page 4, is above it
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::unreachable);
  EXPECT_EQ(a.stats().alloc_pages_success, 7u);
  EXPECT_EQ(a.stats().release_pages_success, 3u);
  auto full = a.alloc(1, 0);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->first_page, 4u);
  auto rest = a.alloc(11, 0);
  ASSERT_TRUE(rest.ok());
  auto none = a.alloc(1, 0, 0x0fffffff);  // nothing free: a failure, the area above the mask
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, Errc::unreachable);
  EXPECT_EQ(a.stats().alloc_pages_fail, 1u);
  auto none_below = a.alloc(1, 0, limit);  // nothing free, part of the area below the mask
  EXPECT_EQ(none_below.error().code, Errc::no_memory);
  EXPECT_EQ(a.stats().alloc_pages_fail, 2u);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
}

// find() leaves the above-the-mask fit to its caller to count (a shared
// area counts it through its journal): it says where that fit is.
TEST(Area, FindReportsTheFitAboveTheMaskWithoutCountingIt) {
  Area a = make(cfg(16, {{0, 16, 0x10000000}}));
  numacma::core::Block above;
  auto f = a.find(4, 2, 0x0fffffff, &above);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, Errc::unreachable);
  EXPECT_EQ(above.first_page, 0u);
  EXPECT_EQ(above.pages, 4u);
  EXPECT_EQ(above.dma_addr, 0x10000000u);
  EXPECT_EQ(a.stats().alloc_pages_success, 0u);
  EXPECT_EQ(a.stats().release_pages_success, 0u);
  a.count_taken_and_released(above.pages);
  EXPECT_EQ(a.stats().alloc_pages_success, 4u);
  EXPECT_EQ(a.stats().release_pages_success, 4u);
  EXPECT_EQ(a.stats().used, 0u);
}

TEST(Area, CountersFollowTheKernel) {
  Area a = make(cfg(8));
  auto b = a.alloc(5, 3);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(a.alloc(5, 3).ok());
  auto s = a.stats();
  EXPECT_EQ(s.alloc_pages_success, 5u);
  EXPECT_EQ(s.alloc_pages_fail, 5u);
  EXPECT_EQ(s.used, 5u);
  EXPECT_EQ(s.maxchunk, 3u);
  ASSERT_TRUE(a.release(b->first_page, 5).ok());
  s = a.stats();
  EXPECT_EQ(s.release_pages_success, 5u);
  EXPECT_EQ(s.used, 0u);
  EXPECT_EQ(s.maxchunk, 8u);  // F3
}

TEST(Area, RequestLargerThanTheWholeAreaIsNotCounted) {
  // __cma_alloc returns before its accounting when bitmap_count >
  // bitmap_maxno: such a request is in neither alloc_pages_success nor
  // alloc_pages_fail. One that fits the area but finds no room is a failure.
  Area a = make(cfg(8));
  auto huge = a.alloc(9, 0);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, Errc::no_memory);
  EXPECT_NE(huge.error().message.find("whole area"), std::string::npos) << huge.error().message;
  EXPECT_FALSE(a.alloc(UINT64_MAX, 8).ok());  // no overflow rounding it to bits
  EXPECT_EQ(a.stats().alloc_pages_fail, 0u);
  EXPECT_EQ(a.stats().alloc_pages_success, 0u);
  auto b = a.alloc(1, 0);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(a.alloc(8, 0).ok());  // the whole area, but one page is taken: counted
  EXPECT_EQ(a.stats().alloc_pages_fail, 8u);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
}

TEST(Area, RequestLargerThanTheAreaIsComparedInBitmapBits) {
  // order_per_bit 2: 16 pages are 4 bits. 13..16 pages are 4 bits (they fit
  // the bitmap and are counted when they fail); 17 pages are 5 bits (not).
  Area a = make(cfg(16, {}, 2));
  auto b = a.alloc(1, 0);  // takes bit 0 (pages 0-3)
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(a.alloc(17, 0).ok());
  EXPECT_EQ(a.stats().alloc_pages_fail, 0u);
  EXPECT_FALSE(a.alloc(13, 0).ok());  // 4 bits: the whole bitmap, counted
  EXPECT_EQ(a.stats().alloc_pages_fail, 13u);
  ASSERT_TRUE(a.release(b->first_page, 1).ok());
  auto whole = a.alloc(16, 0);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(a.stats().alloc_pages_success, 17u);
}

TEST(Area, ZeroPagesIsAnErrorAndNotCounted) {
  // __cma_alloc: `if (!count) return page;` before the accounting.
  Area a = make(cfg(8));
  auto z = a.alloc(0, 0);
  ASSERT_FALSE(z.ok());
  EXPECT_EQ(z.error().code, Errc::invalid_argument);
  EXPECT_EQ(a.stats().alloc_pages_fail, 0u);
  EXPECT_EQ(a.stats().alloc_pages_success, 0u);
}

TEST(Area, BadFreesAreRefusedAndChangeNothing) {
  Area a = make(cfg(64));
  auto b = a.alloc(4, 2);
  ASSERT_TRUE(b.ok());
  const std::string before = a.dump_bitmap();
  auto wrong_size = a.release(b->first_page, 3);
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_EQ(wrong_size.error().code, Errc::bad_free);
  EXPECT_NE(wrong_size.error().message.find("size mismatch"), std::string::npos);
  EXPECT_EQ(a.release(b->first_page + 1, 3).error().code, Errc::bad_free);  // inside a buffer
  EXPECT_EQ(a.release(40, 1).error().code, Errc::bad_free);                 // never allocated
  EXPECT_EQ(a.dump_bitmap(), before);
  ASSERT_TRUE(a.release(b->first_page, 4).ok());
  auto twice = a.release(b->first_page, 4);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message.find("double free"), std::string::npos);
  EXPECT_EQ(a.stats().used, 0u);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
}

TEST(Area, OrderPerBitRoundsToWholeBits) {
  Area a = make(cfg(64, {}, 2));  // 16 bits of 4 pages
  auto b = a.alloc(5, 0);         // 2 bits = 8 pages
  ASSERT_TRUE(b.ok());
  auto s = a.stats();
  EXPECT_EQ(s.used, 8u);
  EXPECT_EQ(s.alloc_pages_success, 5u);
  auto c = a.alloc(1, 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->first_page, 8u);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
}

TEST(Area, ConfigIsValidated) {
  EXPECT_FALSE(Area::create(cfg(0)).ok());
  EXPECT_FALSE(Area::create(cfg(6, {}, 2)).ok());                        // not whole bits
  EXPECT_FALSE(Area::create(cfg(8, {{0, 4, 0}, {5, 3, 0x8000}})).ok());  // gap
  EXPECT_FALSE(Area::create(cfg(8, {{0, 4, 0}})).ok());                  // short
  EXPECT_FALSE(Area::create(cfg(8, {{0, 8, 0x123}})).ok());              // unaligned DMA
  auto c = cfg(8);
  c.page_size = 3000;
  EXPECT_EQ(Area::create(c).error().code, Errc::invalid_argument);
  Area a = make(cfg(8));
  EXPECT_EQ(a.alloc(0, 0).error().code, Errc::invalid_argument);
}

// The allocation marks cost 1/16 bit a page in an area that only hands out
// 64 KiB-aligned runs, and a whole bit a page once a run starts on an odd
// page; the live allocations survive the change and F2/F3 still hold.
TEST(Area, MarksStayCoarseUntilAnAllocationNeedsThemFine) {
  constexpr std::uint64_t kPages = 1 << 18;  // 1 GiB: 32 KiB of bitmap words
  Area a = make(cfg(kPages));
  const std::uint64_t bitmap_bytes = kPages / 8;
  std::vector<std::uint64_t> live;
  for (int i = 0; i < 100; ++i) {
    auto b = a.alloc(16, 4);
    ASSERT_TRUE(b.ok());
    live.push_back(b->first_page);
  }
  EXPECT_LT(a.metadata_bytes(), bitmap_bytes + bitmap_bytes / 8);
  ASSERT_TRUE(a.release(live[3], 16).ok());  // a hole at pages 48..63
  auto one = a.alloc(1, 0);                  // first fit: page 48
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->first_page, 48u);
  auto odd = a.alloc(1, 0);                  // page 49: the marks go to 1 bit a page
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->first_page, 49u);
  EXPECT_GT(a.metadata_bytes(), 2 * bitmap_bytes - bitmap_bytes / 8);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
  EXPECT_EQ(a.release(48, 2).error().code, Errc::bad_free);  // two allocations, not one
  EXPECT_EQ(a.release(live[4], 15).error().code, Errc::bad_free);
  ASSERT_TRUE(a.release(49, 1).ok());
  ASSERT_TRUE(a.release(48, 1).ok());
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (i != 3) {
      ASSERT_TRUE(a.release(live[i], 16).ok()) << i;
    }
  }
  EXPECT_EQ(a.stats().used, 0u);
  EXPECT_EQ(a.stats().maxchunk, kPages);
  EXPECT_TRUE(a.invariant(&why)) << why;
}

// A bitmap bit covers as many pages as the segments and the live allocations
// allow (up to 2^8): first fit, the counters and the dump are those of a
// page-granular bitmap, and the first allocation that is not a whole number
// of bits makes them finer for good.
TEST(Area, BitsAreAsCoarseAsTheAllocationsAllow) {
  Area a = make(cfg(4096));
  EXPECT_EQ(a.pages_per_bit_order(), 8u);
  auto x = a.alloc(32, 5);  // 2^5 pages: bits of 32 pages
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(a.pages_per_bit_order(), 5u);
  auto y = a.alloc(16, 4);  // bits of 16 pages
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->first_page, 32u);
  EXPECT_EQ(a.pages_per_bit_order(), 4u);
  const std::size_t coarse = a.metadata_bytes();
  EXPECT_EQ(a.dump_bitmap().substr(0, 19), "0: 0000ffffffffffff");
  ASSERT_TRUE(a.release(x->first_page, 32).ok());
  auto z = a.alloc(3, 2);  // 3 pages aligned to 4: first fit at page 0, bits of 1 page
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->first_page, 0u);
  EXPECT_EQ(a.pages_per_bit_order(), 0u);
  EXPECT_GT(a.metadata_bytes(), 8 * coarse);
  EXPECT_EQ(a.dump_bitmap().substr(0, 19), "0: 0000ffff00000007");
  auto w = a.alloc(16, 4);  // the hole at 16..31 (16-aligned), not 3..15
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->first_page, 16u);
  EXPECT_EQ(a.stats().used, 3u + 16 + 16);
  EXPECT_EQ(a.release(y->first_page, 15).error().code, Errc::bad_free);
  ASSERT_TRUE(a.release(y->first_page, 16).ok());
  ASSERT_TRUE(a.release(z->first_page, 3).ok());
  ASSERT_TRUE(a.release(w->first_page, 16).ok());
  EXPECT_EQ(a.stats().used, 0u);
  EXPECT_EQ(a.stats().maxchunk, 4096u);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
}

TEST(Area, CoarseBitsFollowTheSegments) {
  // A segment whose DMA offset is odd in pages: page-granular from the start.
  EXPECT_EQ(make(cfg(64, {{0, 64, 3 * 4096}})).pages_per_bit_order(), 0u);
  // Segments of 48 pages at 2 MiB-aligned DMA bases: bits of 16 pages.
  EXPECT_EQ(make(cfg(96, {{0, 48, 0x200000}, {48, 48, 0x800000}})).pages_per_bit_order(), 4u);
  // order_per_bit 2: never finer than 4 pages; sizes still round up to them.
  Area a = make(cfg(1024, {}, 2));
  EXPECT_EQ(a.pages_per_bit_order(), 10u);
  auto b = a.alloc(3, 2);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a.pages_per_bit_order(), 2u);
  EXPECT_EQ(a.stats().used, 4u);
  EXPECT_EQ(a.release(b->first_page, 4).error().code, Errc::bad_free);
  ASSERT_TRUE(a.release(b->first_page, 3).ok());
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
}

// A request the area cannot reach is still searched, as cma_alloc searches
// it (the kernel counts what it finds): the bits may get finer, which
// decides nothing; nothing stays marked.
TEST(Area, UnreachableRequestIsSearchedAndLeavesNothingMarked) {
  Area a = make(cfg(4096, {{0, 4096, 0x100000000ULL}}));
  EXPECT_EQ(a.pages_per_bit_order(), 8u);
  EXPECT_EQ(a.alloc(3, 2, 0xffffffffULL).error().code, Errc::unreachable);
  EXPECT_EQ(a.stats().used, 0u);
  EXPECT_EQ(a.stats().alloc_pages_success, 3u);
  EXPECT_EQ(a.stats().release_pages_success, 3u);
  EXPECT_EQ(a.stats().maxchunk, 4096u);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
}

// restore() takes counts from allocation records another process wrote: a
// count near 2^64 must not round up to 0 bits (ceil(count / 2) overflowing)
// and slip past the bounds check as an empty allocation.
TEST(Area, RestoreRefusesCountsBeyondTheAreaWhateverTheirSize) {
  for (unsigned opb : {0u, 1u, 2u}) {
    Area a = make(cfg(64, {{0, 32, 0x100000}, {32, 32, 0x900000}}, opb));
    const std::string before = a.dump_bitmap();
    for (std::uint64_t count : {UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 2, (std::uint64_t{1} << 32) - 1,
                                std::uint64_t{1} << 63, std::uint64_t{65}}) {
      auto r = a.restore(0, count);
      ASSERT_FALSE(r.ok()) << opb << " " << count;
      EXPECT_EQ(r.error().code, Errc::corrupt);
      EXPECT_NE(r.error().message.find("beyond the area"), std::string::npos) << r.error().message;
    }
    EXPECT_EQ(a.restore(UINT64_MAX & ~((std::uint64_t{1} << opb) - 1), 1).error().code, Errc::corrupt);
    EXPECT_EQ(a.restore(28, 5).error().code, Errc::corrupt);  // crosses into segment 1
    EXPECT_EQ(a.live_allocations(), 0u);
    EXPECT_EQ(a.stats().used, 0u);
    EXPECT_EQ(a.dump_bitmap(), before);
    ASSERT_TRUE(a.restore(32, 32).ok());  // the whole of segment 1 fits
    std::string why;
    EXPECT_TRUE(a.invariant(&why)) << why;
  }
}
