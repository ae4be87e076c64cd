// Pins every rule of docs/semantics.md (A1-A9, F1-F3, R3-R4) on the Pool, using the
// sim backing over the 4-node ARM64 fixture (tests/data/arm64-4n):
//   distances  10 12 20 22 / 12 10 22 24 / 20 22 10 12 / 22 24 12 10
//   so from node 2 the nearest other node is 3 (12), then 0 (20), then 1 (22).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "numacma/numacma.hpp"

using numacma::Device;
using numacma::DmaBuffer;
using numacma::Errc;
using numacma::Policy;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Served;

namespace {

constexpr std::size_t K = 1024, M = 1024 * 1024;

std::string fixture(const char* name) { return std::string(NUMACMA_TEST_DATA) + "/" + name; }

Pool make_pool(const std::string& params, Policy policy = Policy::kernel,
               std::vector<numacma::DeviceAreaSpec> dev_areas = {}, unsigned fail_nth = 0,
               numacma::Arch arch = numacma::Arch::x86_64) {
  PoolOptions o;
  o.params = params;
  o.arch = arch;  // the same placement (R5) on every host
  o.backing = "sim";
  o.policy = policy;
  o.sysfs_root = fixture("arm64-4n");
  o.device_areas = std::move(dev_areas);
  o.sim_fail_nth_reservation = fail_nth;
  auto p = Pool::create(o);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return std::move(p).value();
}

const numacma::AreaReport* area(const numacma::Stats& s, const std::string& name) {
  for (const auto& a : s.areas)
    if (a.name == name) return &a;
  return nullptr;
}

const numacma::NodeReport* node(const numacma::Stats& s, int n) {
  for (const auto& r : s.nodes)
    if (r.node == n) return &r;
  return nullptr;
}

void expect_f3(const Pool& pool) {
  for (const auto& a : pool.stats().areas) {
    EXPECT_EQ(a.used, 0u) << a.name;
    if (a.segments == 1) {
      EXPECT_EQ(a.maxchunk, a.pages) << a.name;
    }
  }
}

}  // namespace

TEST(PoolSemantics, A1_SizeZeroIsEinvalAndSizesRoundUpToPages) {
  Pool pool = make_pool("cma=16M cma_pernuma=8M");
  auto dev = Device::on_node(2, "d");
  auto z = pool.alloc_coherent(dev, 0);
  ASSERT_FALSE(z.ok());
  EXPECT_EQ(z.error().code, Errc::invalid_argument);
  auto b = pool.alloc_coherent(dev, 4097);  // 2 pages
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->pages(), 2u);
  EXPECT_EQ(pool.stats().areas.size(), 5u);
  EXPECT_EQ(area(pool.stats(), "pernuma2")->used, 2u);
}

TEST(PoolSemantics, A2_DeviceAreaIsExclusive) {
  Pool pool = make_pool("cma=16M cma_pernuma=8M", Policy::kernel, {{"smmu", 2, 64 * K}});
  Device dev = Device::on_node(2, "smmu");
  dev.area = "smmu";
  auto a = pool.alloc_coherent(dev, 64 * K);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->area_name(), "smmu");
  EXPECT_EQ(a->served(), Served::local);
  auto one = pool.alloc_coherent(dev, 4 * K);  // full: even one page does not go elsewhere
  ASSERT_FALSE(one.ok());
  EXPECT_EQ(one.error().code, Errc::no_memory);
  EXPECT_EQ(area(pool.stats(), "pernuma2")->used, 0u);
  EXPECT_EQ(area(pool.stats(), "reserved")->used, 0u);
  Device ghost = Device::on_node(2, "ghost");
  ghost.area = "ghost";
  auto g = pool.alloc_coherent(ghost, 64 * K);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code, Errc::not_found);
}

TEST(PoolSemantics, A3_SinglePageGoesToPagesOnTheNode) {
  Pool pool = make_pool("cma=16M cma_pernuma=8M");
  auto b = pool.alloc_coherent(Device::on_node(1, "d"), 4 * K);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->area_name(), "pages");
  EXPECT_EQ(b->node(), 1);
  EXPECT_FALSE(b->fallback());
  for (const auto& a : pool.stats().areas) EXPECT_EQ(a.used, 0u) << a.name;
}

TEST(PoolSemantics, A3_FreedPagesAreReusedOnlyWithinTheDevicesMask) {
  // A freed single page is kept for its node's next A3 request, but only a
  // device that can reach it gets it (sim pages carve down from the top of
  // node 1's window, [64G, 128G)).
  Pool pool = make_pool("cma=16M cma_pernuma=8M");
  const auto dev = Device::on_node(1, "d");
  auto a = pool.alloc_coherent(dev, 4 * K).value();
  void* const cpu = a.cpu();
  const std::uint64_t dma = a.dma_addr();
  ASSERT_TRUE(a.release().ok());
  const auto low = Device::on_node(1, "low", dma + 4094);  // one byte short of the kept page
  auto b = pool.alloc_coherent(low, 4 * K).value();
  EXPECT_NE(b.dma_addr(), dma);
  EXPECT_LE(b.dma_addr() + 4095, dma + 4094);
  auto c = pool.alloc_coherent(dev, 4 * K).value();  // the kept page, still there
  EXPECT_EQ(c.cpu(), cpu);
  EXPECT_EQ(c.dma_addr(), dma);
  EXPECT_EQ(pool.stats().pages_live, 2u);
  // F2 on a pages buffer: the wrong DMA address is refused and frees nothing.
  EXPECT_EQ(pool.free_coherent(dev, 4 * K, c.cpu(), c.dma_addr() + 4096).error().code, Errc::bad_free);
  EXPECT_EQ(pool.stats().pages_live, 2u);
  ASSERT_TRUE(c.release().ok());
  ASSERT_TRUE(b.release().ok());
  EXPECT_EQ(pool.stats().pages_live, 0u);
  EXPECT_EQ(pool.stats().bad_frees, 1u);
}

TEST(PoolSemantics, A7_PageBlocksComeAndGoBeyondThePageCache) {
  // More single pages than a node keeps after free (4096), and multi-page
  // blocks that are never kept, freed and allocated in turns: every buffer
  // distinct while live, every free accepted once, nothing left live.
  Pool pool = make_pool("");  // no areas: every multi-page block is A7 pages
  const auto dev = Device::on_node(2, "d");
  for (int turn = 0; turn < 2; ++turn) {
    std::vector<DmaBuffer> live;
    for (int i = 0; i < 4200; ++i) live.push_back(pool.alloc_coherent(dev, 4 * K).value());
    for (int i = 0; i < 8; ++i) live.push_back(pool.alloc_coherent(dev, 2 * M).value());  // A7
    EXPECT_EQ(live.back().area_name(), "pages");
    EXPECT_EQ(pool.stats().pages_live, 4208u);
    std::vector<std::uint64_t> dmas;
    for (const DmaBuffer& b : live) dmas.push_back(b.dma_addr());
    std::sort(dmas.begin(), dmas.end());
    EXPECT_EQ(std::adjacent_find(dmas.begin(), dmas.end()), dmas.end()) << "turn " << turn;
    for (std::size_t i = 0; i < live.size(); i += 2) ASSERT_TRUE(live[i].release().ok());
    EXPECT_EQ(pool.stats().pages_live, 2104u);
    live.clear();  // the rest
    EXPECT_EQ(pool.stats().pages_live, 0u);
  }
  EXPECT_EQ(pool.stats().bad_frees, 0u);
}

TEST(PoolSemantics, A4_PernumaThenNumaThenA5Reserved) {
  Pool pool = make_pool("cma=16M cma_pernuma=2M numa_cma=2:2M");
  auto dev = Device::on_node(2, "d");
  auto a = pool.alloc_coherent(dev, 2 * M);
  auto b = pool.alloc_coherent(dev, 2 * M);
  auto c = pool.alloc_coherent(dev, 2 * M);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->area_name(), "pernuma2");
  EXPECT_EQ(b->area_name(), "numa2");
  EXPECT_EQ(c->area_name(), "reserved");
  EXPECT_EQ(a->served(), Served::local);
  EXPECT_EQ(b->served(), Served::local);
  EXPECT_EQ(c->served(), Served::default_area);
  EXPECT_TRUE(c->fallback());
  EXPECT_EQ(a->node(), 2);
  // R5: x86-64 reserves the default area bottom-up from 4 GiB when memory
  // reaches that far: node 0 of this fixture.
  EXPECT_EQ(c->node(), 0);
}

TEST(PoolSemantics, A4_NoNodeAndLowZoneMasksSkipPerNodeAreas) {
  // arm64 reserves the default area below 4 GiB (R5), so a 32-bit device reaches it.
  Pool pool = make_pool("cma=16M cma_pernuma=8M", Policy::kernel, {}, 0, numacma::Arch::arm64);
  auto none = pool.alloc_coherent(Device::on_node(numacma::kNoNode, "d"), 64 * K);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->area_name(), "reserved");
  auto dma32 = pool.alloc_coherent(Device::on_node(2, "d32", 0xffffffffULL), 64 * K);
  ASSERT_TRUE(dma32.ok());
  EXPECT_EQ(dma32->area_name(), "reserved");  // GFP_DMA32 request: not the per-node area
  auto dma64 = pool.alloc_coherent(Device::on_node(2, "d64", (1ULL << 40) - 1), 64 * K);
  ASSERT_TRUE(dma64.ok());
  EXPECT_EQ(dma64->area_name(), "pernuma2");
}

TEST(PoolSemantics, A5_KernelPolicySkipsOtherNodes_NearestTakesThemByDistance) {
  for (Policy policy : {Policy::kernel, Policy::nearest}) {
    Pool pool = make_pool("cma=16M cma_pernuma=2M", policy);
    auto dev = Device::on_node(2, "d");
    std::vector<DmaBuffer> live;
    std::vector<std::string> where;
    for (int i = 0; i < 5; ++i) {
      auto b = pool.alloc_coherent(dev, 2 * M);
      ASSERT_TRUE(b.ok()) << b.error().message;
      where.push_back(b->area_name());
      live.push_back(std::move(*b));
    }
    if (policy == Policy::kernel) {
      EXPECT_EQ(where, (std::vector<std::string>{"pernuma2", "reserved", "reserved", "reserved",
                                                 "reserved"}));
    } else {  // node 3 (12), node 0 (20), node 1 (22), then the default area
      EXPECT_EQ(where, (std::vector<std::string>{"pernuma2", "pernuma3", "pernuma0", "pernuma1",
                                                 "reserved"}));
      EXPECT_EQ(node(pool.stats(), 2)->other_node, 3u);
    }
  }
}

TEST(PoolSemantics, A6_AlignmentInDmaSpaceCappedAtOrder8) {
  Pool pool = make_pool("cma_pernuma=64M");
  auto dev = Device::on_node(0, "d");
  std::vector<DmaBuffer> live;
  for (std::size_t pages : {2u, 3u, 5u, 17u, 300u, 1024u}) {
    auto pad = pool.alloc_coherent(dev, 2 * 4 * K);  // misalign the next search start
    auto b = pool.alloc_coherent(dev, pages * 4 * K);
    ASSERT_TRUE(b.ok() && pad.ok());
    unsigned order = 0;
    while ((1u << order) < pages) ++order;
    const std::uint64_t align = 4096ULL << std::min(order, 8u);
    EXPECT_EQ(b->dma_addr() % align, 0u) << pages << " pages";
    live.push_back(std::move(*pad));
    live.push_back(std::move(*b));
  }
}

TEST(PoolSemantics, A7_AllAreasFullThenPagesOnTheNode) {
  Pool pool = make_pool("cma=2M cma_pernuma=2M");
  auto dev = Device::on_node(2, "d");
  auto a = pool.alloc_coherent(dev, 2 * M);
  auto b = pool.alloc_coherent(dev, 2 * M);
  auto c = pool.alloc_coherent(dev, 2 * M);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->area_name(), "pernuma2");
  EXPECT_EQ(b->area_name(), "reserved");
  EXPECT_EQ(c->area_name(), "pages");
  EXPECT_EQ(c->node(), 2);
  EXPECT_TRUE(c->contiguous());  // the sim simulates the kernel's contiguous pages
  EXPECT_EQ(node(pool.stats(), 2)->pages, 1u);
  EXPECT_EQ(pool.stats().pages_live, 1u);
  // b and c each failed on pernuma2 first; c also failed on reserved.
  EXPECT_EQ(area(pool.stats(), "pernuma2")->alloc_pages_fail, 1024u);
  EXPECT_EQ(area(pool.stats(), "reserved")->alloc_pages_fail, 512u);
}

TEST(PoolSemantics, A5_A7_RequestLargerThanAnAreaIsNotCountedThere) {
  // __cma_alloc returns before its accounting when the request has more
  // bitmap bits than the area: no alloc_pages_fail for that area.
  Pool pool = make_pool("cma=8M cma_pernuma=2M");
  auto dev = Device::on_node(2, "d");
  auto big = pool.alloc_coherent(dev, 4 * M);  // > pernuma2: straight on to reserved
  ASSERT_TRUE(big.ok()) << big.error().message;
  EXPECT_EQ(big->area_name(), "reserved");
  EXPECT_EQ(area(pool.stats(), "pernuma2")->alloc_pages_fail, 0u);
  (void)pool.alloc_coherent(dev, 16 * M);  // larger than every area: on to pages
  EXPECT_EQ(area(pool.stats(), "pernuma2")->alloc_pages_fail, 0u);
  EXPECT_EQ(area(pool.stats(), "reserved")->alloc_pages_fail, 0u);
  auto a = pool.alloc_coherent(dev, 2 * M);  // the whole of pernuma2
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->area_name(), "pernuma2");
  auto b = pool.alloc_coherent(dev, 2 * M);  // fits pernuma2's bitmap, no room: counted
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->area_name(), "reserved");
  EXPECT_EQ(area(pool.stats(), "pernuma2")->alloc_pages_fail, 512u);
}

TEST(PoolSemantics, A8_DmaMaskSkipsUnreachableAreasAndFailsClearly) {
  // arm64: the default area below 4 GiB (node 0); pernuma2 at 128 GiB.
  Pool pool = make_pool("cma=16M cma_pernuma=8M", Policy::kernel, {}, 0, numacma::Arch::arm64);
  // A 33-bit device on node 2 (not a low-zone request): pernuma2 lies far
  // above 8 GiB and is skipped; reserved is low.
  auto dev = Device::on_node(2, "dev33", (1ULL << 33) - 1);
  auto b = pool.alloc_coherent(dev, 64 * K);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->area_name(), "reserved");
  EXPECT_LE(b->dma_addr() + b->size() - 1, (1ULL << 33) - 1);
  auto tiny = Device::on_node(2, "tiny", (1ULL << 12) - 1);  // nothing is below 4 KiB
  auto t = pool.alloc_coherent(tiny, 64 * K);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::unreachable) << t.error().message;
  // A device with a 40-bit mask on node 3 reaches pernuma3 in part only: the
  // buffer must still end below the mask.
  auto mid = Device::on_node(3, "mid", (3ULL * 64 << 30) + (4 << 20) - 1);
  auto m = pool.alloc_coherent(mid, 1 * M);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_LE(m->dma_addr() + m->size() - 1, mid.coherent_dma_mask);
}

TEST(PoolSemantics, A9_EveryOutcomeIsCountedPerNode) {
  Pool pool = make_pool("cma=2M cma_pernuma=2M");
  auto dev = Device::on_node(1, "d");
  std::vector<DmaBuffer> live;
  for (int i = 0; i < 3; ++i) live.push_back(std::move(pool.alloc_coherent(dev, 2 * M).value()));
  live.push_back(std::move(pool.alloc_coherent(dev, 4 * K).value()));
  EXPECT_FALSE(pool.alloc_coherent(dev, 0).ok());
  const numacma::Stats st = pool.stats();  // keep it alive: node() points into it
  const auto* n = node(st, 1);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->local, 1u);
  EXPECT_EQ(n->default_area, 1u);
  EXPECT_EQ(n->pages, 2u);
  EXPECT_EQ(n->failed, 1u);
}

TEST(PoolSemantics, F1_EveryBufferGoesBackToItsOwnArea) {
  Pool pool = make_pool("cma=2M cma_pernuma=2M numa_cma=2:2M");
  auto dev = Device::on_node(2, "d");
  auto a = pool.alloc_coherent(dev, 2 * M).value();
  auto b = pool.alloc_coherent(dev, 2 * M).value();
  auto c = pool.alloc_coherent(dev, 2 * M).value();
  auto d = pool.alloc_coherent(dev, 2 * M).value();
  EXPECT_EQ(d.area_name(), "pages");
  // Free through the kernel-style call (F1 finds the owner by address), in
  // another order than allocated.
  for (DmaBuffer* x : {&c, &a, &d, &b}) {
    void* cpu = x->cpu();
    const auto dma = x->dma_addr();
    const auto size = x->size();
    x->detach();
    ASSERT_TRUE(pool.free_coherent(dev, size, cpu, dma).ok());
  }
  const auto st = pool.stats();
  for (const char* name : {"pernuma2", "numa2", "reserved"}) {
    EXPECT_EQ(area(st, name)->release_pages_success, 512u) << name;
    EXPECT_EQ(area(st, name)->used, 0u) << name;
  }
  EXPECT_EQ(st.pages_live, 0u);
  EXPECT_EQ(st.bad_frees, 0u);
}

TEST(PoolSemantics, F2_BadFreesAreDetectedAndCorruptNothing) {
  Pool pool = make_pool("cma=16M cma_pernuma=8M");
  auto dev = Device::on_node(2, "d");
  auto b = pool.alloc_coherent(dev, 64 * K).value();
  auto p = pool.alloc_coherent(dev, 4 * K).value();  // pages
  int foreign = 0;
  EXPECT_EQ(pool.free_coherent(dev, 64 * K, &foreign, 0).error().code, Errc::bad_free);
  EXPECT_EQ(pool.free_coherent(dev, 32 * K, b.cpu(), b.dma_addr()).error().code, Errc::bad_free);
  EXPECT_EQ(pool.free_coherent(dev, 64 * K, b.cpu(), b.dma_addr() + 4096).error().code,
            Errc::bad_free);
  EXPECT_EQ(pool.free_coherent(dev, 64 * K, static_cast<char*>(b.cpu()) + 4096, b.dma_addr() + 4096)
                .error()
                .code,
            Errc::bad_free);
  EXPECT_EQ(pool.free_coherent(dev, 8 * K, p.cpu(), p.dma_addr()).error().code, Errc::bad_free);
  EXPECT_EQ(pool.free_coherent(dev, 0, b.cpu(), b.dma_addr()).error().code, Errc::bad_free);
  EXPECT_EQ(area(pool.stats(), "pernuma2")->used, 16u);  // untouched
  // Double free through the C-style call after a good one.
  void* cpu = b.cpu();
  const auto dma = b.dma_addr();
  ASSERT_TRUE(b.release().ok());
  EXPECT_EQ(pool.free_coherent(dev, 64 * K, cpu, dma).error().code, Errc::bad_free);
  EXPECT_EQ(pool.stats().bad_frees, 7u);
  ASSERT_TRUE(p.release().ok());
  expect_f3(pool);
}

TEST(PoolSemantics, F1_F2_PagesAreFoundWhicheverDeviceFreesThem) {
  // Page blocks are kept per node (each node's own lock); a C-style free that
  // names another device (another node, or none) still finds the block, and a
  // second free of it is still an F2 error.
  Pool pool = make_pool("cma=16M cma_pernuma=8M");
  auto on1 = Device::on_node(1, "a"), on3 = Device::on_node(3, "b"), none = Device::on_node(numacma::kNoNode, "c");
  std::vector<DmaBuffer> bufs;
  for (const Device* d : {&on1, &on3, &none})
    for (std::size_t size : {4 * K, 4 * K}) bufs.push_back(pool.alloc_coherent(*d, size).value());
  EXPECT_EQ(pool.stats().pages_live, 6u);
  const Device* other[] = {&on3, &none, &on1};
  for (std::size_t i = 0; i < bufs.size(); ++i) {
    void* cpu = bufs[i].cpu();
    const auto dma = bufs[i].dma_addr();
    bufs[i].detach();
    EXPECT_TRUE(pool.free_coherent(*other[i / 2], 4 * K, cpu, dma).ok()) << i;
    EXPECT_EQ(pool.free_coherent(*other[i / 2], 4 * K, cpu, dma).error().code, Errc::bad_free) << i;
  }
  EXPECT_EQ(pool.stats().pages_live, 0u);
  EXPECT_EQ(pool.stats().bad_frees, 6u);
  // The freed pages are reused by their own node's next request.
  auto again = pool.alloc_coherent(on1, 4 * K).value();
  EXPECT_EQ(again.node(), 1);
  expect_f3(pool);
}

TEST(PoolSemantics, F3_AfterEverythingIsFreedNoBitIsLeft) {
  Pool pool = make_pool("cma=4M cma_pernuma=2M numa_cma=1:2M", Policy::nearest);
  std::vector<DmaBuffer> live;
  for (int i = 0; i < 200; ++i) {
    auto b = pool.alloc_coherent(Device::on_node(i % 4, "d"), (1 + (i * 7) % 40) * 4 * K);
    if (b.ok()) live.push_back(std::move(*b));
    if (i % 3 == 0 && !live.empty()) live.erase(live.begin() + (i % static_cast<int>(live.size())));
  }
  live.clear();
  expect_f3(pool);
  EXPECT_EQ(pool.stats().pages_live, 0u);
}

TEST(PoolSemantics, R3_R4_MissingNodesAndFailedReservationsAreReportedNotFatal) {
  Pool pool = make_pool("cma=16M numa_cma=7:4M,2:4M");
  bool seen7 = false;
  for (const auto& n : pool.reservation_notes()) seen7 |= n.area == "numa7";
  EXPECT_TRUE(seen7);
  EXPECT_NE(area(pool.stats(), "numa2"), nullptr);
  // The 2nd reservation (pernuma0) fails: the pool starts without it.
  Pool p2 = make_pool("cma=16M cma_pernuma=8M", Policy::kernel, {}, 2);
  EXPECT_EQ(area(p2.stats(), "pernuma0"), nullptr);
  EXPECT_NE(area(p2.stats(), "pernuma1"), nullptr);
  auto b = p2.alloc_coherent(Device::on_node(0, "d"), 64 * K);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->area_name(), "reserved");
  // No areas at all: everything goes to pages.
  Pool p3 = make_pool("");
  auto c = p3.alloc_coherent(Device::on_node(3, "d"), 64 * K);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->area_name(), "pages");
}

TEST(PoolSemantics, R3_NodeGivenTwiceTakesTheLastSizeAndSaysSo) {
  // numa_cma=1:2M,1:4M: the kernel reserves 4 MiB on node 1 (the last size).
  Pool pool = make_pool("numa_cma=1:2M,1:4M");
  const numacma::Stats st = pool.stats();  // kept alive: area() points into it
  const auto* numa1 = area(st, "numa1");
  ASSERT_NE(numa1, nullptr);
  EXPECT_EQ(numa1->pages * 4096, 4 * M);
  EXPECT_EQ(st.areas.size(), 1u);
  bool noted = false;
  for (const auto& n : pool.reservation_notes())
    noted |= n.message == "numa_cma: node 1 given twice: 2 MiB overridden by 4 MiB, as the kernel does";
  EXPECT_TRUE(noted);
}

TEST(PoolSemantics, BadInputIsAnErrorNeverACrash) {
  Pool pool = make_pool("cma=16M");
  EXPECT_EQ(pool.alloc_coherent(Device::on_node(9, "d"), 64 * K).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(pool.alloc_coherent(Device::on_node(-7, "d"), 64 * K).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(pool.alloc_coherent(Device::on_node(0, "d", 0), 64 * K).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(pool.alloc_coherent(Device::on_node(0, "d"), ~std::size_t{0}).error().code,
            Errc::invalid_argument);
  PoolOptions o;
  o.backing = "sim";
  o.sysfs_root = fixture("arm64-4n");
  o.params = "cma=12Q";
  EXPECT_EQ(Pool::create(o).error().code, Errc::invalid_argument);
  o.params = "cma=1M";
  o.backing = "floppy";
  EXPECT_EQ(Pool::create(o).error().code, Errc::invalid_argument);
  o.backing = "sim";
  o.sysfs_root = "/nonexistent/sysfs";
  EXPECT_FALSE(Pool::create(o).ok());
  o.sysfs_root = fixture("arm64-4n");
  o.device_areas = {{"reserved", 0, 1 * M}};
  EXPECT_EQ(Pool::create(o).error().code, Errc::invalid_argument);
  o.device_areas = {{"a", 0, 1 * M}, {"a", 1, 1 * M}};
  EXPECT_EQ(Pool::create(o).error().code, Errc::invalid_argument);
  o.device_areas = {};
  o.order_per_bit = 12;
  EXPECT_EQ(Pool::create(o).error().code, Errc::invalid_argument);
}

TEST(PoolSemantics, DeviceFromPciReadsItsNode) {
  Pool pool = make_pool("cma=16M cma_pernuma=8M", Policy::kernel, {{"0000:80:00.0", 2, 1 * M}});
  auto d = Device::from_pci("0000:80:00.0", pool);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->node, 2);
  EXPECT_EQ(d->area, "0000:80:00.0");
  auto missing = Device::from_pci("0000:ff:1f.7", pool);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::not_found);
}

TEST(PoolSemantics, OrderPerBitRoundsAreasAndAllocations) {
  PoolOptions o;
  o.params = "cma_pernuma=1M";
  o.backing = "sim";
  o.sysfs_root = fixture("arm64-4n");
  o.order_per_bit = 2;  // one bit per 4 pages
  auto pool = Pool::create(o).value();
  auto b = pool.alloc_coherent(Device::on_node(0, "d"), 5 * 4 * K).value();  // 5 pages -> 2 bits
  const numacma::Stats st = pool.stats();  // keep it alive: area() points into it
  const auto* a = area(st, "pernuma0");
  EXPECT_EQ(a->order_per_bit, 2u);
  EXPECT_EQ(a->used, 8u);
  EXPECT_EQ(a->alloc_pages_success, 5u);
}
