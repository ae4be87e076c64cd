// config/zones.hpp: the zones dma-direct asks the page allocator for, as
// Linux 6.12 (x86-64, ZONE_DMA and ZONE_DMA32 on) and Debian's arm64 kernel
// have them; dma_direct_optimal_gfp_mask, the retry order of
// __dma_direct_alloc_pages, and which node a zone's pages come from.
#include <gtest/gtest.h>

#include "config/zones.hpp"

namespace numacma::config {
namespace {

constexpr std::uint64_t MiB = 1ULL << 20, GiB = 1ULL << 30;
constexpr std::uint64_t kMask24 = (1ULL << 24) - 1, kMask28 = (1ULL << 28) - 1, kMask30 = (1ULL << 30) - 1,
                        kMask32 = (1ULL << 32) - 1, kMask36 = (1ULL << 36) - 1, kMask64 = ~0ULL;

/** The x86-64 guest of tests/kernel (k4): 4 x 256 MiB from 0. */
std::vector<PhysRange> k4() { return {{0, 256 * MiB, 0}, {256 * MiB, 512 * MiB, 1}, {512 * MiB, 768 * MiB, 2}, {768 * MiB, GiB, 3}}; }

TEST(Zones, X86HasDmaBelow16MiBAndDma32Below4GiB) {
  const Zones z = zones_of(Arch::x86_64, k4());
  EXPECT_EQ(z.end(Zone::dma), 16 * MiB);
  EXPECT_EQ(z.end(Zone::dma32), 4 * GiB);
  EXPECT_EQ(z.end(Zone::normal), ~0ULL);
  EXPECT_EQ(z.start(Zone::dma32), 16 * MiB);
  // dma_direct_optimal_gfp_mask: zone_dma_limit is 24 bits.
  EXPECT_EQ(z.for_mask(0xfff), Zone::dma);
  EXPECT_EQ(z.for_mask(kMask24), Zone::dma);
  EXPECT_EQ(z.for_mask(kMask24 + 1), Zone::dma32);
  EXPECT_EQ(z.for_mask(kMask28), Zone::dma32);
  EXPECT_EQ(z.for_mask(kMask30), Zone::dma32);
  EXPECT_EQ(z.for_mask(kMask32), Zone::dma32);
  EXPECT_EQ(z.for_mask(kMask32 + 1), Zone::normal);
  EXPECT_EQ(z.for_mask(kMask64), Zone::normal);
}

TEST(Zones, TheRetryGoesToDma32ThenDmaAsDmaDirectDoes) {
  const Zones z = zones_of(Arch::x86_64, k4());
  // No zone flag, a mask below 64 bits: GFP_DMA32, then GFP_DMA.
  EXPECT_EQ(z.retry(Zone::normal, kMask36), Zone::dma32);
  EXPECT_EQ(z.retry(Zone::dma32, kMask36), Zone::dma);
  // A 64-bit mask never meets pages above it; were it to, the kernel would
  // skip GFP_DMA32 (phys_limit is not below DMA_BIT_MASK(64)) and go to GFP_DMA.
  EXPECT_EQ(z.retry(Zone::normal, kMask64), Zone::dma);
  // From GFP_DMA32 (a 28- or 32-bit mask): GFP_DMA; after GFP_DMA: nothing.
  EXPECT_EQ(z.retry(Zone::dma32, kMask28), Zone::dma);
  EXPECT_EQ(z.retry(Zone::dma, kMask24), std::nullopt);
}

TEST(Zones, Arm64HasOneDmaZoneUpTo4GiB) {
  // Debian's arm64 kernel: zone_dma_limit 32 bits where memory starts below
  // 4 GiB, ZONE_DMA32 ends where ZONE_DMA does (empty).
  const std::vector<PhysRange> a2hi{{1 * GiB, 4 * GiB, 0}, {4 * GiB, 5 * GiB, 1}};
  const Zones z = zones_of(Arch::arm64, a2hi);
  EXPECT_EQ(z.end(Zone::dma), 4 * GiB);
  EXPECT_EQ(z.end(Zone::dma32), 4 * GiB);
  EXPECT_EQ(z.for_mask(kMask32), Zone::dma);  // a 32-bit mask is GFP_DMA there
  EXPECT_EQ(z.for_mask(kMask28), Zone::dma);
  EXPECT_EQ(z.for_mask(kMask36), Zone::normal);
  // All memory below 4 GiB: ZONE_DMA is all of it.
  EXPECT_EQ(zones_of(Arch::arm64, {{1 * GiB, 1280 * MiB, 0}, {1280 * MiB, 1536 * MiB, 1}}).end(Zone::dma),
            1536 * MiB);
  // Memory that starts above 4 GiB is all ZONE_DMA (max_zone_phys).
  EXPECT_EQ(zones_of(Arch::arm64, {{8 * GiB, 12 * GiB, 0}}).end(Zone::dma), 12 * GiB);
}

TEST(Zones, AZonesPagesComeFromTheNearestNodeThatHasSome) {
  const std::vector<PhysRange> layout = k4();
  const Zones z = zones_of(Arch::x86_64, layout);
  // ZONE_DMA lies in node 0 only: every node's ZONE_DMA request goes there.
  for (int n = 0; n < 4; ++n) {
    std::vector<int> others;
    for (int m = 0; m < 4; ++m)
      if (m != n) others.push_back(m);
    EXPECT_EQ(zone_node(z, Zone::dma, n, layout, others), 0) << n;
    EXPECT_EQ(zone_node(z, Zone::dma32, n, layout, others), n) << n;  // all below 4 GiB
  }
  // A node wholly above 4 GiB (x86-2s' node 1): its ZONE_DMA32 pages come
  // from the nearest node with memory there.
  const std::vector<PhysRange> two{{0, 192 * GiB, 0}, {192 * GiB, 384 * GiB, 1}};
  EXPECT_EQ(zone_node(z, Zone::dma32, 1, two, {0}), 0);
  EXPECT_EQ(zone_node(z, Zone::normal, 1, two, {0}), 1);
  // Nobody has such memory.
  EXPECT_EQ(zone_node(z, Zone::dma, 1, {{4 * GiB, 8 * GiB, 1}}, {}), -1);
}

TEST(Zones, ANodesOwnPagesBeginInItsHighestZone) {
  const std::vector<PhysRange> layout = k4();
  const Zones z = zones_of(Arch::x86_64, layout);
  // Node 0 has ZONE_DMA and ZONE_DMA32: a ZONE_DMA32 (or ZONE_NORMAL)
  // request takes ZONE_DMA32 pages first, a ZONE_DMA one ZONE_DMA's.
  EXPECT_EQ(zone_floor(z, Zone::dma32, 0, layout), 16 * MiB);
  EXPECT_EQ(zone_floor(z, Zone::normal, 0, layout), 16 * MiB);
  EXPECT_EQ(zone_floor(z, Zone::dma, 0, layout), 0u);
  EXPECT_EQ(zone_floor(z, Zone::dma32, 2, layout), 16 * MiB);
  // arm64: one zone below 4 GiB.
  const std::vector<PhysRange> a2{{1 * GiB, 1280 * MiB, 0}, {1280 * MiB, 1536 * MiB, 1}};
  const Zones za = zones_of(Arch::arm64, a2);
  EXPECT_EQ(zone_floor(za, Zone::normal, 1, a2), 0u);
  EXPECT_EQ(zone_floor(za, Zone::dma, 1, a2), 0u);
}

}  // namespace
}  // namespace numacma::config
