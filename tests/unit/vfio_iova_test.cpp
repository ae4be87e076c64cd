// The IOVA allocator and the parsing of reserved regions (src/vfio/iova.hpp):
// pure logic, no VFIO needed. The property test runs random alloc/free
// sequences against a page-granular model of the same rules.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <set>

#include "vfio/iova.hpp"

using numacma::Errc;
using numacma::vfio::IovaAllocator;
using numacma::vfio::IovaRange;
using numacma::vfio::kIovaFloor;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
constexpr std::uint64_t kMsiFirst = 0xfee00000, kMsiLast = 0xfeefffff;

// What an Intel IOMMU with 39-bit addresses reports: everything but the MSI window.
std::vector<IovaRange> intel39() { return {{0, kMsiFirst - 1}, {kMsiLast + 1, (1ULL << 39) - 1}}; }

}  // namespace

TEST(VfioReservedRegions, ParsesSysfsLines) {
  auto r = numacma::vfio::parse_reserved_regions(
      "0x00000000fee00000 0x00000000feefffff msi\n0x0000000000000000 0x0000000000000fff direct\n");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0], (IovaRange{kMsiFirst, kMsiLast}));
  EXPECT_EQ((*r)[1], (IovaRange{0, 0xfff}));
  auto empty = numacma::vfio::parse_reserved_regions("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(VfioReservedRegions, RejectsMalformedLinesByNumber) {
  for (const char* bad : {"0xfee00000 msi\n", "zz 0x10 msi\n", "0x20 0x10 msi\n",
                          "0x10 0x20 msi extra\n"}) {
    auto r = numacma::vfio::parse_reserved_regions(std::string("0x0 0xfff direct\n") + bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find("line 2"), std::string::npos) << r.error().message;
  }
}

TEST(VfioIova, SubtractSplitsMergesAndDropsEmptyRanges) {
  using numacma::vfio::subtract;
  EXPECT_EQ(subtract({{0, 99}}, {{10, 19}}), (std::vector<IovaRange>{{0, 9}, {20, 99}}));
  EXPECT_EQ(subtract({{0, 49}, {40, 99}}, {}), (std::vector<IovaRange>{{0, 99}}));   // merged
  EXPECT_EQ(subtract({{0, 9}, {10, 19}}, {}), (std::vector<IovaRange>{{0, 19}}));    // adjacent
  EXPECT_EQ(subtract({{0, 99}}, {{0, 99}}), std::vector<IovaRange>{});
  EXPECT_EQ(subtract({{0, 99}}, {{0, 0}, {99, 200}}), (std::vector<IovaRange>{{1, 98}}));
  const std::uint64_t top = ~0ULL;
  EXPECT_EQ(subtract({{0, top}}, {{5, top}}), (std::vector<IovaRange>{{0, 4}}));
}

TEST(VfioIova, LowestFirstAlignedAndNeverBelowTheFloor) {
  IovaAllocator a(intel39());
  EXPECT_EQ(a.usable().front().first, kIovaFloor);  // no DMA address 0, ever
  auto x = a.alloc(4 * KiB, 4 * KiB, ~0ULL);
  ASSERT_TRUE(x);
  EXPECT_EQ(*x, kIovaFloor);
  auto y = a.alloc(2 * MiB, 2 * MiB, ~0ULL);
  ASSERT_TRUE(y);
  EXPECT_EQ(*y, 2 * MiB);  // the first 2 MiB-aligned start at or after 1 MiB + 4 KiB
  auto z = a.alloc(8 * KiB, 4 * KiB, ~0ULL);
  ASSERT_TRUE(z);
  EXPECT_EQ(*z, kIovaFloor + 4 * KiB);  // the gap below y is used
  EXPECT_TRUE(a.invariant());
}

TEST(VfioIova, NeverOverTheMsiWindow) {
  IovaAllocator a(intel39());
  // Fill up to just below the MSI window with 1 GiB-aligned... then 256 MiB pieces.
  std::vector<std::uint64_t> got;
  for (;;) {
    auto r = a.alloc(256 * MiB, 4 * KiB, 8 * GiB - 1);
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::no_memory);
      break;
    }
    got.push_back(*r);
    EXPECT_TRUE(*r + 256 * MiB - 1 < kMsiFirst || *r > kMsiLast) << std::hex << *r;
  }
  EXPECT_GT(got.size(), 20u);
  EXPECT_TRUE(a.invariant());
}

TEST(VfioIova, ANarrowMaskGetsIovasBelowIt) {
  IovaAllocator a(intel39());
  ASSERT_TRUE(a.alloc(64 * MiB, 2 * MiB, ~0ULL));  // a wide device's area comes first
  const std::uint64_t mask28 = (1ULL << 28) - 1;
  for (int i = 0; i < 10; ++i) {
    auto r = a.alloc(16 * MiB, 2 * MiB, mask28);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_LE(*r + 16 * MiB - 1, mask28);
  }
  auto full = a.alloc(256 * MiB, 2 * MiB, mask28);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, Errc::no_memory);
  EXPECT_NE(full.error().message.find("IOVA space exhausted"), std::string::npos);
  EXPECT_NE(full.error().message.find("0xfffffff"), std::string::npos) << full.error().message;
}

TEST(VfioIova, AMaskBelowEveryRangeIsUnreachableNotExhausted) {
  IovaAllocator a({{1ULL << 32, (1ULL << 39) - 1}});
  auto r = a.alloc(4 * KiB, 4 * KiB, (1ULL << 31) - 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unreachable);
  EXPECT_NE(r.error().message.find("lowest usable IOVA is 0x100000000"), std::string::npos)
      << r.error().message;
  IovaAllocator none({});
  auto n = none.alloc(4 * KiB, 4 * KiB, ~0ULL);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::unreachable);
}

TEST(VfioIova, BadArgumentsAndBadFreesAreRefused) {
  IovaAllocator a(intel39());
  EXPECT_EQ(a.alloc(0, 4 * KiB, ~0ULL).error().code, Errc::invalid_argument);
  EXPECT_EQ(a.alloc(5000, 4 * KiB, ~0ULL).error().code, Errc::invalid_argument);
  EXPECT_EQ(a.alloc(4 * KiB, 3 * KiB, ~0ULL).error().code, Errc::invalid_argument);
  EXPECT_EQ(a.alloc(4 * KiB, 2 * KiB, ~0ULL).error().code, Errc::invalid_argument);
  auto x = a.alloc(8 * KiB, 4 * KiB, ~0ULL);
  ASSERT_TRUE(x);
  EXPECT_FALSE(a.free(*x, 4 * KiB));       // wrong size
  EXPECT_FALSE(a.free(*x + 4 * KiB, 4 * KiB));  // not a start
  EXPECT_TRUE(a.free(*x, 8 * KiB));
  EXPECT_FALSE(a.free(*x, 8 * KiB));       // double free
  EXPECT_TRUE(a.invariant());
  EXPECT_EQ(a.free_ranges(), a.usable());   // everything merged back
}

TEST(VfioIova, ExcludeTakesFreeSpaceButNeverALiveMapping) {
  IovaAllocator a({{0, 64 * MiB - 1}});
  auto x = a.alloc(4 * MiB, 4 * MiB, ~0ULL);
  ASSERT_TRUE(x);
  EXPECT_EQ(*x, 4 * MiB);
  EXPECT_FALSE(a.exclude({5 * MiB, 6 * MiB}));  // inside the live mapping
  EXPECT_TRUE(a.exclude({16 * MiB, 32 * MiB - 1}));
  EXPECT_TRUE(a.invariant());
  for (;;) {
    auto r = a.alloc(4 * MiB, 4 * MiB, ~0ULL);
    if (!r) break;
    EXPECT_TRUE(*r + 4 * MiB - 1 < 16 * MiB || *r >= 32 * MiB) << std::hex << *r;
  }
}

// ---- property: the allocator against a page-granular model -------------------------

namespace {

struct Model {
  std::set<std::uint64_t> free_pages;          // 4 KiB page numbers
  std::map<std::uint64_t, std::uint64_t> live;  // iova -> bytes

  explicit Model(const std::vector<IovaRange>& usable) {
    for (const IovaRange& r : usable)
      for (std::uint64_t p = r.first / 4096; p <= r.last / 4096; ++p) free_pages.insert(p);
  }
  /** Lowest aligned start whose whole run is free and below the limit. */
  std::optional<std::uint64_t> alloc(std::uint64_t bytes, std::uint64_t align, std::uint64_t limit) {
    const std::uint64_t n = bytes / 4096;
    for (std::uint64_t p : free_pages) {
      const std::uint64_t iova = p * 4096;
      if (iova % align != 0) continue;
      if (iova + bytes - 1 > limit) return std::nullopt;
      bool ok = true;
      for (std::uint64_t k = 0; k < n && ok; ++k) ok = free_pages.count(p + k) != 0;
      if (!ok) continue;
      for (std::uint64_t k = 0; k < n; ++k) free_pages.erase(p + k);
      live[iova] = bytes;
      return iova;
    }
    return std::nullopt;
  }
  void free(std::uint64_t iova) {
    for (std::uint64_t k = 0; k < live[iova] / 4096; ++k) free_pages.insert(iova / 4096 + k);
    live.erase(iova);
  }
};

}  // namespace

RC_GTEST_PROP(VfioIovaProperty, MatchesThePageModel, ()) {
  // A small space: 1 MiB floor .. 3 MiB, a hole (the "MSI window") inside.
  const std::uint64_t hole = *rc::gen::inRange<std::uint64_t>(260, 700) * 4096;
  const std::vector<IovaRange> usable = numacma::vfio::subtract(
      {{0, 3 * MiB - 1}}, {{hole, hole + *rc::gen::inRange<std::uint64_t>(1, 16) * 4096 - 1}});
  IovaAllocator a(usable);
  Model m(a.usable());
  const int steps = *rc::gen::inRange(1, 120);
  for (int i = 0; i < steps; ++i) {
    const bool do_free = !m.live.empty() && *rc::gen::inRange(0, 3) == 0;
    if (do_free) {
      const std::size_t k = *rc::gen::inRange<std::size_t>(0, m.live.size());
      auto it = std::next(m.live.begin(), static_cast<long>(k));
      const std::uint64_t iova = it->first, bytes = it->second;
      RC_ASSERT(a.free(iova, bytes).ok());
      m.free(iova);
    } else {
      const std::uint64_t bytes = *rc::gen::inRange<std::uint64_t>(1, 40) * 4096;
      const std::uint64_t align = 4096ULL << *rc::gen::inRange(0, 6);
      const std::uint64_t limit = *rc::gen::element<std::uint64_t>(~0ULL, 2 * MiB - 1, 3 * MiB / 2 + 4095);
      auto got = a.alloc(bytes, align, limit);
      auto want = m.alloc(bytes, align, limit);
      RC_ASSERT(got.ok() == want.has_value());
      if (want) RC_ASSERT(*got == *want);
    }
    RC_ASSERT(a.invariant());
    RC_ASSERT(a.live() == m.live.size());
  }
}
