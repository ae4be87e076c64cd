// Bitmap: ranges across word and summary boundaries, the aligned first-fit
// search (bitmap_find_next_zero_area_off), runs, dump; owned and external
// (view) storage answer alike, views stay within their storage.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core/bitmap.hpp"

using numacma::core::Bitmap;

TEST(Bitmap, SetClearAcrossWordBoundaries) {
  Bitmap b(200);
  b.set_range(60, 10);
  for (std::size_t i = 0; i < 200; ++i) EXPECT_EQ(b.test(i), i >= 60 && i < 70) << i;
  EXPECT_EQ(b.count_set(), 10u);
  EXPECT_TRUE(b.range_is_set(60, 10));
  EXPECT_FALSE(b.range_is_set(59, 2));
  EXPECT_TRUE(b.range_is_clear(0, 60));
  EXPECT_FALSE(b.range_is_clear(0, 61));
  b.clear_range(62, 3);
  EXPECT_EQ(b.count_set(), 7u);
  EXPECT_FALSE(b.test(63));
  EXPECT_FALSE(b.test(500));  // out of range reads as clear, never crashes
}

TEST(Bitmap, FirstFitIsTheFirstIndex) {
  Bitmap b(256);
  b.set_range(0, 3);
  b.set_range(5, 2);
  EXPECT_EQ(b.find_clear_run(2, 0, 0, 0, 256), 3u);
  EXPECT_EQ(b.find_clear_run(3, 0, 0, 0, 256), 7u);
  EXPECT_EQ(b.find_clear_run(1, 0, 0, 4, 256), 4u);
  EXPECT_EQ(b.find_clear_run(0, 0, 0, 0, 256), std::nullopt);
  EXPECT_EQ(b.find_clear_run(300, 0, 0, 0, 256), std::nullopt);
}

TEST(Bitmap, AlignmentMaskAndOffset) {
  Bitmap b(256);
  b.set_range(0, 1);
  EXPECT_EQ(b.find_clear_run(4, 3, 0, 0, 256), 4u);   // multiple of 4
  EXPECT_EQ(b.find_clear_run(4, 3, 1, 0, 256), 3u);   // (i + 1) % 4 == 0
  EXPECT_EQ(b.find_clear_run(4, 7, 6, 0, 256), 2u);   // (i + 6) % 8 == 0
  b.set_range(2, 1);
  EXPECT_EQ(b.find_clear_run(4, 7, 6, 0, 256), 10u);
}

TEST(Bitmap, RespectsTheSearchWindow) {
  Bitmap b(1000);
  EXPECT_EQ(b.find_clear_run(10, 0, 0, 995, 1000), std::nullopt);
  EXPECT_EQ(b.find_clear_run(5, 0, 0, 995, 1000), 995u);
  EXPECT_EQ(b.find_clear_run(5, 0, 0, 990, 994), std::nullopt);
  EXPECT_EQ(b.find_clear_run(4, 0, 0, 990, 994), 990u);
}

TEST(Bitmap, SkipsManyFullWordsThroughTheSummary) {
  const std::size_t n = 64 * 64 * 10 + 37;  // several summary words and a ragged tail
  Bitmap b(n);
  b.set_range(0, n);
  EXPECT_EQ(b.find_clear_run(1, 0, 0, 0, n), std::nullopt);
  b.clear_range(n - 5, 3);
  EXPECT_EQ(b.find_clear_run(3, 0, 0, 0, n), n - 5);
  EXPECT_EQ(b.find_clear_run(4, 0, 0, 0, n), std::nullopt);
  b.clear_range(64 * 64 * 3 + 1, 1);
  EXPECT_EQ(b.find_clear_run(1, 0, 0, 0, n), 64u * 64 * 3 + 1);
  EXPECT_EQ(b.largest_clear_run(), 3u);
  EXPECT_EQ(b.count_set(), n - 4);
}

TEST(Bitmap, LargestClearRunAndDump) {
  Bitmap b(130);
  EXPECT_EQ(b.largest_clear_run(), 130u);
  b.set_range(10, 1);
  b.set_range(100, 1);
  EXPECT_EQ(b.largest_clear_run(), 89u);
  EXPECT_EQ(b.largest_clear_run(0, 10), 10u);
  const std::string d = b.dump();
  EXPECT_NE(d.find("0: 0000000000000400"), std::string::npos) << d;
  EXPECT_NE(d.find("64: 0000001000000000"), std::string::npos) << d;
  EXPECT_NE(d.find("128: 0000000000000000"), std::string::npos) << d;
}

// Allocation marks live on a grid of 2^mark_shift bits that set_run refines,
// keeping every mark, the first time a run starts off it.
TEST(Bitmap, MarkGridIsRefinedWhenARunStartsOffIt) {
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  Bitmap b(1024, 4);
  const std::size_t coarse = b.footprint_bytes();
  b.set_run(0, 16);
  b.set_run(16, 16);
  EXPECT_EQ(b.mark_shift(), 4u);
  EXPECT_TRUE(b.test_mark(0));
  EXPECT_TRUE(b.test_mark(16));
  EXPECT_FALSE(b.test_mark(8));
  EXPECT_TRUE(b.is_marked_run(0, 16));
  EXPECT_TRUE(b.is_marked_run(16, 16));
  EXPECT_FALSE(b.is_marked_run(0, 32));  // a mark inside
  EXPECT_FALSE(b.is_marked_run(0, 8));   // the run goes on, unmarked
  EXPECT_FALSE(b.is_marked_run(8, 8));   // no mark at 8

  b.set_run(40, 2);  // 40 = 8 * 5: the grid becomes 8
  EXPECT_EQ(b.mark_shift(), 3u);
  EXPECT_GT(b.footprint_bytes(), coarse);
  for (std::size_t i : {0u, 16u, 40u}) EXPECT_TRUE(b.test_mark(i)) << i;
  EXPECT_TRUE(b.is_marked_run(0, 16));
  EXPECT_TRUE(b.is_marked_run(16, 16));
  EXPECT_TRUE(b.is_marked_run(40, 2));
  EXPECT_EQ(b.next_mark(1, 1024), 16u);
  EXPECT_EQ(b.next_mark(17, 40), kNone);
  EXPECT_EQ(b.next_mark(17, 41), 40u);

  b.set_run(42, 1);  // odd start next to the previous run: grid of 1
  EXPECT_EQ(b.mark_shift(), 1u);
  b.set_run(43, 1);
  EXPECT_EQ(b.mark_shift(), 0u);
  for (std::size_t i : {0u, 16u, 40u, 42u, 43u}) EXPECT_TRUE(b.test_mark(i)) << i;
  EXPECT_TRUE(b.is_marked_run(40, 2));   // ends where the next run is marked
  EXPECT_TRUE(b.is_marked_run(42, 1));
  EXPECT_TRUE(b.is_marked_run(43, 1));   // followed by a clear bit
  EXPECT_FALSE(b.is_marked_run(40, 3));

  b.clear_run(16, 16);
  EXPECT_FALSE(b.test_mark(16));
  EXPECT_FALSE(b.is_marked_run(16, 16));
  EXPECT_TRUE(b.is_marked_run(0, 16));   // now followed by a clear bit
  EXPECT_EQ(b.next_mark(1, 1024), 40u);
  EXPECT_EQ(b.count_set(), 16u + 2 + 1 + 1);
}

TEST(Bitmap, MarksAtTheEndOfAnOddSizedBitmap) {
  Bitmap b(70, 3);  // grid points 0, 8, ..., 64
  b.set_run(64, 6);
  EXPECT_TRUE(b.is_marked_run(64, 6));  // runs to the end
  EXPECT_FALSE(b.is_marked_run(64, 7));
  b.set_run(61, 3);  // off the grid: refined to 1
  EXPECT_EQ(b.mark_shift(), 0u);
  EXPECT_TRUE(b.is_marked_run(61, 3));
  EXPECT_TRUE(b.is_marked_run(64, 6));
  EXPECT_EQ(b.next_mark(62, 70), 64u);
  EXPECT_EQ(b.next_mark(65, 70), static_cast<std::size_t>(-1));
}

// ---- the two storage modes ---------------------------------------------------

namespace {

constexpr std::size_t kNoBit = static_cast<std::size_t>(-1);
constexpr std::size_t kGuard = 8;
constexpr std::uint64_t kGuardWord = 0x6a09e667f3bcc908ULL;

/** External storage for a view, with guard words on both sides. */
struct Guarded {
  std::vector<std::uint64_t> buf;
  std::size_t words;
  Guarded(std::size_t nbits, std::uint64_t fill)
      : buf(Bitmap::storage_words(nbits) + 2 * kGuard, fill), words(Bitmap::storage_words(nbits)) {
    std::fill(buf.begin(), buf.begin() + kGuard, kGuardWord);
    std::fill(buf.end() - kGuard, buf.end(), kGuardWord);
  }
  std::uint64_t* storage() { return buf.data() + kGuard; }
  bool guards_intact() const {
    for (std::size_t i = 0; i < kGuard; ++i)
      if (buf[i] != kGuardWord || buf[buf.size() - 1 - i] != kGuardWord) return false;
    return true;
  }
};

/** Every query of a and b agrees (a full comparison, or sampled for size). */
void expect_same(const Bitmap& a, const Bitmap& b, std::mt19937_64& rng) {
  ASSERT_EQ(a.size(), b.size());
  const std::size_t n = a.size();
  ASSERT_EQ(a.word_count(), b.word_count());
  for (std::size_t w = 0; w < a.word_count(); ++w) ASSERT_EQ(a.word(w), b.word(w)) << w;
  for (std::size_t i = 0; i <= n; ++i) {
    ASSERT_EQ(a.test(i), b.test(i)) << i;
    ASSERT_EQ(a.test_mark(i), b.test_mark(i)) << i;
  }
  ASSERT_EQ(a.count_set(), b.count_set());
  ASSERT_EQ(a.largest_clear_run(), b.largest_clear_run());
  ASSERT_EQ(a.dump(), b.dump());
  for (int k = 0; k < 64; ++k) {
    const std::size_t from = rng() % (n + 1), to = from + rng() % (n + 1 - from);
    ASSERT_EQ(a.next_clear(from, to), b.next_clear(from, to));
    ASSERT_EQ(a.next_mark(from, to), b.next_mark(from, to));
    ASSERT_EQ(a.largest_clear_run(from, to), b.largest_clear_run(from, to));
    const std::size_t len = 1 + rng() % 70, mask = (std::size_t{1} << (rng() % 7)) - 1, off = rng() & mask;
    ASSERT_EQ(a.find_clear_run(len, mask, off, from, to), b.find_clear_run(len, mask, off, from, to));
    if (from < n) {
      const std::size_t run = 1 + rng() % (n - from);
      ASSERT_EQ(a.is_marked_run(from, run), b.is_marked_run(from, run));
      ASSERT_EQ(a.range_is_clear(from, run), b.range_is_clear(from, run));
      ASSERT_EQ(a.range_is_set(from, run), b.range_is_set(from, run));
    }
  }
  std::string why;
  ASSERT_TRUE(a.consistent(&why)) << why;
  ASSERT_TRUE(b.consistent(&why)) << why;
}

/** One random mutation, the same on both. Runs are set over clear bits and
 *  cleared where they are marked runs, as Area does; plain ranges anywhere. */
void mutate(Bitmap& a, Bitmap& b, std::mt19937_64& rng) {
  const std::size_t n = a.size();
  const std::size_t start = rng() % n;
  const std::size_t len = 1 + rng() % std::min<std::size_t>(n - start, rng() % 4 == 0 ? 300 : 40);
  switch (rng() % 6) {
    case 0: a.set_range(start, len); b.set_range(start, len); break;
    case 1: a.clear_range(start, len); b.clear_range(start, len); break;
    case 2: case 3:
      if (a.range_is_clear(start, len)) {
        a.set_run(start, len);
        b.set_run(start, len);
      }
      break;
    default: {
      const std::size_t m = a.next_mark(start, n);
      if (m == kNoBit) break;
      std::size_t e = m + 1;
      while (e < n && a.test(e) && !a.test_mark(e)) ++e;
      a.clear_run(m, e - m);
      b.clear_run(m, e - m);
    }
  }
}

}  // namespace

TEST(BitmapStorage, StorageWordsCountsHintWordsMarksAndSummary) {
  EXPECT_EQ(Bitmap::storage_words(0), 1u + 0 + 1 + 1);
  EXPECT_EQ(Bitmap::storage_words(1), 1u + 1 + 1 + 1);
  EXPECT_EQ(Bitmap::storage_words(64 * 64), 1u + 64 + 64 + 1);
  EXPECT_EQ(Bitmap::storage_words(64 * 64 + 1), 1u + 65 + 65 + 2 + 1);
  // 64 GiB of 4 KiB pages: 2^24 bits, 2^18 words, levels of 2^12, 2^6, 1.
  EXPECT_EQ(Bitmap::storage_words(std::size_t{1} << 24), 1u + (2u << 18) + 4096 + 64 + 1);
  EXPECT_EQ(Bitmap::storage_words(std::size_t{1} << 24) * 8 - 8,
            Bitmap(std::size_t{1} << 24).footprint_bytes());  // grid 1: the same words, less the hint
}

// A view over caller memory answers every query as an owned bitmap of the
// same size at mark grid 1, under random set/clear/run operations, and
// writes nothing outside storage_words(nbits) words.
TEST(BitmapStorage, ViewBehavesExactlyLikeAnOwnedBitmap) {
  std::mt19937_64 rng(7);
  for (std::size_t n : {1u, 63u, 64u, 65u, 200u, 4096u + 37, 64u * 64 * 3 + 5, 64u * 64 * 64 + 130}) {
    Guarded g(n, 0x5555555555555555ULL);  // garbage first: clear_all must clear it all
    Bitmap v = Bitmap::view(g.storage(), n);
    EXPECT_TRUE(v.external());
    v.clear_all();
    Bitmap o(n);
    EXPECT_FALSE(o.external());
    EXPECT_EQ(v.footprint_bytes(), o.footprint_bytes());
    const int steps = n > 100000 ? 60 : 300;
    for (int s = 0; s < steps; ++s) {
      mutate(o, v, rng);
      if (s % (n > 100000 ? 20 : 10) == 0) {
        expect_same(o, v, rng);
        if (::testing::Test::HasFatalFailure()) return;
      }
      ASSERT_TRUE(g.guards_intact()) << n;
    }
    // Fill it up and empty it again: the hint and the summary at the edges.
    o.set_range(0, n);
    v.set_range(0, n);
    expect_same(o, v, rng);
    EXPECT_EQ(v.next_clear(0, n), kNoBit);
    o.clear_range(n - 1, 1);
    v.clear_range(n - 1, 1);
    EXPECT_EQ(v.next_clear(0, n), n - 1);
    expect_same(o, v, rng);
    ASSERT_TRUE(g.guards_intact()) << n;
    // Another view over the same storage sees the same bitmap (a second process).
    Bitmap v2 = Bitmap::view(g.storage(), n);
    expect_same(v, v2, rng);
  }
}

TEST(BitmapStorage, ClearAllEmptiesBothModesInPlace) {
  std::mt19937_64 rng(11);
  const std::size_t n = 64 * 64 * 2 + 17;
  Guarded g(n, 0);
  Bitmap v = Bitmap::view(g.storage(), n);
  Bitmap o(n, 3);
  Bitmap fresh(n);
  for (int s = 0; s < 200; ++s) mutate(o, v, rng);
  o.set_range(0, 64 * 70);  // full words, and summary bits
  v.set_range(0, 64 * 70);
  ASSERT_GT(o.count_set(), 0u);
  const std::size_t owned_bytes = o.footprint_bytes();
  o.clear_all();
  v.clear_all();
  EXPECT_EQ(o.footprint_bytes(), owned_bytes);  // in place: the same words
  for (std::size_t i = 0; i < g.words; ++i) ASSERT_EQ(g.storage()[i], 0u) << i;
  EXPECT_TRUE(g.guards_intact());
  expect_same(fresh, v, rng);
  EXPECT_EQ(o.count_set(), 0u);
  EXPECT_EQ(o.next_mark(0, n), kNoBit);
  EXPECT_EQ(o.find_clear_run(n, 0, 0, 0, n), 0u);
  std::string why;
  EXPECT_TRUE(o.consistent(&why)) << why;
}

TEST(BitmapStorage, ConsistentSeesAViewsBrokenSummaryAndHint) {
  const std::size_t n = 64 * 10;
  Guarded g(n, 0);
  Bitmap v = Bitmap::view(g.storage(), n);
  v.clear_all();
  v.set_range(0, 128);
  std::string why;
  ASSERT_TRUE(v.consistent(&why)) << why;
  std::uint64_t* s = g.storage();
  const std::size_t summary0 = 1 + 10 + 10;  // hint, words, marks
  s[summary0] &= ~std::uint64_t{1};           // word 0 is full, the summary says not
  EXPECT_FALSE(v.consistent(&why));
  EXPECT_NE(why.find("summary"), std::string::npos) << why;
  s[summary0] |= 1;
  s[0] = 5;  // the hint claims words 0..4 full
  EXPECT_FALSE(v.consistent(&why));
  EXPECT_NE(why.find("hint"), std::string::npos) << why;
  s[0] = 11;  // past the last word
  EXPECT_FALSE(v.consistent(&why));
  EXPECT_EQ(v.next_clear(0, n), kNoBit);  // clamped to the end: wrong, but in bounds
  s[0] = 2;
  s[1 + 9] |= std::uint64_t{1} << 63;  // the last word's bit 63 is bit 639 < n: fine
  EXPECT_TRUE(v.consistent(&why)) << why;
}

// An owned bitmap's words live in its own heap buffer: copies and moves must
// point at their own (ASan sees a stale pointer; so do these checks).
TEST(BitmapStorage, CopiesAndMovesOfOwnedBitmapsKeepTheirOwnWords) {
  Bitmap a(1000, 4);
  a.set_run(16, 20);
  Bitmap b = a;  // copy
  b.set_run(101, 3);  // refines b's marks only
  EXPECT_EQ(a.mark_shift(), 4u);
  EXPECT_EQ(b.mark_shift(), 0u);
  EXPECT_FALSE(a.test(101));
  EXPECT_TRUE(b.test(101));
  EXPECT_TRUE(b.is_marked_run(16, 20));
  Bitmap c = std::move(b);
  EXPECT_EQ(b.size(), 0u);  // moved from: empty, and still usable
  EXPECT_EQ(b.find_clear_run(1, 0, 0, 0, 10), std::nullopt);
  EXPECT_EQ(b.count_set(), 0u);
  b.clear_all();
  EXPECT_TRUE(c.is_marked_run(101, 3));
  c.clear_run(101, 3);
  EXPECT_EQ(c.find_clear_run(900, 0, 0, 0, 1000), 36u);
  a = c;  // copy assignment
  c.set_range(0, 1000);
  EXPECT_EQ(a.count_set(), 20u);
  a = std::move(c);
  EXPECT_EQ(a.count_set(), 1000u);
  EXPECT_EQ(a.next_clear(0, 1000), kNoBit);
  Bitmap& self = a;
  a = self;
  a = std::move(self);
  EXPECT_EQ(a.count_set(), 1000u);
  a.expand(2);  // reallocates: the pointers follow
  EXPECT_EQ(a.size(), 4000u);
  a.clear_range(3999, 1);
  EXPECT_EQ(a.next_clear(0, 4000), 3999u);
  std::string why;
  EXPECT_TRUE(a.consistent(&why)) << why;
  // A copy of a view is another view of the same storage.
  Guarded g(300, 0);
  Bitmap v = Bitmap::view(g.storage(), 300);
  v.clear_all();
  Bitmap w = v;
  w.set_run(5, 5);
  EXPECT_TRUE(v.is_marked_run(5, 5));
  EXPECT_TRUE(w.external());
}

// A view's size and mark grid are its storage's: expand() is for owned
// bitmaps only (checked in debug builds, a no-op otherwise), and a run off
// any grid never needs refining at grid 1.
TEST(BitmapStorage, AViewIsNeverExpandedNorRefined) {
  Guarded g(100, 0);
  Bitmap v = Bitmap::view(g.storage(), 100);
  v.clear_all();
  v.set_run(37, 3);  // an odd start: grid 1 already
  EXPECT_EQ(v.mark_shift(), 0u);
  EXPECT_TRUE(v.is_marked_run(37, 3));
#if defined(NUMACMA_DEBUG_CHECKS) && NUMACMA_DEBUG_CHECKS
  EXPECT_DEATH(v.expand(1), "REQUIRES failed");
#else
  v.expand(1);
#endif
  EXPECT_EQ(v.size(), 100u);
  EXPECT_EQ(v.count_set(), 3u);
  EXPECT_TRUE(v.is_marked_run(37, 3));
  EXPECT_TRUE(g.guards_intact());
}
