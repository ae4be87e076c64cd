// The Pool in vfio mode against the fake VFIO type1 kernel
// (vfio_fake_kernel.hpp, installed with detail::set_vfio_kernel_for_testing),
// with the anon backing over a temporary copy of tests/data/vm1 (one node,
// node 0, like this host: the areas really are mbind-ed to node 0 and
// populated, so they are kept to a few MiB). Devices of the tree:
//   0000:05:00.0  group 10   vfio-pci, node 0
//   0000:06:00.0  group 11   vfio-pci, node 0
//   0000:07:00.0  group 12   vfio-pci, node 0   (attached later)
//   0000:08:00.0  group 13   vfio-pci, numa_node -1
//   0000:09:00.0  group 14   bound to nvme
// What is checked is what the device would see: every DMA address inside a
// mapping of the container, at the CPU address's offset, below the device's
// mask; page buffers mapped exactly while they live; nothing mapped and no fd
// open once a pool is gone or failed to be created.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "pool/pool_impl.hpp"
#include "vfio_fake_kernel.hpp"

using fakevfio::FakeKernel;
using fakevfio::FakeMapping;
using fakevfio::SysfsTree;
using numacma::Device;
using numacma::DmaBuffer;
using numacma::DmaMode;
using numacma::Errc;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Served;
using numacma::VfioDeviceSpec;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * KiB;
constexpr std::uint64_t k64 = ~std::uint64_t{0};
const std::string kDev0 = "0000:05:00.0", kDev1 = "0000:06:00.0", kLate = "0000:07:00.0",
                  kNoNode = "0000:08:00.0", kNvme = "0000:09:00.0";
const std::string kRoot = "/fake/dev/vfio";
const std::string kParams = "cma=4M cma_pernuma=2M";

std::uint64_t mask_of(unsigned bits) { return bits >= 64 ? k64 : (std::uint64_t{1} << bits) - 1; }
bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

const numacma::AreaReport* area(const numacma::Stats& s, const std::string& name) {
  for (const auto& a : s.areas)
    if (a.name == name) return &a;
  return nullptr;
}

void expect_f3(const Pool& pool) {
  for (const auto& a : pool.stats().areas) {
    EXPECT_EQ(a.used, 0u) << a.name;
    EXPECT_EQ(a.maxchunk, a.pages) << a.name;
  }
}

class VfioPool : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = std::make_unique<SysfsTree>();
    tree_->add_device(kDev0, 10);
    tree_->add_device(kDev1, 11);
    tree_->add_device(kLate, 12);
    tree_->add_device(kNoNode, 13, "vfio-pci", -1);
    tree_->add_device(kNvme, 14, "nvme");
    install_fake(kRoot);
  }

  void TearDown() override {
    numacma::detail::set_vfio_kernel_for_testing(nullptr);
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }

  void install_fake(const std::string& root) {
    fake_ = std::make_shared<FakeKernel>(root);
    fake_->add_group(10, {kDev0});
    fake_->add_group(11, {kDev1});
    fake_->add_group(12, {kLate});
    fake_->add_group(13, {kNoNode});
    fake_->add_group(14, {kNvme});
    numacma::detail::set_vfio_kernel_for_testing(fake_);
  }

  PoolOptions options(const std::string& params, std::vector<VfioDeviceSpec> vfio) const {
    PoolOptions o;
    o.params = params;
    o.backing = "anon";
    o.sysfs_root = tree_->root();
    o.vfio = std::move(vfio);
    o.vfio_dev_root = kRoot;
    return o;
  }

  Pool make(const std::string& params, std::vector<VfioDeviceSpec> vfio) {
    auto p = Pool::create(options(params, std::move(vfio)));
    if (!p) throw std::runtime_error("Pool::create: " + p.error().message);
    return std::move(*p);
  }

  /** The buffer is inside one mapping of the container, at the CPU address's offset. */
  void expect_mapped(const DmaBuffer& b) const {
    const FakeMapping m = fake_->mapping_containing(b.dma_addr(), b.pages() * 4096);
    ASSERT_NE(m.bytes, 0u) << "DMA address " << fakevfio::hex(b.dma_addr()) << " is in no mapping: "
                           << fake_->describe();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.cpu()) - m.vaddr, b.dma_addr() - m.iova)
        << "the device would reach other memory than the CPU";
  }

  std::size_t page_mappings(const Pool& pool) const {
    const auto rep = pool.vfio_report();
    return static_cast<std::size_t>(std::count_if(rep.mappings.begin(), rep.mappings.end(),
                                                  [](const numacma::VfioMapping& m) { return m.what == "pages"; }));
  }

  std::unique_ptr<SysfsTree> tree_;
  std::shared_ptr<FakeKernel> fake_;
};

}  // namespace

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

// ---- devices ----------------------------------------------------------------------------------

TEST_F(VfioPool, ADeviceAttachedLaterReachesTheAreasAndGetsPagesBelowItsMask) {
  Pool pool = make(kParams, {{kDev0, k64}});
  const auto areas_before = fake_->mappings();
  ASSERT_EQ(areas_before.size(), 2u);
  // 2 MiB - 1: every area (2 MiB aligned, from 2 MiB up) is above this mask.
  ASSERT_TRUE(pool.vfio_attach({kLate, mask_of(21)})) << fake_->describe();
  EXPECT_NE(fake_->container_of_group(12), -1);
  EXPECT_EQ(fake_->container_of_group(12), fake_->container_of_group(10)) << "the same container";
  EXPECT_EQ(fake_->mappings().size(), 2u) << "nothing mapped again";
  EXPECT_EQ(fake_->map_calls(), 2u);

  auto late = Device::from_vfio(kLate, pool);
  ASSERT_TRUE(late) << late.error().message;
  EXPECT_EQ(late->coherent_dma_mask, mask_of(21));
  EXPECT_EQ(late->node, 0);
  auto b = pool.alloc_coherent(*late, 64 * KiB);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->served(), Served::pages) << "A8: every area is above the mask";
  EXPECT_LE(b->dma_addr() + 64 * KiB - 1, mask_of(21));
  EXPECT_TRUE(fake_->has_mapping(b->dma_addr(), 64 * KiB));
  expect_mapped(*b);
  auto p = pool.alloc_coherent(*late, 4096);
  ASSERT_TRUE(p);
  EXPECT_LE(p->dma_addr() + 4095, mask_of(21));

  // Its IOVA space (1 MiB .. 2 MiB) runs out: the next buffer is refused,
  // never mapped above the mask, and nothing is left mapped for it.
  std::vector<DmaBuffer> fill;
  numacma::Error last{};
  for (int i = 0; i < 64; ++i) {
    auto f = pool.alloc_coherent(*late, 64 * KiB);
    if (!f) {
      last = f.error();
      break;
    }
    EXPECT_LE(f->dma_addr() + 64 * KiB - 1, mask_of(21));
    fill.push_back(std::move(*f));
  }
  EXPECT_GE(fill.size(), 10u);
  EXPECT_LE(fill.size(), 15u) << "1 MiB holds 16 buffers of 64 KiB, two of which are taken";
  EXPECT_EQ(last.code, Errc::no_memory) << last.message;
  EXPECT_TRUE(contains(last.message, "IOVA space exhausted")) << last.message;
  EXPECT_EQ(page_mappings(pool), fill.size() + 2);
  for (const auto& m : fake_->mappings()) {
    const bool is_area = std::any_of(areas_before.begin(), areas_before.end(),
                                     [&](const FakeMapping& a) { return a.iova == m.iova; });
    if (!is_area) {
      EXPECT_LE(m.iova + m.bytes - 1, mask_of(21)) << fakevfio::hex(m.iova);
    }
  }
  fill.clear();

  // The first device still gets area buffers.
  auto d0 = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(d0);
  auto a = pool.alloc_coherent(*d0, 64 * KiB);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->area_name(), "pernuma0");

  EXPECT_EQ(pool.vfio_attach({kLate, k64}).error().code, Errc::invalid_argument) << "twice";
  auto unbound = pool.vfio_attach({kNvme, k64});
  ASSERT_FALSE(unbound);
  EXPECT_EQ(unbound.error().code, Errc::unsupported);
  EXPECT_TRUE(contains(unbound.error().message, "numacma vfio bind " + kNvme));
  EXPECT_FALSE(fake_->group_open(14));
  EXPECT_EQ(pool.vfio_report().devices.size(), 2u);
}

TEST_F(VfioPool, VfioAttachNeedsAPoolInVfioMode) {
  PoolOptions o;
  o.params = "cma=4M";
  o.backing = "sim";
  o.sysfs_root = tree_->root();
  auto p = Pool::create(o);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_NE(p->dma_mode(), "vfio");
  EXPECT_EQ(p->vfio_attach({kDev0, k64}).error().code, Errc::invalid_argument);
  EXPECT_EQ(p->vfio_device(kDev0).error().code, Errc::not_found);
  EXPECT_EQ(Device::from_vfio(kDev0, *p).error().code, Errc::not_found);
  const auto rep = p->vfio_report();
  EXPECT_FALSE(rep.enabled);
  EXPECT_EQ(rep.dma_avail, -1);
  EXPECT_TRUE(rep.mappings.empty());
  EXPECT_TRUE(fake_->calls().empty());
}

TEST_F(VfioPool, DeviceFromVfioHasTheNodeAndTheDeclaredMask) {
  Pool pool = make("", {{kDev0, mask_of(48)}, {kNoNode, mask_of(32)}});
  auto d = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->name, kDev0);
  EXPECT_EQ(d->node, 0);
  EXPECT_EQ(d->coherent_dma_mask, mask_of(48));
  EXPECT_TRUE(d->area.empty());
  auto n = Device::from_vfio(kNoNode, pool);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->node, numacma::kNoNode);
  EXPECT_EQ(n->coherent_dma_mask, mask_of(32));
  auto none = Device::from_vfio(kLate, pool);
  ASSERT_FALSE(none) << "present in sysfs but not attached";
  EXPECT_EQ(none.error().code, Errc::not_found);
  auto h = pool.vfio_device(kDev0);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->bdf(), kDev0);
  auto hd = h->device();
  ASSERT_TRUE(hd);
  EXPECT_EQ(hd->coherent_dma_mask, mask_of(48));
  EXPECT_EQ(pool.vfio_device(kLate).error().code, Errc::not_found);
  EXPECT_EQ(numacma::VfioDevice().read32(0, 0).error().code, Errc::invalid_argument) << "an empty handle";
}

TEST_F(VfioPool, ShortBdfsNameTheSameDevicesEverywhere) {
  // lspci's "05:00.0" is domain 0000: PoolOptions::vfio, vfio_attach,
  // from_vfio, from_pci, vfio_device and the C API all take it and name the
  // device in the long form sysfs uses.
  Pool pool = make("", {{"05:00.0", mask_of(48)}});
  EXPECT_EQ(pool.vfio_report().devices.at(0).bdf, kDev0);
  for (const std::string& b : {std::string("05:00.0"), kDev0}) {
    auto d = Device::from_vfio(b, pool);
    ASSERT_TRUE(d) << b << ": " << d.error().message;
    EXPECT_EQ(d->name, kDev0);
    EXPECT_EQ(d->coherent_dma_mask, mask_of(48));
    auto p = Device::from_pci(b, pool);
    ASSERT_TRUE(p) << b << ": " << p.error().message;
    EXPECT_EQ(p->name, kDev0);
    auto h = pool.vfio_device(b);
    ASSERT_TRUE(h) << b;
    EXPECT_EQ(h->bdf(), kDev0);
  }
  EXPECT_TRUE(pool.vfio_attach({"07:00.0", mask_of(40)}).ok());
  EXPECT_EQ(pool.vfio_attach({kLate, mask_of(40)}).error().code, Errc::invalid_argument) << "twice";
  EXPECT_EQ(Device::from_vfio("07:00.0", pool)->name, kLate);
  EXPECT_EQ(Device::from_vfio("5:00.0", pool).error().code, Errc::not_found);
  // Given twice in two spellings: refused as twice.
  auto twice = Pool::create(options("", {{kDev1, k64}, {"06:00.0", k64}}));
  ASSERT_FALSE(twice);
  EXPECT_TRUE(contains(twice.error().message, "0000:06:00.0 listed twice")) << twice.error().message;
  auto bad = Pool::create(options("", {{"6:00.0", k64}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(bad.error().message, "DDDD:BB:DD.F")) << bad.error().message;
}

TEST_F(VfioPool, ShortBdfsInTheCApi) {
  install_fake("/dev/vfio");  // the C options have no dev root: the default one
  const std::string root = tree_->root();
  const ncma_vfio_device_spec specs[] = {{"05:00.0", 0}};
  ncma_pool_options opt{"anon", "kernel", root.c_str(), specs, 1};
  ncma_pool* pool = ncma_pool_create("", &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  ncma_device* dev = ncma_device_vfio(pool, "05:00.0");
  ASSERT_NE(dev, nullptr) << ncma_last_error_message();
  ncma_device_destroy(dev);
  ncma_device* pci = ncma_device_pci(pool, "05:00.0");
  ASSERT_NE(pci, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_device_get_node(pci), 0);
  ncma_device_destroy(pci);
  std::uint32_t v = 0;
  EXPECT_EQ(ncma_vfio_config_read(pool, "05:00.0", 0, &v, 4), NCMA_OK) << ncma_last_error_message();
  EXPECT_EQ(v & 0xffff, fakevfio::kVendor);
  EXPECT_EQ(ncma_vfio_attach(pool, "06:00.0", 0), NCMA_OK) << ncma_last_error_message();
  EXPECT_EQ(ncma_vfio_attach(pool, kDev1.c_str(), 0), NCMA_EINVAL) << "twice";
  ncma_pool_destroy(pool);
}

TEST_F(VfioPool, VfioReportSaysWhatTheContainerHolds) {
  Pool pool = make(kParams, {{kDev0, k64}, {kDev1, mask_of(40)}});
  auto dev = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(dev);
  auto page = pool.alloc_coherent(*dev, 4096);
  ASSERT_TRUE(page);
  const auto rep = pool.vfio_report();
  EXPECT_TRUE(rep.enabled);
  EXPECT_EQ(rep.iova_pgsizes, fakevfio::kPgsizes);
  EXPECT_EQ(rep.dma_avail, 65535 - 3);
  ASSERT_FALSE(rep.iova_ranges.empty());
  EXPECT_EQ(rep.iova_ranges.front().first, numacma::vfio::kIovaFloor);
  EXPECT_EQ(rep.iova_ranges.back().second, (1ULL << 39) - 1);
  for (const auto& [first, last] : rep.iova_ranges)
    EXPECT_TRUE(last < fakevfio::kMsiFirst || first > fakevfio::kMsiLast) << "MSI window left out";
  ASSERT_EQ(rep.devices.size(), 2u);
  EXPECT_EQ(rep.devices[0].bdf, kDev0);
  EXPECT_EQ(rep.devices[0].iommu_group, 10);
  EXPECT_EQ(rep.devices[0].node, 0);
  EXPECT_EQ(rep.devices[0].dma_mask, k64);
  EXPECT_EQ(rep.devices[1].bdf, kDev1);
  EXPECT_EQ(rep.devices[1].iommu_group, 11);
  EXPECT_EQ(rep.devices[1].dma_mask, mask_of(40));
  ASSERT_EQ(rep.mappings.size(), 3u);
  EXPECT_NE(rep.mappings[0].what, "pages") << "areas first";
  EXPECT_NE(rep.mappings[1].what, "pages");
  EXPECT_EQ(rep.mappings[2].what, "pages");
  EXPECT_EQ(rep.mappings[2].iova, page->dma_addr());
  EXPECT_EQ(rep.mappings[2].bytes, 4096u);
}

TEST_F(VfioPool, RegistersThroughTheVfioDeviceHandle) {
  Pool pool = make("", {{kDev0, k64}});
  auto h = pool.vfio_device(kDev0);
  ASSERT_TRUE(h);
  auto size = h->bar_size(0);
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, fakevfio::kBar0Bytes);
  ASSERT_TRUE(h->write32(0, 0x14, 0x00460001));
  auto v = h->read32(0, 0x14);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x00460001u);
  EXPECT_EQ(fake_->bar0(kDev0)[0x16], 0x46);
  ASSERT_TRUE(h->write64(0, 0x28, 0x1122334455667788ULL));
  EXPECT_EQ(*h->read64(0, 0x28), 0x1122334455667788ULL);
  std::uint16_t vendor = 0;
  ASSERT_TRUE(h->config_read(0, &vendor, 2));
  EXPECT_EQ(vendor, fakevfio::kVendor);
  ASSERT_TRUE(h->enable_bus_master());
  EXPECT_EQ(fake_->config(kDev0)[4] & 0x6, 0x6) << "memory space and bus master";
  EXPECT_EQ(h->bar_size(3).error().code, Errc::not_found);
}

// ---- the C API ------------------------------------------------------------------------------------

TEST_F(VfioPool, CApi) {
  install_fake("/dev/vfio");  // the C options have no dev root: the default one
  const std::string root = tree_->root();
  const ncma_vfio_device_spec specs[] = {{kDev0.c_str(), 0}, {kDev1.c_str(), mask_of(28)}};
  ncma_pool_options opt{"anon", "kernel", root.c_str(), specs, 2};
  ncma_pool* pool = ncma_pool_create(kParams.c_str(), &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  EXPECT_EQ(fake_->mappings().size(), 2u);

  ncma_device* dev = ncma_device_vfio(pool, kDev1.c_str());
  ASSERT_NE(dev, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_device_get_node(dev), 0);
  std::uint64_t dma = 0;
  void* cpu = ncma_alloc_coherent(pool, dev, 64 * KiB, &dma);
  ASSERT_NE(cpu, nullptr) << ncma_last_error_message();
  EXPECT_LE(dma + 64 * KiB - 1, mask_of(28));
  const FakeMapping m = fake_->mapping_containing(dma, 64 * KiB);
  ASSERT_NE(m.bytes, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(cpu) - m.vaddr, dma - m.iova);
  void* page = ncma_alloc_coherent(pool, dev, 4096, &dma);
  ASSERT_NE(page, nullptr);
  EXPECT_TRUE(fake_->has_mapping(dma, 4096));
  EXPECT_EQ(ncma_free_coherent(pool, dev, 4096, page, dma + 4096), NCMA_EBADFREE);
  EXPECT_EQ(ncma_free_coherent(pool, dev, 4096, page, dma), NCMA_OK);
  EXPECT_FALSE(fake_->has_mapping(dma, 4096));
  ncma_device_destroy(dev);

  // mask 0 means 64 bits: an 8 MiB page buffer (larger than any area) is
  // mapped for it wherever the IOVA space has room.
  ncma_device* d0 = ncma_device_vfio(pool, kDev0.c_str());
  ASSERT_NE(d0, nullptr) << ncma_last_error_message();
  void* big = ncma_alloc_coherent(pool, d0, 8 * MiB, &dma);
  ASSERT_NE(big, nullptr) << ncma_last_error_message();
  EXPECT_TRUE(fake_->has_mapping(dma, 8 * MiB));
  EXPECT_EQ(ncma_free_coherent(pool, d0, 8 * MiB, big, dma), NCMA_OK);
  ncma_device_destroy(d0);

  EXPECT_EQ(ncma_vfio_attach(pool, kLate.c_str(), mask_of(21)), NCMA_OK) << ncma_last_error_message();
  EXPECT_EQ(fake_->container_of_group(12), fake_->container_of_group(10));
  ncma_device* late = ncma_device_vfio(pool, kLate.c_str());
  ASSERT_NE(late, nullptr) << ncma_last_error_message();
  void* low = ncma_alloc_coherent(pool, late, 64 * KiB, &dma);
  ASSERT_NE(low, nullptr) << ncma_last_error_message();
  EXPECT_LE(dma + 64 * KiB - 1, mask_of(21)) << "the mask given to ncma_vfio_attach";
  EXPECT_EQ(ncma_free_coherent(pool, late, 64 * KiB, low, dma), NCMA_OK);
  ncma_device_destroy(late);
  EXPECT_EQ(ncma_vfio_attach(pool, kLate.c_str(), 0), NCMA_EINVAL) << "twice";
  EXPECT_EQ(ncma_vfio_attach(pool, kNvme.c_str(), 0), NCMA_EUNSUPPORTED);
  EXPECT_NE(std::string(ncma_last_error_message()).find("numacma vfio bind"), std::string::npos);
  EXPECT_EQ(ncma_vfio_attach(pool, nullptr, 0), NCMA_EINVAL);

  EXPECT_EQ(ncma_vfio_bar_write32(pool, kDev0.c_str(), 0, 0x10, 0xabcd1234u), NCMA_OK);
  std::uint32_t v = 0;
  EXPECT_EQ(ncma_vfio_bar_read32(pool, kDev0.c_str(), 0, 0x10, &v), NCMA_OK);
  EXPECT_EQ(v, 0xabcd1234u);
  EXPECT_EQ(fake_->bar0(kDev0)[0x13], 0xab);
  EXPECT_EQ(ncma_vfio_bar_read32(pool, kDev0.c_str(), 0, 0x11, &v), NCMA_EINVAL) << "misaligned";
  EXPECT_EQ(ncma_vfio_bar_read32(pool, kDev0.c_str(), 4, 0, &v), NCMA_ENOENT) << "no BAR 4";
  EXPECT_EQ(ncma_vfio_bar_write32(pool, kDev0.c_str(), 2, 0x4, 0x5a5a5a5au), NCMA_OK);
  EXPECT_EQ(fake_->bar2(kDev0)[0x4], 0x5a) << "BAR2, through pwrite at its region offset";
  std::uint64_t v64 = 0;
  EXPECT_EQ(ncma_vfio_bar_write64(pool, kDev0.c_str(), 0, 0x30, 0x0102030405060708ULL), NCMA_OK);
  EXPECT_EQ(ncma_vfio_bar_read64(pool, kDev0.c_str(), 0, 0x30, &v64), NCMA_OK);
  EXPECT_EQ(v64, 0x0102030405060708ULL);
  std::uint16_t ids[2] = {0, 0};
  EXPECT_EQ(ncma_vfio_config_read(pool, kDev0.c_str(), 0, ids, 4), NCMA_OK);
  EXPECT_EQ(ids[0], fakevfio::kVendor);
  EXPECT_EQ(ids[1], fakevfio::kDeviceId);
  EXPECT_EQ(ncma_vfio_enable_bus_master(pool, kLate.c_str()), NCMA_OK);
  EXPECT_EQ(fake_->config(kLate)[4] & 0x6, 0x6);
  EXPECT_EQ(ncma_vfio_bar_read32(pool, "0000:0f:00.0", 0, 0, &v), NCMA_ENOENT);
  EXPECT_EQ(ncma_device_vfio(pool, "0000:0f:00.0"), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_ENOENT);
  ncma_pool_destroy(pool);
  EXPECT_TRUE(fake_->clean()) << fake_->describe();

  // Options errors; a pool that cannot be made.
  opt.vfio = nullptr;
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  const ncma_vfio_device_spec null_bdf[] = {{nullptr, 0}};
  opt.vfio = null_bdf;
  opt.n_vfio = 1;
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  const ncma_vfio_device_spec unbound[] = {{kNvme.c_str(), 0}};
  opt.vfio = unbound;
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EUNSUPPORTED);
  EXPECT_TRUE(fake_->clean()) << fake_->describe();

  // A pool without VFIO: the VFIO calls say so.
  ncma_pool_options plain{"sim", "kernel", root.c_str(), nullptr, 0};
  ncma_pool* sim = ncma_pool_create("cma=4M", &plain);
  ASSERT_NE(sim, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_vfio_attach(sim, kDev0.c_str(), 0), NCMA_EINVAL);
  EXPECT_EQ(ncma_device_vfio(sim, kDev0.c_str()), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_bar_read32(sim, kDev0.c_str(), 0, 0, &v), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_bar_write32(sim, kDev0.c_str(), 0, 0, 1), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_config_read(sim, kDev0.c_str(), 0, ids, 2), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_enable_bus_master(sim, kDev0.c_str()), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_bar_read32(nullptr, kDev0.c_str(), 0, 0, &v), NCMA_EINVAL);
  ncma_pool_destroy(sim);
}

// ---- concurrency (TSan) -------------------------------------------------------------------------

TEST_F(VfioPool, ThreadsAllocatingAndFreeingPageAndAreaBuffers) {
  Pool pool = make("cma=4M cma_pernuma=4M", {{kDev0, k64}});
  // Areas are mapped from 2 MiB up: a device with a 21-bit mask gets every
  // multi-page buffer from pages, mapped below 2 MiB.
  ASSERT_TRUE(pool.vfio_attach({kLate, mask_of(21)}));
  auto wide = Device::from_vfio(kDev0, pool);
  auto narrow = Device::from_vfio(kLate, pool);
  ASSERT_TRUE(wide && narrow);
  const std::int64_t avail0 = fake_->dma_avail();
  const std::size_t areas = fake_->mappings().size();

  constexpr int kThreads = 4, kRounds = 300;
  std::atomic<int> failures{0}, served_pages{0}, served_area{0};
  std::vector<std::string> errors(kThreads);
  auto worker = [&](int t) {
    std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
    std::vector<std::pair<DmaBuffer, std::uint64_t>> live;  // buffer, stamp
    for (int i = 0; i < kRounds; ++i) {
      const bool use_narrow = rng() % 3 == 0;
      const Device& d = use_narrow ? *narrow : *wide;
      static constexpr std::size_t kSizes[] = {4096, 8192, 16 * 1024, 64 * 1024};
      const std::size_t bytes = kSizes[rng() % 4];
      auto b = pool.alloc_coherent(d, bytes);
      if (!b) {
        // The narrow device has 1 MiB of IOVA space; anything else is a bug.
        if (!(use_narrow && b.error().code == Errc::no_memory)) {
          errors[static_cast<std::size_t>(t)] = b.error().message;
          ++failures;
        }
      } else {
        if (b->dma_addr() + bytes - 1 > d.coherent_dma_mask || !b->contiguous()) ++failures;
        (b->served() == Served::pages ? served_pages : served_area)++;
        const std::uint64_t stamp = (static_cast<std::uint64_t>(t) << 32) | static_cast<std::uint64_t>(i);
        std::memcpy(b->cpu(), &stamp, sizeof stamp);
        std::memcpy(static_cast<char*>(b->cpu()) + bytes - sizeof stamp, &stamp, sizeof stamp);
        live.emplace_back(std::move(*b), stamp);
      }
      if (live.size() > 6 || (!live.empty() && rng() % 2 == 0)) {
        const std::size_t k = rng() % live.size();
        auto& [buf, stamp] = live[k];
        std::uint64_t head = 0, tail = 0;
        std::memcpy(&head, buf.cpu(), sizeof head);
        std::memcpy(&tail, static_cast<char*>(buf.cpu()) + buf.size() - sizeof tail, sizeof tail);
        if (head != stamp || tail != stamp) ++failures;  // two live buffers shared memory
        if (!buf.release()) ++failures;
        live.erase(live.begin() + static_cast<long>(k));
      }
    }
    for (auto& [buf, stamp] : live)
      if (!buf.release()) ++failures;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  // Meanwhile a device joins the container, and the reports are read.
  std::string attach_error;
  std::thread side([&] {
    for (int i = 0; i < 20; ++i) {
      if (i == 5) {
        if (auto s = pool.vfio_attach({kDev1, k64}); !s) attach_error = s.error().message;
      }
      const auto rep = pool.vfio_report();
      if (rep.mappings.size() < areas) ++failures;
      (void)pool.stats();
      std::this_thread::yield();
    }
  });
  for (auto& th : threads) th.join();
  side.join();
  EXPECT_TRUE(attach_error.empty()) << attach_error;
  EXPECT_EQ(pool.vfio_report().devices.size(), 3u);
  for (const auto& e : errors) EXPECT_TRUE(e.empty()) << e;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(served_pages.load(), 0);
  EXPECT_GT(served_area.load(), 0);
  EXPECT_EQ(page_mappings(pool), 0u) << "no page buffer left mapped";
  EXPECT_EQ(fake_->mappings().size(), areas);
  EXPECT_EQ(fake_->dma_avail(), avail0);
  EXPECT_EQ(pool.stats().pages_live, 0u);
  expect_f3(pool);
}
