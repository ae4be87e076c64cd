// Bitmap: ranges across word and summary boundaries, the aligned first-fit
// search (bitmap_find_next_zero_area_off), runs, dump.
#include <gtest/gtest.h>

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
