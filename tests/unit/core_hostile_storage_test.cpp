// Hostile external storage: a shared area's bitmap and counters live in a
// mapping that other processes, possibly hostile ones, can write. Whatever it
// holds, every Bitmap and Area method must stay inside the storage, return,
// and hit no UB (this test under ASan+UBSan catches the rest); answers may be
// wrong. Garbage of many kinds and seeds, guard words on both sides of every
// span, and scribbles between operations (a writer that ignores the lock).
// clear_allocations() (with the kernel's counters reset by their owner) must
// bring any such area back to one that decides as the model does.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/area.hpp"
#include "core/bitmap.hpp"
#include "core_model.hpp"

using numacma::core::Area;
using numacma::core::AreaConfig;
using numacma::core::AreaCounters;
using numacma::core::AreaStorage;
using numacma::core::Bitmap;
using numacma::core::Segment;

namespace {

constexpr std::size_t kGuard = 8;
constexpr std::uint64_t kGuardWord = 0xa54ff53a5f1d36f1ULL;
constexpr std::size_t kNone = static_cast<std::size_t>(-1);

/** words of storage, then 5 words of counters, guards before, between, after. */
struct Hostile {
  std::vector<std::uint64_t> buf;
  std::size_t words;
  Hostile(std::size_t words_, std::mt19937_64& rng, unsigned kind, std::size_t nwords)
      : buf(words_ + 5 + 3 * kGuard), words(words_) {
    for (std::size_t i = 0; i < words + 5; ++i) slot(i) = garbage(rng, kind);
    // The hint word (storage[0]) gets the values that hurt most.
    const std::uint64_t hints[] = {0, nwords - 1, nwords, nwords + 1, UINT64_MAX, std::uint64_t{1} << 58,
                                   std::uint64_t{1} << 63, (std::uint64_t{1} << 58) + 1, rng()};
    slot(0) = hints[rng() % std::size(hints)];
    std::fill(buf.begin(), buf.begin() + kGuard, kGuardWord);
    std::fill(buf.begin() + kGuard + words, buf.begin() + 2 * kGuard + words, kGuardWord);
    std::fill(buf.end() - kGuard, buf.end(), kGuardWord);
  }
  static std::uint64_t garbage(std::mt19937_64& rng, unsigned kind) {
    switch (kind % 8) {
      case 0: return rng();
      case 1: return ~std::uint64_t{0};
      case 2: return rng() % 16 == 0 ? rng() : 0;
      case 3: return rng() & rng() & rng();  // sparse
      case 4: return rng() | rng() | rng();  // dense
      case 5: return rng() % 2 ? ~std::uint64_t{0} : 0;
      case 6: return 0x5555555555555555ULL << (rng() % 2);
      default: return rng() % 3 == 0 ? ~std::uint64_t{0} - (std::uint64_t{1} << (rng() % 64)) : rng();
    }
  }
  /** Word i of storage + counters (skipping the middle guard). */
  std::uint64_t& slot(std::size_t i) { return buf[kGuard + i + (i >= words ? kGuard : 0)]; }
  std::uint64_t* storage() { return buf.data() + kGuard; }
  AreaCounters* counters() { return reinterpret_cast<AreaCounters*>(buf.data() + 2 * kGuard + words); }
  bool intact() const {
    for (std::size_t i = 0; i < kGuard; ++i)
      if (buf[i] != kGuardWord || buf[kGuard + words + i] != kGuardWord || buf[buf.size() - 1 - i] != kGuardWord)
        return false;
    return true;
  }
  /** A writer that does not take the lock: a few words changed. */
  void scribble(std::mt19937_64& rng, unsigned kind) {
    for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k)
      slot(rng() % (words + 5)) = garbage(rng, kind + static_cast<unsigned>(rng() % 3));
  }
};

std::uint64_t sink = 0;  // results go here, so that no call is optimised away

void every_bitmap_method(Bitmap& b, std::mt19937_64& rng) {
  const std::size_t n = b.size();
  const auto any = [&] { return static_cast<std::size_t>(rng() % (n + 2)); };
  for (int k = 0; k < 40; ++k) {
    const std::size_t i = rng() % n, len = 1 + rng() % std::min<std::size_t>(n - i, 200);
    const std::size_t from = any(), to = std::min(any(), n);
    sink += b.test(any()) + b.test_mark(any());
    sink += b.next_clear(std::min(from, n), to) + b.next_mark(from, any());
    sink += b.range_is_clear(i, len) + b.range_is_set(i, len);
    sink += b.is_marked_run(any(), rng() % 3 == 0 ? rng() : 1 + rng() % 200);
    const std::size_t mask = (std::size_t{1} << (rng() % 12)) - 1;
    const auto f = b.find_clear_run(1 + rng() % 300, mask, rng() & mask, from, any());
    sink += f.value_or(kNone);
    sink += b.largest_clear_run(from, any());
    switch (rng() % 4) {
      case 0: b.set_range(i, len); break;
      case 1: b.clear_range(i, len); break;
      case 2: b.set_run(i, len); break;
      default: b.clear_run(i, len); break;
    }
  }
  sink += b.count_set() + b.largest_clear_run() + b.footprint_bytes() + b.word(rng() % b.word_count());
  sink += b.dump().size() + b.consistent() + b.mark_shift() + b.external();
  Bitmap copy = b;  // a copy of a view is a view of the same storage
  sink += copy.count_set();
}

AreaConfig random_config(std::mt19937_64& rng, bool large) {
  AreaConfig c;
  c.name = "hostile";
  c.order_per_bit = static_cast<unsigned>(rng() % 3);
  c.cpu_base = 0x7f0000000000ULL;
  const unsigned nseg = 1 + static_cast<unsigned>(rng() % 3);
  // DMA bases on whole bits (P << order_per_bit): Area's alignment in DMA
  // space assumes them (see the recovery check below), create() does not
  // insist.
  std::uint64_t page = 0, dma = (rng() % 64) * (std::uint64_t{4096} << c.order_per_bit);
  for (unsigned s = 0; s < nseg; ++s) {
    const std::uint64_t bits = large ? 60000 + rng() % 100000 : 1 + rng() % (rng() % 4 == 0 ? 5000 : 150);
    const std::uint64_t pages = bits << c.order_per_bit;
    c.segments.push_back({page, pages, dma});
    page += pages;
    dma += pages * 4096 + (rng() % 3) * (std::uint64_t{4096} << c.order_per_bit);
  }
  c.pages = page;
  return c;
}

std::uint64_t hostile_count(std::mt19937_64& rng, const AreaConfig& c) {
  const std::uint64_t counts[] = {0, 1, 2, 3, c.pages, c.pages + 1, UINT64_MAX, UINT64_MAX - 1,
                                  (std::uint64_t{1} << 32) - 1, std::uint64_t{1} << 63, 1 + rng() % 64};
  return counts[rng() % std::size(counts)];
}

void every_area_method(Area& a, const AreaConfig& c, std::mt19937_64& rng) {
  std::string why;
  sink += a.invariant(&why) + why.size();
  const auto st = a.stats();
  sink += st.used + st.maxchunk + st.alloc_pages_success + st.release_pages_success;
  sink += a.dump_bitmap().size() + a.metadata_bytes() + a.live_allocations() + a.alloc_pages_fail();
  sink += a.pages_per_bit_order() + a.external();
  const std::uint64_t limits[] = {UINT64_MAX, 0, c.segments.front().dma_base + rng() % (c.pages * 4096)};
  const std::uint64_t count = rng() % 2 ? 1 + rng() % 70 : hostile_count(rng, c);
  const unsigned align = static_cast<unsigned>(rng() % 12);
  if (auto f = a.find(count, align, limits[rng() % 3])) {
    sink += f->dma_addr;
    if (rng() % 2) a.commit(*f);
  }
  if (auto b = a.alloc(count, align, limits[rng() % 3])) {
    sink += b->first_page;
    if (rng() % 2) sink += a.release(b->first_page, b->pages).ok();
  }
  const std::uint64_t page = rng() % 4 == 0 ? hostile_count(rng, c) : rng() % (c.pages + 2);
  sink += a.release(page, hostile_count(rng, c)).ok();
  sink += a.restore(page & ~((std::uint64_t{1} << c.order_per_bit) - 1), hostile_count(rng, c)).ok();
  sink += a.restore(rng() % c.pages, rng() % 9).ok();
}

}  // namespace

TEST(HostileStorage, BitmapViewsOfGarbageStayInBounds) {
  for (std::uint64_t seed = 0; seed < 600; ++seed) {
    std::mt19937_64 rng(seed);
    const std::size_t n = seed % 50 == 0 ? 64 * 64 * 64 + 1 + rng() % 5000   // three summary levels
                          : seed % 3 == 0 ? 1 + rng() % 70
                                          : 1 + rng() % 9000;
    const std::size_t nwords = (n + 63) / 64;
    Hostile h(Bitmap::storage_words(n), rng, static_cast<unsigned>(seed), nwords);
    Bitmap v = Bitmap::view(h.storage(), n);
    for (int round = 0; round < 4; ++round) {
      every_bitmap_method(v, rng);
      ASSERT_TRUE(h.intact()) << "seed " << seed;
      h.scribble(rng, static_cast<unsigned>(seed + round));
    }
    v.clear_all();
    std::string why;
    EXPECT_TRUE(v.consistent(&why)) << "seed " << seed << ": " << why;
    EXPECT_EQ(v.count_set(), 0u);
    EXPECT_EQ(v.next_clear(0, n), 0u);
    EXPECT_EQ(v.find_clear_run(n, 0, 0, 0, n), 0u);
    ASSERT_TRUE(h.intact()) << "seed " << seed;
  }
}

TEST(HostileStorage, AreasOverGarbageStayInBoundsAndRecover) {
  for (std::uint64_t seed = 0; seed < 500; ++seed) {
    std::mt19937_64 rng(seed);
    const AreaConfig c = random_config(rng, seed % 60 == 0);
    const std::size_t nwords = ((c.pages >> c.order_per_bit) + 63) / 64;
    Hostile h(Area::storage_words(c), rng, static_cast<unsigned>(seed), nwords);
    auto created = Area::create_over(c, {h.storage(), h.counters()}, false);
    ASSERT_TRUE(created.ok()) << created.error().message;
    Area a = std::move(created).value();
    for (int round = 0; round < 12; ++round) {
      every_area_method(a, c, rng);
      ASSERT_TRUE(h.intact()) << "seed " << seed << " round " << round;
      if (round % 3 == 2) h.scribble(rng, static_cast<unsigned>(seed + round));
      if (round == 6) {  // another process attaches to whatever is there
        auto again = Area::create_over(c, {h.storage(), h.counters()}, false);
        ASSERT_TRUE(again.ok());
        a = std::move(again).value();
      }
    }
    // Recovery: cleared in place, and the kernel's counters reset by their
    // owner, the area is consistent and decides as the model does.
    a.clear_allocations();
    AreaCounters* ctr = h.counters();
    ctr->alloc_pages_success = ctr->alloc_pages_fail = ctr->release_pages_success = 0;
    std::string why;
    ASSERT_TRUE(a.invariant(&why)) << "seed " << seed << ": " << why;
    numacma::testing::NaiveArea model(c);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
    for (int s = 0; s < 60; ++s) {
      if (live.empty() || rng() % 3 != 0) {
        const std::uint64_t count = 1 + rng() % 40;
        const unsigned align = static_cast<unsigned>(rng() % 10);
        auto got = a.alloc(count, align);
        auto want = model.alloc(count, align, UINT64_MAX);
        ASSERT_EQ(got.ok(), want.has_value()) << "seed " << seed;
        if (want) {
          ASSERT_EQ(got->first_page, *want) << "seed " << seed;
          live.emplace_back(*want, count);
        }
      } else {
        const std::size_t k = rng() % live.size();
        ASSERT_TRUE(a.release(live[k].first, live[k].second).ok());
        model.release(live[k].first, live[k].second);
        live.erase(live.begin() + static_cast<long>(k));
      }
    }
    EXPECT_EQ(a.stats().alloc_pages_fail, model.alloc_pages_fail);
    ASSERT_TRUE(a.invariant(&why)) << "seed " << seed << ": " << why;
    ASSERT_TRUE(h.intact()) << "seed " << seed;
  }
  EXPECT_NE(sink, 0u);
}

// The hint word alone, at every value that once hurt: the search stays in
// bounds and, once the hint is below the first free word again, is right.
TEST(HostileStorage, FirstOpenHintIsClampedOnEveryRead) {
  const std::size_t n = 64 * 5 + 3;
  for (std::uint64_t hint : {std::uint64_t{5}, std::uint64_t{6}, std::uint64_t{7}, UINT64_MAX,
                             std::uint64_t{1} << 58, (std::uint64_t{1} << 58) + 1, std::uint64_t{1} << 63}) {
    std::mt19937_64 rng(hint);
    Hostile h(Bitmap::storage_words(n), rng, 2, 6);
    Bitmap v = Bitmap::view(h.storage(), n);
    v.clear_all();
    h.storage()[0] = hint;
    EXPECT_FALSE(v.consistent()) << hint;
    const std::size_t first = v.next_clear(0, n);
    EXPECT_TRUE(first == kNone || first < n) << hint;  // wrong (the hint says full), but in bounds
    sink += v.find_clear_run(1, 0, 0, 0, n).value_or(0) + v.largest_clear_run();
    v.set_range(0, 64);  // fills word 0: the hint is read, clamped, written
    v.clear_range(0, 1);  // word 0 below the hint: the hint comes down
    EXPECT_EQ(v.find_clear_run(1, 0, 0, 0, n), 0u) << hint;
    EXPECT_TRUE(v.consistent()) << hint;
    EXPECT_TRUE(h.intact()) << hint;
  }
}
