// Area over external storage (create_over): validation, init or adoption,
// release by the run's bits, clear_allocations in place; find() + commit()
// in both storage modes; copies and moves of both.
#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

#include "core/area.hpp"
#include "core_area_util.hpp"
#include "core/bitmap.hpp"

using numacma::Errc;
using numacma::Result;
using numacma::core::Area;
using numacma::core::AreaConfig;
using numacma::core::Segment;

namespace {

using numacma::testing::cfg;
using numacma::testing::make;

}  // namespace

namespace {

/** An external area's storage: bitmap words and counters, guard words around. */
struct Storage {
  static constexpr std::size_t kGuard = 4;
  static constexpr std::uint64_t kGuardWord = 0xbb67ae8584caa73bULL;
  std::vector<std::uint64_t> buf;
  std::size_t words;
  explicit Storage(const AreaConfig& c, std::uint64_t fill = 0)
      : buf(Area::storage_words(c) + 5 + 3 * kGuard, fill), words(Area::storage_words(c)) {
    for (std::size_t i = 0; i < kGuard; ++i) {
      buf[i] = kGuardWord;
      buf[kGuard + words + i] = kGuardWord;
      buf[buf.size() - 1 - i] = kGuardWord;
    }
  }
  numacma::core::AreaStorage at() {
    return {buf.data() + kGuard,
            reinterpret_cast<numacma::core::AreaCounters*>(buf.data() + 2 * kGuard + words)};
  }
  bool guards_intact() const {
    for (std::size_t i = 0; i < kGuard; ++i)
      if (buf[i] != kGuardWord || buf[kGuard + words + i] != kGuardWord || buf[buf.size() - 1 - i] != kGuardWord)
        return false;
    return true;
  }
};

Area make_over(AreaConfig c, Storage& s, bool init) {
  auto a = Area::create_over(std::move(c), s.at(), init);
  EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
  return std::move(a).value();
}

}  // namespace

TEST(AreaExternal, CreateOverValidatesAndClearsOrAdopts) {
  AreaConfig c = cfg(256, {}, 1);
  EXPECT_EQ(Area::storage_words(c), numacma::core::Bitmap::storage_words(128));
  Storage s(c, 0xdeadbeefdeadbeefULL);  // garbage: init clears it
  EXPECT_EQ(Area::create_over(cfg(6, {}, 2), s.at(), true).error().code, Errc::invalid_argument);
  EXPECT_EQ(Area::create_over(c, {nullptr, s.at().counters}, true).error().code, Errc::invalid_argument);
  EXPECT_EQ(Area::create_over(c, {s.at().bitmap, nullptr}, true).error().code, Errc::invalid_argument);
  Area a = make_over(c, s, true);
  EXPECT_TRUE(a.external());
  EXPECT_EQ(a.pages_per_bit_order(), 1u);  // order_per_bit, never coarser
  EXPECT_EQ(a.stats().used, 0u);
  EXPECT_EQ(a.stats().alloc_pages_success, 0u);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
  auto b = a.alloc(3, 0);  // 2 bits
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a.pages_per_bit_order(), 1u);  // an odd count refines nothing
  EXPECT_EQ(s.at().counters->used_pages, 4u);
  EXPECT_EQ(s.at().counters->live, 1u);
  EXPECT_EQ(s.at().counters->alloc_pages_success, 3u);
  // A second process adopts the state as it is.
  Area other = make_over(c, s, false);
  EXPECT_TRUE(other.invariant(&why)) << why;
  EXPECT_EQ(other.stats().used, 4u);
  auto b2 = other.alloc(2, 0);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(b2->first_page, 4u);
  ASSERT_TRUE(a.release(b2->first_page, 2).ok());
  EXPECT_EQ(other.live_allocations(), 1u);
  EXPECT_TRUE(s.guards_intact());
}

// No odd_ map in an external area: the caller keeps exact counts, the area
// checks the run: a marked run at first_page of ceil(count / 2^opb) bits.
TEST(AreaExternal, ReleaseChecksTheRunInBits) {
  AreaConfig c = cfg(64, {}, 2);  // bits of 4 pages
  Storage s(c);
  Area a = make_over(c, s, true);
  auto b = a.alloc(5, 0);  // 2 bits
  auto n = a.alloc(4, 0);  // 1 bit, right after it
  ASSERT_TRUE(b.ok() && n.ok());
  EXPECT_EQ(n->first_page, 8u);
  const std::string before = a.dump_bitmap();
  for (std::uint64_t wrong : std::initializer_list<std::uint64_t>{0, 4, 9, 12, UINT64_MAX}) {
    auto r = a.release(b->first_page, wrong);
    ASSERT_FALSE(r.ok()) << wrong;
    EXPECT_EQ(r.error().code, Errc::bad_free);
    EXPECT_NE(r.error().message.find("size mismatch"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(a.release(b->first_page + 4, 4).error().code, Errc::bad_free);  // inside the run
  EXPECT_EQ(a.release(2, 1).error().code, Errc::bad_free);                   // off a bit
  EXPECT_EQ(a.release(64, 1).error().code, Errc::bad_free);                  // past the end
  EXPECT_EQ(a.dump_bitmap(), before);
  EXPECT_EQ(a.stats().release_pages_success, 0u);
  ASSERT_TRUE(a.release(b->first_page, 7).ok());  // 7 pages are 2 bits too
  EXPECT_EQ(a.stats().release_pages_success, 7u);
  EXPECT_EQ(a.stats().used, 4u);
  EXPECT_EQ(a.release(b->first_page, 5).error().code, Errc::bad_free);  // twice
  ASSERT_TRUE(a.release(n->first_page, 1).ok());
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
  EXPECT_EQ(a.stats().maxchunk, 64u);
}

// find() is alloc()'s search and its failure accounting, changing nothing
// else; commit() marks and counts. alloc() is the two in a row.
TEST(AreaSplit, FindChangesNothingAndCommitMarks) {
  for (bool external : {false, true}) {
    AreaConfig c = cfg(64, {{0, 64, 0x100000 + 3 * 4096}});
    Storage s(c);
    Area a = external ? make_over(c, s, true) : make(c);
    ASSERT_TRUE(a.alloc(1, 0).ok());
    const std::string before = a.dump_bitmap();
    const auto st = a.stats();
    auto f = a.find(3, 2);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->first_page, 1u);  // 0x104000: 16 KiB aligned in DMA space
    EXPECT_EQ(f->dma_addr, 0x104000u);
    EXPECT_EQ(a.dump_bitmap(), before);
    EXPECT_EQ(a.stats().used, st.used);
    EXPECT_EQ(a.stats().alloc_pages_success, st.alloc_pages_success);
    EXPECT_EQ(a.live_allocations(), 1u);
    EXPECT_EQ(a.find(3, 2)->first_page, 1u);  // the same again: nothing taken
    a.commit(*f);
    EXPECT_EQ(a.live_allocations(), 2u);
    EXPECT_EQ(a.stats().used, 4u);
    EXPECT_EQ(a.stats().alloc_pages_success, 4u);
    EXPECT_EQ(a.find(3, 2)->first_page, 5u);
    auto fail = a.find(64, 0);  // fits the area, finds no room: counted
    ASSERT_FALSE(fail.ok());
    EXPECT_EQ(fail.error().code, Errc::no_memory);
    EXPECT_EQ(a.stats().alloc_pages_fail, 64u);
    EXPECT_EQ(a.find(65, 0).error().code, Errc::no_memory);  // more than the area: not counted
    EXPECT_EQ(a.find(0, 0).error().code, Errc::invalid_argument);
    EXPECT_EQ(a.find(1, 0, 0xfff).error().code, Errc::unreachable);
    EXPECT_EQ(a.stats().alloc_pages_fail, 64u);
    ASSERT_TRUE(a.release(f->first_page, 3).ok());
    std::string why;
    EXPECT_TRUE(a.invariant(&why)) << why;
    EXPECT_TRUE(s.guards_intact());
  }
}

TEST(AreaExternal, ClearAllocationsInPlaceKeepsTheKernelCounters) {
  AreaConfig c = cfg(4096, {}, 0);
  Storage s(c);
  Area a = make_over(c, s, true);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(a.alloc(1 + i % 7, 0).ok());
  EXPECT_FALSE(a.alloc(4096, 0).ok());
  const auto st = a.stats();
  a.clear_allocations();
  EXPECT_TRUE(a.external());
  EXPECT_EQ(a.stats().used, 0u);
  EXPECT_EQ(a.live_allocations(), 0u);
  EXPECT_EQ(a.stats().alloc_pages_success, st.alloc_pages_success);
  EXPECT_EQ(a.stats().alloc_pages_fail, st.alloc_pages_fail);
  EXPECT_EQ(a.stats().maxchunk, 4096u);
  for (std::size_t i = 0; i < s.words; ++i) ASSERT_EQ(s.at().bitmap[i], 0u) << i;
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;
  ASSERT_TRUE(a.restore(5, 3).ok());  // rebuilding from records: no refinement
  ASSERT_TRUE(a.restore(8, 1).ok());
  EXPECT_EQ(a.restore(9, 0).error().code, Errc::corrupt);
  EXPECT_EQ(a.restore(7, 2).error().code, Errc::corrupt);  // overlaps
  EXPECT_EQ(a.pages_per_bit_order(), 0u);
  EXPECT_EQ(a.stats().used, 4u);
  EXPECT_EQ(a.stats().alloc_pages_success, st.alloc_pages_success);  // not counted
  EXPECT_TRUE(a.invariant(&why)) << why;
  EXPECT_TRUE(s.guards_intact());
}

// An owned Area's counters live in the object: a copy or a move must count
// in its own, not in the object it came from. An external area's copies
// share the caller's.
TEST(AreaStorageModes, CopiesAndMovesCountInTheirOwnCounters) {
  Area a = make(cfg(64));
  ASSERT_TRUE(a.alloc(2, 0).ok());
  Area b = a;
  ASSERT_TRUE(b.alloc(2, 0).ok());
  EXPECT_EQ(a.stats().alloc_pages_success, 2u);
  EXPECT_EQ(b.stats().alloc_pages_success, 4u);
  Area c = std::move(b);
  ASSERT_TRUE(c.alloc(1, 0).ok());
  EXPECT_EQ(c.stats().alloc_pages_success, 5u);
  EXPECT_EQ(c.live_allocations(), 3u);
  a = c;
  ASSERT_TRUE(c.alloc(1, 0).ok());
  EXPECT_EQ(a.stats().alloc_pages_success, 5u);
  a = std::move(c);
  EXPECT_EQ(a.stats().alloc_pages_success, 6u);
  std::string why;
  EXPECT_TRUE(a.invariant(&why)) << why;

  AreaConfig ec = cfg(64);
  Storage s(ec);
  Area e = make_over(ec, s, true);
  Area f = e;
  ASSERT_TRUE(f.alloc(3, 0).ok());
  EXPECT_EQ(e.stats().alloc_pages_success, 3u);
  EXPECT_EQ(e.live_allocations(), 1u);
  Area g = std::move(f);
  EXPECT_TRUE(g.external());
  ASSERT_TRUE(g.release(0, 3).ok());
  EXPECT_EQ(e.stats().used, 0u);
}

// invariant() vets an adopted state: each kind of damage another process
// could leave is named.
TEST(AreaExternal, InvariantNamesWhatIsWrongWithAnAdoptedState) {
  AreaConfig c = cfg(64 * 8, {{0, 256, 0}, {256, 256, 0x1000000}});
  Storage s(c);
  Area a = make_over(c, s, true);
  ASSERT_TRUE(a.alloc(5, 0).ok());   // bits 0..4
  ASSERT_TRUE(a.alloc(70, 0).ok());  // bits 5..74
  std::uint64_t* st = s.at().bitmap;
  numacma::core::AreaCounters* ctr = s.at().counters;
  const std::vector<std::uint64_t> good(st, st + s.words);
  const numacma::core::AreaCounters good_ctr = *ctr;
  const std::size_t words = 8, marks = 1 + words;  // hint, words, then marks, then the summary
  const auto damaged = [&](const char* what, auto&& damage) {
    std::copy(good.begin(), good.end(), st);
    *ctr = good_ctr;
    damage();
    Area other = make_over(c, s, false);
    std::string why;
    EXPECT_FALSE(other.invariant(&why)) << what;
    EXPECT_NE(why.find(what), std::string::npos) << what << " / " << why;
  };
  damaged("start on a free bit", [&] { st[marks + 2] |= 1; });              // mark at bit 128
  damaged("live count", [&] { ctr->live = 3; });
  damaged("used counter", [&] { ctr->used_pages = 74; });
  damaged("summary", [&] { st[marks + words] |= 4; });                       // word 2 "full"
  damaged("hint", [&] { st[0] = 2; });                                       // words 0, 1 "full"
  damaged("spans two segments", [&] {  // bits 192..256 and a mark at 192; 256 is segment 1's first
    st[1 + 3] = ~std::uint64_t{0};
    st[1 + 4] = 1;
    st[marks + 3] = 1;
    st[marks + words] |= 8;  // word 3 full: the summary agrees
  });
  damaged("bitmap differs", [&] { st[1 + 6] = 1; });                         // a set bit, no mark
  damaged("released than allocated", [&] { ctr->release_pages_success = 1000; });
  std::copy(good.begin(), good.end(), st);
  *ctr = good_ctr;
  std::string why;
  EXPECT_TRUE(make_over(c, s, false).invariant(&why)) << why;
  EXPECT_TRUE(s.guards_intact());
}

// with_segments: an IOMMU moved the area's DMA addresses. An external area
// keeps its state (another process's allocations stay marked), an owned one
// must be empty and keeps only the kernel's counters; bad segments refused.
TEST(AreaExternal, WithSegmentsMovesTheAddressesAndKeepsTheState) {
  const AreaConfig c = cfg(256, {{0, 128, 0x100000}, {128, 128, 0x900000}}, 0);
  Storage s(c);
  Area a = make_over(c, s, true);
  auto b = a.alloc(4, 2);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->dma_addr, 0x100000u);
  Result<Area> moved = a.with_segments({{0, 128, 0x40000000}, {128, 128, 0x40080000}});
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_TRUE(moved->external());
  EXPECT_EQ(moved->dma_of_page(0), 0x40000000u);
  EXPECT_EQ(moved->dma_of_page(130), 0x40080000u + 2 * 4096);
  EXPECT_EQ(moved->lowest_dma(), 0x40000000u);
  EXPECT_EQ(moved->live_allocations(), 1u) << "the same storage: the buffer stays live";
  auto b2 = moved->alloc(4, 2);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(b2->first_page, 4u) << "the moved area allocates around it";
  EXPECT_EQ(b2->dma_addr, 0x40000000u + 4 * 4096);
  EXPECT_EQ(a.live_allocations(), 2u) << "and the old view sees it: one state";
  EXPECT_EQ(a.dma_of_page(0), 0x100000u) << "the old view's addresses are its own";
  std::string why;
  EXPECT_TRUE(moved->invariant(&why)) << why;
  // Bad segments: none, a gap, unaligned.
  EXPECT_EQ(a.with_segments({}).error().code, Errc::invalid_argument);
  EXPECT_EQ(a.with_segments({{0, 128, 0}, {130, 126, 0x100000}}).error().code, Errc::invalid_argument);
  EXPECT_EQ(a.with_segments({{0, 256, 0x1001}}).error().code, Errc::invalid_argument);
  EXPECT_TRUE(s.guards_intact());

  // An owned area: refused while anything is live; empty, it keeps the counters.
  Area own = make(cfg(256));
  auto o = own.alloc(8, 0);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(own.with_segments({{0, 256, 0x200000}}).error().code, Errc::busy);
  ASSERT_TRUE(own.release(o->first_page, 8).ok());
  Result<Area> own_moved = own.with_segments({{0, 256, 0x200000}});
  ASSERT_TRUE(own_moved.ok());
  EXPECT_FALSE(own_moved->external());
  EXPECT_EQ(own_moved->stats().alloc_pages_success, 8u);
  EXPECT_EQ(own_moved->stats().release_pages_success, 8u);
  EXPECT_EQ(own_moved->stats().used, 0u);
  EXPECT_EQ(own_moved->dma_of_page(1), 0x201000u);
}
