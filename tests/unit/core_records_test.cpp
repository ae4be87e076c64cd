// core/records.hpp: an area whose allocations are recorded with a journal.
// An update stopped at each of its points is completed by repair() exactly;
// rebuild() derives the bitmap from the records and drops records that do
// not fit; a holder's buffers all go back; a free names its own buffer.
// (Links the core layer only.)
#include <gtest/gtest.h>

#include <csetjmp>
#include <optional>
#include <random>
#include <vector>

#include "core/area.hpp"
#include "core/records.hpp"

namespace numacma::core {
namespace {

/** An external area over buffers of this test, with its records. */
struct Recorded {
  AreaConfig cfg;
  std::vector<std::uint64_t> storage, words;
  AreaCounters ctr{};
  RecordState rs{};
  Records rec;
  std::optional<Area> area;

  explicit Recorded(unsigned opb = 0) {
    cfg.name = "r";
    cfg.pages = 1024;
    cfg.order_per_bit = opb;
    cfg.segments = {{0, 512, 0x100000}, {512, 512, 0x900000}};
    storage.assign(Area::storage_words(cfg), 0);
    words.assign(cfg.pages >> opb, 0);
    rec = Records{words.data(), words.size(), opb, 8, &rs};
    Result<Area> a = Area::create_over(cfg, AreaStorage{storage.data(), &ctr}, true);
    EXPECT_TRUE(a.ok());
    area.emplace(std::move(*a));
  }
  Block alloc(std::uint64_t pages, std::uint32_t holder) {
    Result<Block> b = area->find(pages, 0);
    EXPECT_TRUE(b.ok());
    record_alloc(rec, *area, *b, holder);
    return *b;
  }
  Status check() const {
    std::vector<bool> attached(8, true);
    return verify(rec, *area, attached);
  }
};

// The hook cannot return into the update (as a kill would stop it there):
// it jumps out, leaving the update exactly as a dead process would.
std::jmp_buf g_stop;
int g_stop_at = 0;
void stop_hook(int point) {
  if (point == g_stop_at) std::longjmp(g_stop, 1);
}

TEST(CoreRecords, AnUpdateStoppedAtEachPointIsCompletedByRepair) {
  for (int point = 1; point <= 3; ++point) {
    for (bool release : {false, true}) {
      Recorded r;
      const Block keep = r.alloc(5, 1);
      const Block victim = r.alloc(3, 2);
      Result<Block> next = r.area->find(7, 0);
      ASSERT_TRUE(next.ok());
      g_stop_at = point;
      set_update_hook_for_testing(stop_hook);
      if (setjmp(g_stop) == 0) {  // nothing with a destructor lives between here and the hook
        if (release) record_release(r.rec, *r.area, victim.first_page, 3, false);
        else record_alloc(r.rec, *r.area, *next, 2);
        set_update_hook_for_testing(nullptr);
        FAIL() << "the update was not stopped at point " << point;
      }
      set_update_hook_for_testing(nullptr);
      EXPECT_EQ(r.rs.journal.pending, 1u);
      repair(r.rec, *r.area);  // what the keeper does after the owner died
      EXPECT_EQ(r.rs.journal.pending, 0u);
      EXPECT_EQ(r.rs.recoveries, 1u);
      ASSERT_TRUE(r.check().ok()) << r.check().error().message << " point " << point << " release " << release;
      // Completed, not undone: the release happened, the allocation exists.
      EXPECT_EQ(rec_of(r.words[victim.first_page]).holder, release ? 0u : 2u);
      EXPECT_EQ(r.area->stats().used, release ? 5u : 5u + 3u + 7u);
      EXPECT_EQ(rec_of(r.words[keep.first_page]).pages, 5u);
    }
  }
}

// A first fit above the device's mask is taken and released at once (the
// kernel's allocate, check, release): two counters, journaled, so that a
// process killed between the two leaves them balanced once repaired.
TEST(CoreRecords, ATakenAndReleasedRunStoppedAtEachPointLeavesTheCountersBalanced) {
  for (int point = 0; point <= 3; ++point) {
    Recorded r;
    const Block keep = r.alloc(5, 1);
    Block above;
    Result<Block> f = r.area->find(16, 4, 0x100fff, &above);  // only the area's first page lies below
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code, Errc::unreachable);
    ASSERT_EQ(above.pages, 16u);
    g_stop_at = point;
    set_update_hook_for_testing(stop_hook);
    if (setjmp(g_stop) == 0) {
      record_taken_and_released(r.rec, *r.area, above.pages);
      set_update_hook_for_testing(nullptr);
      EXPECT_EQ(point, 0) << "the update was not stopped at point " << point;
    }
    set_update_hook_for_testing(nullptr);
    if (point != 0) {
      EXPECT_EQ(r.rs.journal.pending, 1u);
      repair(r.rec, *r.area);
      EXPECT_EQ(r.rs.recoveries, 1u);
    }
    EXPECT_EQ(r.rs.journal.pending, 0u);
    ASSERT_TRUE(r.check().ok()) << r.check().error().message << " point " << point;
    EXPECT_EQ(r.area->stats().alloc_pages_success, 5u + 16u);
    EXPECT_EQ(r.area->stats().release_pages_success, 16u);
    EXPECT_EQ(r.area->stats().used, 5u);
    EXPECT_EQ(rec_of(r.words[keep.first_page]).pages, 5u);
  }
}

TEST(CoreRecords, RebuildDropsRecordsThatDoNotFit) {
  Recorded r;
  const Block a = r.alloc(4, 1);
  r.words[100] = rec_word({0xffffffffu, 1});  // far past the area
  r.words[1020] = rec_word({16, 1});          // past its end
  r.words[508] = rec_word({8, 1});            // across the segment boundary at 512
  r.words[200] = rec_word({4, 9});            // no such holder (8 slots)
  r.words[300] = rec_word({0, 1});            // no pages
  r.words[a.first_page + 1] = rec_word({2, 1});  // over another
  rebuild(r.rec, *r.area);
  EXPECT_EQ(r.rs.dropped_records, 6u);
  for (std::uint64_t b : {100, 1020, 508, 200, 300}) EXPECT_EQ(r.words[b], 0u) << b;
  EXPECT_EQ(r.area->stats().used, 4u);
  EXPECT_TRUE(r.check().ok()) << r.check().error().message;
}

TEST(CoreRecords, AHoldersBuffersAllGoBackAndForgedOnesAreDropped) {
  Recorded r(1);  // two pages a bit: odd counts too
  std::vector<Block> mine, theirs;
  for (int i = 0; i < 20; ++i) {
    mine.push_back(r.alloc(1 + i % 5, 3));
    theirs.push_back(r.alloc(2 + i % 3, 4));
  }
  r.words[511] = rec_word({0xffffffffu, 3});  // a forged record of holder 3
  const Released out = release_holder(r.rec, *r.area, 3);
  EXPECT_EQ(out.buffers, 20u);
  std::uint64_t want = 0;
  for (const Block& b : mine) want += b.pages;
  EXPECT_EQ(out.pages, want);
  EXPECT_EQ(r.rs.reaped_pages, want);
  EXPECT_EQ(r.rs.dropped_records, 1u);
  for (const Block& b : theirs) EXPECT_EQ(rec_of(r.words[b.first_page >> 1]).holder, 4u);
  EXPECT_TRUE(r.check().ok()) << r.check().error().message;
  EXPECT_EQ(release_holder(r.rec, *r.area, 3).buffers, 0u);
}

TEST(CoreRecords, RecordsOfCountsOneHoldersBuffersOnly) {
  Recorded r;
  for (int i = 0; i < 5; ++i) r.alloc(2, 3);
  for (int i = 0; i < 2; ++i) r.alloc(1, 4);
  EXPECT_EQ(records_of(r.rec, 3), 5u);
  EXPECT_EQ(records_of(r.rec, 4), 2u);
  EXPECT_EQ(records_of(r.rec, 5), 0u);
  EXPECT_EQ(records_of(r.rec, 0), 0u) << "0 marks no buffer: never counted";
}

TEST(CoreRecords, AFreeMustNameItsOwnBufferExactly) {
  Recorded r;
  const Block b = r.alloc(6, 1);
  std::uint32_t owner = 0;
  EXPECT_TRUE(check_release(r.rec, b.first_page, 6, 1, &owner).ok());
  Status s = check_release(r.rec, b.first_page, 6, 2, &owner);
  EXPECT_EQ(s.error().code, Errc::bad_free);
  EXPECT_EQ(owner, 1u);
  EXPECT_NE(check_release(r.rec, b.first_page, 5, 1, nullptr).error().message.find("size mismatch"), std::string::npos);
  EXPECT_EQ(check_release(r.rec, b.first_page + 1, 5, 1, nullptr).error().code, Errc::bad_free);
  EXPECT_EQ(check_release(r.rec, 1ULL << 40, 1, 1, nullptr).error().code, Errc::bad_free);
  record_release(r.rec, *r.area, b.first_page, 6, false);
  EXPECT_EQ(check_release(r.rec, b.first_page, 6, 1, nullptr).error().code, Errc::bad_free);  // double free
  EXPECT_TRUE(r.check().ok());
  EXPECT_EQ(r.area->stats().used, 0u);
}

TEST(CoreRecords, RandomUpdatesKeepTheRecordsAndTheBitmapInStep) {
  std::mt19937 rng(3);
  for (unsigned opb : {0u, 1u, 2u}) {
    Recorded r(opb);
    std::vector<std::pair<Block, std::uint32_t>> live;
    for (int i = 0; i < 2000; ++i) {
      if (!live.empty() && rng() % 2 == 0) {
        const std::size_t k = rng() % live.size();
        ASSERT_TRUE(check_release(r.rec, live[k].first.first_page, live[k].first.pages, live[k].second, nullptr).ok());
        record_release(r.rec, *r.area, live[k].first.first_page, live[k].first.pages, false);
        live.erase(live.begin() + static_cast<long>(k));
      } else if (Result<Block> b = r.area->find(1 + rng() % 30, rng() % 6)) {
        const std::uint32_t h = 1 + rng() % 8;
        record_alloc(r.rec, *r.area, *b, h);
        live.emplace_back(*b, h);
      }
      if (i % 97 == 0) ASSERT_TRUE(r.check().ok()) << r.check().error().message;
    }
    ASSERT_TRUE(r.check().ok()) << r.check().error().message;
  }
}

}  // namespace
}  // namespace numacma::core
