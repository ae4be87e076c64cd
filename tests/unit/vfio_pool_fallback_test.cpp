// The Pool in vfio mode (vfio_pool_fixture.hpp): page-fallback buffers are
// mapped while they live, exactly; a bad free is refused and stays mapped;
// a page buffer that cannot be mapped is refused, its pages freed.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "vfio_pool_fixture.hpp"

// ---- page-fallback buffers ------------------------------------------------------------------

TEST_F(VfioPool, PageBuffersAreMappedWhenAllocatedAndUnmappedWhenFreed) {
  Pool pool = make(kParams, {{kDev0, k64}, {kDev1, mask_of(28)}});
  auto dev = Device::from_vfio(kDev1, pool);
  ASSERT_TRUE(dev);
  const std::size_t areas = fake_->mappings().size();

  // A3: a single page.
  auto one = pool.alloc_coherent(*dev, 4096);
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->served(), Served::pages);
  EXPECT_EQ(one->area_name(), "pages");
  EXPECT_TRUE(one->iova());
  EXPECT_TRUE(one->contiguous());
  EXPECT_TRUE(fake_->has_mapping(one->dma_addr(), 4096)) << fake_->describe();
  EXPECT_EQ(fake_->mapping_containing(one->dma_addr()).vaddr, reinterpret_cast<std::uintptr_t>(one->cpu()));
  EXPECT_LE(one->dma_addr() + 4095, mask_of(28));
  EXPECT_EQ(page_mappings(pool), 1u);
  const std::uint64_t one_dma = one->dma_addr();
  ASSERT_TRUE(one->release());
  EXPECT_FALSE(fake_->has_mapping(one_dma, 4096)) << "a freed page is unmapped at once";
  EXPECT_EQ(fake_->mappings().size(), areas);

  // A7: the areas are full, so a multi-page buffer comes from pages, mapped
  // contiguously in IOVA space.
  auto fill1 = pool.alloc_coherent(*dev, 2 * MiB);
  auto fill2 = pool.alloc_coherent(*dev, 4 * MiB);
  ASSERT_TRUE(fill1 && fill2);
  EXPECT_EQ(fill1->area_name(), "pernuma0");
  EXPECT_EQ(fill2->area_name(), "reserved");
  auto spill = pool.alloc_coherent(*dev, 40 * KiB);
  ASSERT_TRUE(spill) << spill.error().message;
  EXPECT_EQ(spill->served(), Served::pages);
  EXPECT_TRUE(spill->fallback());
  EXPECT_TRUE(spill->contiguous()) << "contiguous in IOVA space";
  EXPECT_TRUE(spill->iova());
  EXPECT_TRUE(fake_->has_mapping(spill->dma_addr(), 40 * KiB)) << fake_->describe();
  EXPECT_EQ(spill->dma_addr() % (64 * KiB), 0u) << "A6 in IOVA space";
  EXPECT_LE(spill->dma_addr() + 40 * KiB - 1, mask_of(28));
  expect_mapped(*spill);
  const std::uint64_t spill_dma = spill->dma_addr();
  ASSERT_TRUE(pool.free_coherent(std::move(*spill)));
  EXPECT_FALSE(fake_->has_mapping(spill_dma, 40 * KiB));
  EXPECT_EQ(pool.stats().pages_live, 0u);
}

TEST_F(VfioPool, WithoutAreasEveryBufferIsAMappedPageBuffer) {
  Pool pool = make("", {{kDev0, k64}});
  EXPECT_TRUE(pool.stats().areas.empty());
  EXPECT_TRUE(fake_->mappings().empty());
  auto dev = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(dev);
  std::vector<DmaBuffer> bufs;
  for (std::size_t bytes : {4096ul, 3 * 4096ul, 64 * KiB, 5000ul}) {
    auto b = pool.alloc_coherent(*dev, bytes);
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->served(), Served::pages);
    EXPECT_TRUE(b->contiguous());
    EXPECT_TRUE(fake_->has_mapping(b->dma_addr(), b->pages() * 4096)) << bytes << ": " << fake_->describe();
    expect_mapped(*b);
    bufs.push_back(std::move(*b));
  }
  EXPECT_EQ(fake_->mappings().size(), 4u);
  EXPECT_EQ(page_mappings(pool), 4u);
  bufs.clear();
  EXPECT_TRUE(fake_->mappings().empty());
}

TEST_F(VfioPool, CyclesLeaveDmaAvailWhereItStarted) {
  Pool pool = make(kParams, {{kDev0, k64}});
  auto dev = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(dev);
  const std::int64_t avail0 = pool.vfio_report().dma_avail;
  EXPECT_EQ(avail0, fake_->dma_avail());
  const unsigned maps0 = fake_->map_calls();
  constexpr int kCycles = 200;
  for (int i = 0; i < kCycles; ++i) {
    auto page = pool.alloc_coherent(*dev, 4096);
    ASSERT_TRUE(page) << page.error().message;
    auto area_buf = pool.alloc_coherent(*dev, 16 * KiB);
    ASSERT_TRUE(area_buf) << area_buf.error().message;
    EXPECT_EQ(fake_->dma_avail(), avail0 - 1) << "one page buffer mapped, the area buffer needs none";
  }
  EXPECT_EQ(pool.vfio_report().dma_avail, avail0);
  EXPECT_EQ(fake_->dma_avail(), avail0);
  EXPECT_EQ(fake_->map_calls() - maps0, static_cast<unsigned>(kCycles))
      << "every single page was mapped anew: no page cache in vfio mode";
  EXPECT_EQ(pool.stats().pages_live, 0u);
  expect_f3(pool);
}

TEST_F(VfioPool, F2APageBufferFreedWithAWrongDmaAddressIsRefusedAndStaysMapped) {
  Pool pool = make(kParams, {{kDev0, k64}});
  auto dev = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(dev);
  for (std::size_t bytes : {std::size_t{4096}, std::size_t{8 * MiB}}) {  // A3, and A7 (larger than any area)
    SCOPED_TRACE(bytes);
    auto b = pool.alloc_coherent(*dev, bytes);
    ASSERT_TRUE(b) << b.error().message;
    ASSERT_EQ(b->served(), Served::pages);
    void* cpu = b->cpu();
    const std::uint64_t dma = b->dma_addr();
    b->detach();
    const std::uint64_t bad0 = pool.stats().bad_frees;
    auto s = pool.free_coherent(*dev, bytes, cpu, dma + 4096);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, Errc::bad_free);
    EXPECT_EQ(pool.stats().bad_frees, bad0 + 1);
    EXPECT_TRUE(fake_->has_mapping(dma, bytes)) << "refused: still mapped";
    EXPECT_EQ(pool.stats().pages_live, 1u);
    ASSERT_TRUE(pool.free_coherent(*dev, bytes, cpu, dma));
    EXPECT_FALSE(fake_->has_mapping(dma, bytes));
    EXPECT_FALSE(pool.free_coherent(*dev, bytes, cpu, dma)) << "double free";
  }
  EXPECT_EQ(pool.stats().bad_frees, 4u);
}

TEST_F(VfioPool, APageBufferThatCannotBeMappedIsRefusedAndItsPagesFreed) {
  // RLIMIT_MEMLOCK (not root): the areas (6 MiB) fit, 8 MiB more do not.
  fake_->unlimited = false;
  fake_->memlock = 6 * MiB + 64 * KiB;
  Pool pool = make(kParams, {{kDev0, k64}});
  auto dev = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(dev);
  auto small = pool.alloc_coherent(*dev, 4096);
  ASSERT_TRUE(small) << small.error().message;
  const auto rss = [] {
    std::ifstream f("/proc/self/statm");
    std::uint64_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * 4096;
  };
  const std::uint64_t rss0 = rss();
  for (int i = 0; i < 4; ++i) {
    auto big = pool.alloc_coherent(*dev, 8 * MiB);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code, Errc::no_memory);
    EXPECT_TRUE(contains(big.error().message, "RLIMIT_MEMLOCK")) << big.error().message;
  }
  const std::uint64_t rss1 = rss();
  EXPECT_LT(rss1, rss0 + 16 * MiB) << "4 x 8 MiB of populated pages were not given back";
  EXPECT_EQ(pool.stats().pages_live, 1u);
  EXPECT_EQ(page_mappings(pool), 1u);
  EXPECT_EQ(fake_->mappings().size(), 3u);
}

TEST_F(VfioPool, DestroyingAPoolWithDetachedBuffersUnmapsAndFreesThem) {
  std::vector<std::pair<void*, std::size_t>> pages;
  {
    Pool pool = make(kParams, {{kDev0, k64}});
    auto dev = Device::from_vfio(kDev0, pool);
    ASSERT_TRUE(dev);
    for (std::size_t bytes : {std::size_t{4096}, std::size_t{8 * MiB}, std::size_t{64 * KiB}}) {
      auto b = pool.alloc_coherent(*dev, bytes);
      ASSERT_TRUE(b) << b.error().message;
      if (b->served() == Served::pages) pages.emplace_back(b->cpu(), bytes);
      b->detach();  // the C way: the caller owns it now, and forgets it
    }
    ASSERT_EQ(pages.size(), 2u);
    EXPECT_EQ(page_mappings(pool), 2u);
    EXPECT_EQ(pool.stats().pages_live, 2u);
  }
  EXPECT_TRUE(fake_->clean()) << "unmapped (before being freed) with the pool: " << fake_->describe();
  for (const auto& [cpu, bytes] : pages) {
    std::vector<unsigned char> vec(bytes / 4096);
    EXPECT_NE(::mincore(cpu, bytes, vec.data()), 0) << "the page buffer's memory went back to the OS";
  }
}
