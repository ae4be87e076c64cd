// The Pool in vfio mode (vfio_pool_fixture.hpp): creation maps every area
// once, below the smallest mask, or fails leaving nothing mapped; an area
// buffer lies inside its area's mapping at the same offset.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "vfio_pool_fixture.hpp"

// ---- creation -----------------------------------------------------------------------------

TEST_F(VfioPool, EveryAreaIsMappedOnceAtCreationBelowTheSmallestMask) {
  {
    Pool pool = make(kParams, {{kDev0, k64}, {kDev1, mask_of(28)}});
    EXPECT_EQ(pool.dma_mode(), "vfio");
    const auto st = pool.stats();
    ASSERT_EQ(st.areas.size(), 2u) << "reserved and pernuma0";
    const auto maps = fake_->mappings();
    ASSERT_EQ(maps.size(), st.areas.size()) << fake_->describe();
    EXPECT_EQ(fake_->map_calls(), st.areas.size()) << "each area mapped exactly once";
    const auto rep = pool.vfio_report();
    ASSERT_EQ(rep.mappings.size(), st.areas.size());
    for (const auto& a : st.areas) {
      SCOPED_TRACE(a.name);
      EXPECT_TRUE(a.iova);
      const std::uint64_t bytes = a.pages * 4096;
      EXPECT_TRUE(fake_->has_mapping(a.base_dma, bytes)) << fake_->describe();
      EXPECT_EQ(a.base_dma % (2 * MiB), 0u) << "2 MiB aligned in IOVA space";
      EXPECT_LE(a.base_dma + bytes - 1, mask_of(28)) << "below the smallest mask";
      EXPECT_GE(a.base_dma, numacma::vfio::kIovaFloor);
      EXPECT_TRUE(contains(a.note, "vfio: mapped at IOVA")) << a.note;
      EXPECT_TRUE(std::any_of(rep.mappings.begin(), rep.mappings.end(), [&](const numacma::VfioMapping& m) {
        return m.what == a.name && m.iova == a.base_dma && m.bytes == bytes;
      }));
    }
    EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 2u);
    EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::group), 2u);
  }
  EXPECT_TRUE(fake_->clean()) << "the pool is gone: " << fake_->describe();
}

TEST_F(VfioPool, SimBackingAndPhysModeExcludeVfio) {
  PoolOptions o = options(kParams, {{kDev0, k64}});
  o.backing = "sim";
  auto p = Pool::create(o);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(p.error().message, "sim")) << p.error().message;
  o = options(kParams, {{kDev0, k64}});
  o.dma_mode = DmaMode::phys;
  p = Pool::create(o);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(p.error().message, "phys")) << p.error().message;
  for (auto bad : std::vector<std::vector<VfioDeviceSpec>>{
           {{"5:00.0", k64}}, {{kDev0, 0}}, {{kDev0, k64}, {kDev0, mask_of(32)}}}) {
    p = Pool::create(options(kParams, bad));
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, Errc::invalid_argument) << p.error().message;
  }
  EXPECT_TRUE(fake_->calls().empty()) << "refused before any VFIO call";
}

TEST_F(VfioPool, AnUnboundDeviceFailsCreationWithTheBindCommand) {
  auto p = Pool::create(options(kParams, {{kDev0, k64}, {kNvme, k64}}));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Errc::unsupported);
  EXPECT_TRUE(contains(p.error().message, "numacma vfio bind " + kNvme)) << p.error().message;
  EXPECT_TRUE(fake_->clean()) << "the first device's group is given back: " << fake_->describe();
}

TEST_F(VfioPool, CreationFailingHalfWayLeavesNothingMapped) {
  // The second MAP_DMA (the second area) fails.
  fake_->fail_map_nth = 2;
  auto p = Pool::create(options(kParams, {{kDev0, k64}, {kDev1, k64}}));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Errc::no_memory) << p.error().message;
  EXPECT_TRUE(contains(p.error().message, "VFIO mapping of area")) << p.error().message;
  EXPECT_EQ(fake_->map_calls(), 2u);
  EXPECT_TRUE(fake_->clean()) << fake_->describe();

  // IOVA space exhausted: below 2^23 (1 MiB .. 8 MiB, 2 MiB aligned) there is
  // room for the 4 MiB area or the 6 MiB one, not both. The narrow device is
  // the second one listed: the smallest mask of all devices counts.
  fake_->fail_map_nth = 0;
  p = Pool::create(options("cma=4M cma_pernuma=6M", {{kDev0, k64}, {kDev1, mask_of(23)}}));
  ASSERT_FALSE(p) << "an area was mapped above a device's mask";
  EXPECT_EQ(p.error().code, Errc::no_memory) << p.error().message;
  EXPECT_TRUE(contains(p.error().message, "IOVA space exhausted")) << p.error().message;
  EXPECT_TRUE(fake_->clean()) << fake_->describe();

  // The groups were given back: the same devices make a pool again.
  {
    Pool pool = make(kParams, {{kDev0, k64}, {kDev1, mask_of(23)}});
    EXPECT_EQ(fake_->mappings().size(), 2u);
  }
  EXPECT_TRUE(fake_->clean()) << fake_->describe();
}

// ---- area buffers -------------------------------------------------------------------------

TEST_F(VfioPool, AMultiPageBufferIsInsideItsAreasMappingAtTheSameOffset) {
  Pool pool = make(kParams, {{kDev0, k64}});
  auto dev = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(dev) << dev.error().message;
  std::vector<DmaBuffer> bufs;
  for (std::size_t bytes : {64 * KiB, 12 * KiB, 256 * KiB, 8 * KiB}) {
    auto b = pool.alloc_coherent(*dev, bytes);
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->area_name(), "pernuma0");
    EXPECT_EQ(b->served(), Served::local);
    EXPECT_TRUE(b->iova());
    EXPECT_TRUE(b->contiguous());
    EXPECT_EQ(b->node(), 0);
    expect_mapped(*b);
    const FakeMapping m = fake_->mapping_containing(b->dma_addr());
    EXPECT_EQ(m.iova, area(pool.stats(), "pernuma0")->base_dma) << "the area's own mapping";
    // A6 in IOVA space: aligned to its order.
    std::uint64_t align = 4096;
    while (align < bytes) align <<= 1;
    EXPECT_EQ(b->dma_addr() % align, 0u) << bytes;
    std::memset(b->cpu(), 0xa5, bytes);
    bufs.push_back(std::move(*b));
  }
  EXPECT_EQ(fake_->mappings().size(), 2u) << "area buffers need no mapping of their own";
  bufs.clear();
  expect_f3(pool);
}

TEST_F(VfioPool, ANarrowDeviceOnNode0StillGetsItsBuffersFromPernuma0) {
  // Without an IOMMU a mask of 28 bits is a low-zone request (A4 skips the
  // per-node areas); through VFIO the mask limits IOVAs, not memory.
  Pool pool = make(kParams, {{kDev0, k64}, {kDev1, mask_of(28)}});
  auto dev = Device::from_vfio(kDev1, pool);
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->coherent_dma_mask, mask_of(28));
  EXPECT_EQ(dev->node, 0);
  for (std::size_t bytes : {64 * KiB, 1 * MiB}) {
    auto b = pool.alloc_coherent(*dev, bytes);
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->area_name(), "pernuma0");
    EXPECT_EQ(b->served(), Served::local);
    EXPECT_FALSE(b->fallback());
    EXPECT_LE(b->dma_addr() + bytes - 1, mask_of(28));
    expect_mapped(*b);
  }
  expect_f3(pool);
}
