// docs/semantics.md A7 and A8 as dma-direct meets a mask below the device's memory
// (__dma_direct_alloc_pages): page buffers are asked for in the zone the mask
// falls into (GFP_DMA32 at or below 32 bits, GFP_DMA at or below 24 on
// x86-64), from the zone's node when the device's node has no memory there;
// pages that come back above the mask are given back and asked for again a
// zone lower (ZONE_DMA32, then ZONE_DMA: the first 16 MiB, node 0). The CMA
// attempt is made once, before the pages: an area's first fit above the mask
// is taken, found unreachable and released, as the kernel counts it.
//
// Most tests run on tests/data/k4-guest, the 4 x 256 MiB x86-64 guest of
// tests/kernel (a 28-bit mask reaches node 0 only, a 30-bit one every node),
// on the sim backing, as `numacma replay --arch x86_64` runs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "numacma/numacma.hpp"
#include "pool/pool_impl.hpp"

using numacma::Arch;
using numacma::Device;
using numacma::DmaBuffer;
using numacma::Errc;
using numacma::kNoNode;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Served;

namespace {

constexpr std::uint64_t K = 1024, M = 1024 * 1024;
constexpr std::uint64_t kMask24 = 0xffffff, kMask28 = 0xfffffff, kMask30 = 0x3fffffff, kMask32 = 0xffffffff,
                        kMask36 = 0xfffffffff;

Pool make_pool(const std::string& fixture, const std::string& params, Arch arch = Arch::x86_64) {
  PoolOptions o;
  o.params = params;
  o.backing = "sim";
  o.arch = arch;
  o.sysfs_root = std::string(NUMACMA_TEST_DATA) + "/" + fixture;
  auto p = Pool::create(o);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return std::move(p).value();
}

const numacma::AreaReport& area(const numacma::Stats& s, const std::string& name) {
  for (const auto& a : s.areas)
    if (a.name == name) return a;
  static numacma::AreaReport none;
  ADD_FAILURE() << "no area " << name;
  return none;
}

const numacma::NodeReport& node(const numacma::Stats& s, int n) {
  for (const auto& r : s.nodes)
    if (r.node == n) return r;
  static numacma::NodeReport none;
  ADD_FAILURE() << "no node " << n;
  return none;
}

/** A buffer of the low zone: in ZONE_DMA (the first 16 MiB), reachable by `mask`. */
void expect_zone_dma(const DmaBuffer& b, std::uint64_t bytes, std::uint64_t mask) {
  EXPECT_EQ(b.node(), 0);
  EXPECT_EQ(b.area_name(), "pages");
  EXPECT_EQ(b.served(), Served::pages);
  EXPECT_LT(b.dma_addr() + bytes - 1, 16 * M) << std::hex << b.dma_addr();
  EXPECT_LE(b.dma_addr() + bytes - 1, mask);
  EXPECT_GE(b.dma_addr(), 1 * M) << "the first MiB is the kernel's";
}

TEST(PoolZones, A7PagesAboveTheMaskAreAskedForAgainInZoneDmaOnNode0) {
  // No default area: a multi-page request of a 28-bit device skips the
  // per-node areas (A4: GFP_DMA32) and goes to pages: ZONE_DMA32 of its own
  // node lies above the mask, so ZONE_DMA, node 0's, serves it.
  Pool pool = make_pool("k4-guest", "cma_pernuma=6M");
  for (int n : {1, 2, 3}) {
    for (std::uint64_t bytes : {4 * K, 64 * K, 1 * M}) {  // A3's single page, A7's blocks
      auto b = pool.alloc_coherent(Device::on_node(n, "dev", kMask28), bytes);
      ASSERT_TRUE(b.ok()) << "node " << n << ", " << bytes << " bytes: " << b.error().message;
      expect_zone_dma(*b, bytes, kMask28);
    }
  }
  // A9: counted as pages for the device's node, wherever the pages are.
  const auto st = pool.stats();
  for (int n : {1, 2, 3}) EXPECT_EQ(node(st, n).pages, 3u) << n;
  EXPECT_EQ(node(st, 0).pages, 0u);
  for (int n : {0, 1, 2, 3}) EXPECT_EQ(area(st, "pernuma" + std::to_string(n)).alloc_pages_success, 0u);
}

TEST(PoolZones, AMaskThatReachesTheNodeKeepsItsOwnZone) {
  Pool pool = make_pool("k4-guest", "cma_pernuma=6M");
  // Node 0 lies below 256 MiB: a 28-bit device there gets ZONE_DMA32 pages
  // of node 0 at the first try, not ZONE_DMA's.
  auto on0 = pool.alloc_coherent(Device::on_node(0, "dev0", kMask28), 64 * K);
  ASSERT_TRUE(on0.ok()) << on0.error().message;
  EXPECT_EQ(on0->node(), 0);
  EXPECT_GE(on0->dma_addr(), 16 * M);
  EXPECT_LE(on0->dma_addr() + 64 * K - 1, kMask28);
  // A 30-bit mask reaches all four nodes (1 GiB): each keeps its own.
  for (int n : {1, 2, 3}) {
    auto b = pool.alloc_coherent(Device::on_node(n, "dev", kMask30), 64 * K);
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_EQ(b->node(), n);
    EXPECT_EQ(b->area_name(), "pages");  // A4: a low-zone request skips pernuma<N>
  }
}

TEST(PoolZones, A24BitMaskAsksForZoneDmaAtOnce) {
  // At or below zone_dma_limit (24 bits on x86-64): GFP_DMA from the start.
  Pool pool = make_pool("k4-guest", "cma_pernuma=6M");
  auto b = pool.alloc_coherent(Device::on_node(2, "isa", kMask24), 8 * K);
  ASSERT_TRUE(b.ok()) << b.error().message;
  expect_zone_dma(*b, 8 * K, kMask24);
  // The mask still limits: ZONE_DMA's pages are handed out top-down in the
  // sim, so a 20-bit device finds them above its mask, and there is no zone
  // below ZONE_DMA.
  auto tiny = pool.alloc_coherent(Device::on_node(2, "tiny", 0xfffff), 4 * K);
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.error().code, Errc::unreachable) << tiny.error().message;
  EXPECT_NE(tiny.error().message.find("ZONE_DMA"), std::string::npos) << tiny.error().message;
}

TEST(PoolZones, ZoneDmaHoldsWhatItHoldsAndNoMore) {
  // ZONE_DMA is [1 MiB, 16 MiB) here: order-10 blocks (4 MiB) at 4, 8 and
  // 12 MiB; a fourth does not fit, as the kernel's would not, and the
  // request fails (no_memory: the zone is full).
  Pool pool = make_pool("k4-guest", "cma_pernuma=6M");
  std::vector<DmaBuffer> held;
  for (int i = 0; i < 3; ++i) {
    auto b = pool.alloc_coherent(Device::on_node(1, "dev", kMask28), 4 * M);
    ASSERT_TRUE(b.ok()) << i << ": " << b.error().message;
    expect_zone_dma(*b, 4 * M, kMask28);
    held.push_back(std::move(*b));
  }
  auto full = pool.alloc_coherent(Device::on_node(1, "dev", kMask28), 4 * M);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, Errc::no_memory) << full.error().message;
  EXPECT_EQ(node(pool.stats(), 1).failed, 1u);
  // Smaller blocks still fit below 4 MiB.
  auto small = pool.alloc_coherent(Device::on_node(3, "dev", kMask28), 2 * M);
  ASSERT_TRUE(small.ok()) << small.error().message;
  expect_zone_dma(*small, 2 * M, kMask28);
  // Freed, a block is had again.
  held.pop_back();
  auto again = pool.alloc_coherent(Device::on_node(1, "dev", kMask28), 4 * M);
  ASSERT_TRUE(again.ok()) << again.error().message;
}

TEST(PoolZones, TheDefaultAreaAboveTheMaskIsTakenCheckedAndReleased) {
  // The default area sits at the top of node 3 (R5), above a 28-bit mask.
  // dma_alloc_contiguous gives a GFP_DMA32 request the default area; its
  // first fit is above the mask, so dma-direct releases it: the area counts
  // a success and a release, then the pages come from ZONE_DMA.
  Pool pool = make_pool("k4-guest", "cma=24M cma_pernuma=6M");
  auto b = pool.alloc_coherent(Device::on_node(1, "dev", kMask28), 64 * K);
  ASSERT_TRUE(b.ok()) << b.error().message;
  expect_zone_dma(*b, 64 * K, kMask28);
  auto st = pool.stats();
  EXPECT_EQ(area(st, "reserved").alloc_pages_success, 16u);
  EXPECT_EQ(area(st, "reserved").release_pages_success, 16u);
  EXPECT_EQ(area(st, "reserved").alloc_pages_fail, 0u);
  EXPECT_EQ(area(st, "reserved").used, 0u);
  EXPECT_EQ(area(st, "pernuma1").alloc_pages_success, 0u);  // A4: not tried
  // A full default area counts a failure instead (cma_alloc found nothing).
  auto fill = pool.alloc_coherent(Device::on_node(kNoNode, "fill"), 24 * M);
  ASSERT_TRUE(fill.ok()) << fill.error().message;
  EXPECT_EQ(fill->area_name(), "reserved");
  auto c = pool.alloc_coherent(Device::on_node(2, "dev", kMask28), 64 * K);
  ASSERT_TRUE(c.ok()) << c.error().message;
  expect_zone_dma(*c, 64 * K, kMask28);
  st = pool.stats();
  EXPECT_EQ(area(st, "reserved").alloc_pages_fail, 16u);
  EXPECT_EQ(area(st, "reserved").alloc_pages_success, 16u + 6144u);
  EXPECT_EQ(node(st, 2).pages, 1u);
}

TEST(PoolZones, AMaskBetween32And64BitsRetriesInZoneDma32OfTheNearestNode) {
  // x86-2s: node 1 lies at 192-384 GiB. A 36-bit device there (64 GiB) is
  // no low-zone request: pernuma1 is tried (A4), its first fit is above the
  // mask (taken, checked, released); then pages with no zone flag: node 1's
  // are above the mask; GFP_DMA32 then, which node 1 has none of: the
  // nearest node with ZONE_DMA32, node 0.
  Pool pool = make_pool("x86-2s", "cma_pernuma=2M");
  auto b = pool.alloc_coherent(Device::on_node(1, "dev", kMask36), 64 * K);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->area_name(), "pages");
  EXPECT_EQ(b->node(), 0);
  EXPECT_LT(b->dma_addr(), 4ULL << 30);
  EXPECT_GE(b->dma_addr(), 16 * M);  // ZONE_DMA32, not ZONE_DMA
  const auto st = pool.stats();
  EXPECT_EQ(area(st, "pernuma1").alloc_pages_success, 16u);
  EXPECT_EQ(area(st, "pernuma1").release_pages_success, 16u);
  EXPECT_EQ(area(st, "pernuma1").used, 0u);
}

TEST(PoolZones, Arm64AskingGfpDmaTakesNode0sDmaZoneAtOnce) {
  // arm64-4n (--arch arm64): ZONE_DMA is the first 4 GiB, node 0's; a 32-bit
  // mask is GFP_DMA there. A device on node 2 (at 128 GiB) gets node 0's
  // pages below 4 GiB; a 64-bit one its own node's.
  Pool pool = make_pool("arm64-4n", "cma_pernuma=2M", Arch::arm64);
  auto b = pool.alloc_coherent(Device::on_node(2, "smmu", kMask32), 64 * K);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->node(), 0);
  EXPECT_LE(b->dma_addr() + 64 * K - 1, kMask32);
  auto page = pool.alloc_coherent(Device::on_node(3, "nic", kMask32), 4 * K);
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_EQ(page->node(), 0);
  auto wide = pool.alloc_coherent(Device::on_node(2, "wide"), 64 * K);
  ASSERT_TRUE(wide.ok());
  EXPECT_EQ(wide->node(), 2);
}

TEST(PoolZones, AKeptPageOfZoneDmaServesOnlyZoneDmaRequests) {
  // A3 keeps freed single pages per node. A ZONE_DMA page of node 0, freed,
  // is not what a ZONE_DMA32 request of node 0 gets (the kernel's zones have
  // their own free lists, ZONE_DMA32's tried first); a ZONE_DMA request does
  // get it back.
  Pool pool = make_pool("k4-guest", "cma_pernuma=6M");
  auto low = pool.alloc_coherent(Device::on_node(1, "dev", kMask28), 4 * K);
  ASSERT_TRUE(low.ok());
  const std::uint64_t dma = low->dma_addr();
  EXPECT_LT(dma, 16 * M);
  ASSERT_TRUE(pool.free_coherent(std::move(*low)).ok());
  auto on0 = pool.alloc_coherent(Device::on_node(0, "dev0", kMask28), 4 * K);
  ASSERT_TRUE(on0.ok());
  EXPECT_GE(on0->dma_addr(), 16 * M);
  auto again = pool.alloc_coherent(Device::on_node(3, "dev3", kMask28), 4 * K);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->dma_addr(), dma);
}

}  // namespace
