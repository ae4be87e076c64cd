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
