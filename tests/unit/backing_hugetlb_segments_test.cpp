// segments_from_phys (src/backing/hugetlb_file.hpp): the segments of an area of
// hugepages from the physical address of each slot. Pure logic, any host.
#include <gtest/gtest.h>

#include <vector>

#include "backing/hugetlb_file.hpp"

using numacma::backing::segments_from_phys;
using numacma::core::Segment;

namespace {

constexpr std::uint64_t k2M = 2ULL << 20, k1G = 1ULL << 30, kPer2M = 512;

void expect_segments(const std::vector<Segment>& got, const std::vector<Segment>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].first_page, want[i].first_page) << "segment " << i;
    EXPECT_EQ(got[i].pages, want[i].pages) << "segment " << i;
    EXPECT_EQ(got[i].dma_base, want[i].dma_base) << "segment " << i;
  }
}

}  // namespace

TEST(SegmentsFromPhys, SortedRunIsOneSegment) {
  const std::uint64_t b = 0x40000000;
  expect_segments(segments_from_phys({b, b + k2M, b + 2 * k2M, b + 3 * k2M}, k2M, 4 * k2M),
                  {{0, 4 * kPer2M, b}});
}

TEST(SegmentsFromPhys, GapsStartNewSegments) {
  const std::uint64_t b = 0x40000000;
  // Runs {b, b+2M}, {b+8M}, {b+12M, b+14M, b+16M}.
  expect_segments(
      segments_from_phys({b, b + k2M, b + 4 * k2M, b + 6 * k2M, b + 7 * k2M, b + 8 * k2M}, k2M, 6 * k2M),
      {{0, 2 * kPer2M, b}, {2 * kPer2M, kPer2M, b + 4 * k2M}, {3 * kPer2M, 3 * kPer2M, b + 6 * k2M}});
}

TEST(SegmentsFromPhys, DescendingNeighboursAreNotAdjacent) {
  // Adjacency is in mapping order: the next slot must be the next page up.
  const std::uint64_t b = 0x40000000;
  expect_segments(segments_from_phys({b + k2M, b}, k2M, 2 * k2M), {{0, kPer2M, b + k2M}, {kPer2M, kPer2M, b}});
}

TEST(SegmentsFromPhys, CutAtBytes) {
  const std::uint64_t b = 0x40000000;
  // 5 MiB over three adjacent hugepages: the last slot counts only 1 MiB.
  expect_segments(segments_from_phys({b, b + k2M, b + 2 * k2M}, k2M, 5 * (1ULL << 20)),
                  {{0, 5 * 256, b}});
  // The cut falls after a gap: the last segment is the partial one.
  expect_segments(segments_from_phys({b, b + 4 * k2M}, k2M, 3 * (1ULL << 20)),
                  {{0, kPer2M, b}, {kPer2M, 256, b + 4 * k2M}});
  // Slots past bytes are ignored (a mapping rounded up further than needed).
  expect_segments(segments_from_phys({b, b + 10 * k2M}, k2M, k2M), {{0, kPer2M, b}});
}

TEST(SegmentsFromPhys, SinglePage) {
  expect_segments(segments_from_phys({0x7e00000}, k2M, 4096), {{0, 1, 0x7e00000}});
  expect_segments(segments_from_phys({0x7e00000}, k2M, k2M), {{0, kPer2M, 0x7e00000}});
}

TEST(SegmentsFromPhys, GigantPages) {
  const std::uint64_t b = 0x100000000;
  expect_segments(segments_from_phys({b, b + k1G, b + 3 * k1G}, k1G, 3 * k1G),
                  {{0, 2 * 262144, b}, {2 * 262144, 262144, b + 3 * k1G}});
}

TEST(SegmentsFromPhys, UnreadableGivesNothing) {
  EXPECT_TRUE(segments_from_phys({}, k2M, 4 * k2M).empty());
}

TEST(SegmentsFromPhys, SegmentsPartitionTheArea) {
  // Any input: the segments are in order, contiguous in page index, and cover [0, bytes).
  const std::vector<std::uint64_t> phys = {0x200000, 0x400000, 0xa00000, 0xc00000, 0xe00000,
                                           0x1000000, 0x2000000, 0x2200000};
  for (std::uint64_t bytes = 4096; bytes <= phys.size() * k2M; bytes += 4096 * 97) {
    const auto segs = segments_from_phys(phys, k2M, bytes);
    std::uint64_t next = 0;
    for (const Segment& s : segs) {
      EXPECT_EQ(s.first_page, next);
      EXPECT_GT(s.pages, 0u);
      next += s.pages;
    }
    EXPECT_EQ(next, bytes / 4096) << bytes;
  }
}
