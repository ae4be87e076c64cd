// DmaPool: the kernel's dma_pool rules (mm/dmapool.c) for creation and the
// block carving, pages from alloc_coherent for the pool's device (its node
// and area), grow and shrink, and every kind of bad free refused and counted
// without corrupting the pool. Threads: tests/unit/dma_pool_threads_test.cpp.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dmapool/layout.hpp"
#include "numacma/numacma.hpp"

using numacma::Device;
using numacma::DmaBlock;
using numacma::DmaPool;
using numacma::Errc;
using numacma::Pool;

namespace {

Pool sim_pool(const std::string& params = "cma=16M cma_pernuma=8M") {
  numacma::PoolOptions o;
  o.params = params;
  o.backing = "sim";
  o.sysfs_root = std::string(NUMACMA_TEST_DATA) + "/arm64-4n";
  return Pool::create(o).value();
}

std::uint64_t area_used(const Pool& p, const std::string& name) {
  for (const auto& a : p.stats().areas)
    if (a.name == name) return a.used;
  ADD_FAILURE() << "no area " << name;
  return 0;
}

}  // namespace

// ---- layout: dma_pool_create's checks and pool_initialise_page's carving ------

TEST(DmaPoolLayout, KernelCreateRules) {
  using numacma::dmapool::make_layout;
  EXPECT_EQ(make_layout(0, 8, 0).error().code, Errc::invalid_argument);
  EXPECT_NE(make_layout(0, 8, 0).error().message.find("size 0"), std::string::npos);
  EXPECT_NE(make_layout(64, 24, 0).error().message.find("not a power of two"), std::string::npos);
  EXPECT_NE(make_layout(64, 8, 48).error().message.find("boundary 48 is not a power of two"),
            std::string::npos);
  EXPECT_NE(make_layout(256, 8, 128).error().message.find("smaller than the block"),
            std::string::npos);
  EXPECT_FALSE(make_layout(std::size_t{1} << 31, 8, 0).ok());  // > INT_MAX

  auto l = make_layout(1, 0, 0).value();  // align 0 -> 1, size -> 16 (struct dma_block)
  EXPECT_EQ(l.align, 1u);
  EXPECT_EQ(l.block, 16u);
  EXPECT_EQ(l.page_bytes, 4096u);
  EXPECT_EQ(l.blocks(), 256u);

  l = make_layout(100, 64, 0).value();  // rounded up to align
  EXPECT_EQ(l.block, 128u);
  EXPECT_EQ(l.boundary, 4096u);
  EXPECT_EQ(l.blocks(), 32u);

  l = make_layout(6000, 8, 0).value();  // a page larger than 4 KiB: max(size, PAGE_SIZE)
  EXPECT_EQ(l.page_bytes, 6000u);
  EXPECT_EQ(l.blocks(), 1u);

  l = make_layout(64, 64, 1 << 20).value();  // boundary above the page: the page
  EXPECT_EQ(l.boundary, 4096u);
}

TEST(DmaPoolLayout, BlocksSkipToTheNextBoundary) {
  // 48-byte blocks, 128-byte boundary: 0, 48 fit; 96 would cross 128 -> 128, 176; 224 crosses 256.
  const auto l = numacma::dmapool::make_layout(48, 16, 128).value();
  ASSERT_GE(l.blocks(), 4u);
  EXPECT_EQ(l.offsets[0], 0u);
  EXPECT_EQ(l.offsets[1], 48u);
  EXPECT_EQ(l.offsets[2], 128u);
  EXPECT_EQ(l.offsets[3], 176u);
  EXPECT_EQ(l.blocks(), 2u * (4096 / 128));
  for (std::uint32_t off : l.offsets) EXPECT_EQ(off / 128, (off + 47) / 128);
  EXPECT_EQ(l.block_at(176), 3);
  EXPECT_EQ(l.block_at(177), -1);  // inside a block
  EXPECT_EQ(l.block_at(96), -1);   // padding before a boundary
  EXPECT_EQ(l.block_at(4096), -1); // past the page
  EXPECT_EQ(l.block_at(~std::uint64_t{0}), -1);
}

RC_GTEST_PROP(DmaPoolLayout, BlocksAreAlignedDisjointAndInsideTheirBoundary, ()) {
  const std::size_t size = *rc::gen::inRange<std::size_t>(1, 20000);
  const std::size_t align = std::size_t{1} << *rc::gen::inRange(0, 13);
  const unsigned bshift = *rc::gen::inRange(0, 16);
  const std::size_t boundary = bshift == 0 ? 0 : std::size_t{1} << (bshift + 3);
  auto r = numacma::dmapool::make_layout(size, align, boundary);
  const std::size_t block = (std::max<std::size_t>(size, 16) + align - 1) / align * align;
  if (boundary != 0 && boundary < block) {
    RC_ASSERT(!r.ok());
    return;
  }
  RC_ASSERT(r.ok());
  const auto& l = *r;
  RC_ASSERT(l.block == block);
  RC_ASSERT(l.blocks() >= 1u);
  std::uint64_t prev_end = 0;
  for (std::size_t i = 0; i < l.blocks(); ++i) {
    const std::uint64_t off = l.offsets[i];
    RC_ASSERT(off % align == 0);
    RC_ASSERT(off >= prev_end);
    RC_ASSERT(off + l.block <= l.page_bytes);
    RC_ASSERT(off / l.boundary == (off + l.block - 1) / l.boundary);
    RC_ASSERT(l.block_at(off) == static_cast<std::int32_t>(i));
    RC_ASSERT(l.block_at(off + 1) == -1);
    prev_end = off + l.block;
  }
}

// ---- the pool -----------------------------------------------------------------

TEST(DmaPool, BadInputIsAClearError) {
  Pool pool = sim_pool();
  const Device dev = Device::on_node(1, "nvme0");
  auto e = DmaPool::create(pool, dev, "prp", 0, 8, 0);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, Errc::invalid_argument);
  EXPECT_EQ(e.error().message, "dma_pool prp: size 0");
  EXPECT_EQ(DmaPool::create(pool, dev, "prp", 64, 3, 0).error().message,
            "dma_pool prp: align 3 is not a power of two");
  EXPECT_EQ(DmaPool::create(pool, dev, "prp", 64, 8, 96).error().message,
            "dma_pool prp: boundary 96 is not a power of two");
  EXPECT_EQ(DmaPool::create(pool, dev, "prp", 512, 8, 256).error().message,
            "dma_pool prp: boundary 256 is smaller than the block (512 bytes)");
  DmaPool empty;
  EXPECT_EQ(empty.alloc().error().code, Errc::invalid_argument);
  EXPECT_TRUE(empty.destroy().ok());
}

TEST(DmaPool, BlocksComeFromTheDevicesNodeAndArea) {
  Pool pool = sim_pool();
  // 8 KiB pages: alloc_coherent of 2 pages, served by pernuma2 (A1).
  auto dp = DmaPool::create(pool, Device::on_node(2, "nic"), "desc", 8192, 4096, 0).value();
  std::vector<DmaBlock> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(dp.alloc().value());
  auto st = dp.stats();
  EXPECT_EQ(st.pages, 10u);
  for (const auto& p : st.page_list) {
    EXPECT_EQ(p.area, "pernuma2");
    EXPECT_EQ(p.node, 2);
  }
  EXPECT_EQ(area_used(pool, "pernuma2"), 20u);
  // Blocks of a page-sized-or-smaller pool are single pages: ordinary pages
  // of the device's node (A3), as dma_alloc_coherent gives the kernel's pool.
  auto small = DmaPool::create(pool, Device::on_node(3, "nvme"), "prp", 512, 512, 0).value();
  auto b = small.alloc().value();
  st = small.stats();
  ASSERT_EQ(st.page_list.size(), 1u);
  EXPECT_EQ(st.page_list[0].area, "pages");
  EXPECT_EQ(st.page_list[0].node, 3);
  EXPECT_EQ(st.blocks_per_page, 8u);
}

TEST(DmaPool, BlockAddressesArePageAddressPlusOffset) {
  Pool pool = sim_pool();
  auto dp = DmaPool::create(pool, Device::on_node(0, "d"), "x", 48, 16, 128).value();
  std::vector<DmaBlock> blocks;
  for (int i = 0; i < 200; ++i) blocks.push_back(dp.alloc().value());
  const auto st = dp.stats();
  for (const auto& b : blocks) {
    const auto* c = static_cast<const char*>(b.cpu());
    const auto it = std::find_if(st.page_list.begin(), st.page_list.end(), [&](const auto& p) {
      return c >= static_cast<const char*>(p.cpu) && c < static_cast<const char*>(p.cpu) + 4096;
    });
    ASSERT_NE(it, st.page_list.end());
    const auto off = static_cast<std::uint64_t>(c - static_cast<const char*>(it->cpu));
    EXPECT_EQ(b.dma_addr(), it->dma + off);
    EXPECT_EQ(b.dma_addr() % 16, 0u);
    EXPECT_EQ(b.dma_addr() / 128, (b.dma_addr() + 47) / 128);
  }
}

TEST(DmaPool, TryAllocGivesTheBlockAllocWouldOrSaysWhyNot) {
  Pool pool = sim_pool();
  auto dp = DmaPool::create(pool, Device::on_node(0, "d"), "x", 64, 64, 0).value();
  DmaBlock b = dp.try_alloc();
  ASSERT_TRUE(b);
  void* const cpu = b.cpu();
  const std::uint64_t dma = b.dma_addr();
  ASSERT_TRUE(b.release().ok());
  DmaBlock a = dp.alloc().value();  // the block try_alloc had: the cache is LIFO
  EXPECT_EQ(a.cpu(), cpu);
  ASSERT_TRUE(a.release().ok());
  DmaBlock t = dp.try_alloc();
  EXPECT_EQ(t.cpu(), cpu);
  EXPECT_EQ(t.dma_addr(), dma);
  EXPECT_EQ(dp.stats().blocks_live, 1u);
  EXPECT_TRUE(dp.free(t.cpu(), t.dma_addr()).error().code == Errc::bad_free);  // a handle holds it
  ASSERT_TRUE(t.release().ok());
  EXPECT_EQ(dp.stats().blocks_live, 0u);

  DmaPool empty;
  numacma::Error why;
  DmaBlock none = empty.try_alloc(&why);
  EXPECT_FALSE(none);
  EXPECT_EQ(why.code, Errc::invalid_argument);
  EXPECT_FALSE(empty.try_alloc());  // no error asked for
}

TEST(DmaPool, DoubleFreeWrongPoolAndBadAddressesAreRefusedAndCounted) {
  Pool pool = sim_pool();
  const Device dev = Device::on_node(0, "d");
  auto a = DmaPool::create(pool, dev, "a", 64, 64, 0).value();
  auto b = DmaPool::create(pool, dev, "b", 64, 64, 0).value();
  auto blk = a.alloc().value();
  void* cpu = blk.cpu();
  const std::uint64_t dma = blk.dma_addr();
  blk.detach();

  auto s = b.free(cpu, dma);  // to the wrong pool
  EXPECT_EQ(s.error().code, Errc::bad_free);
  EXPECT_NE(s.error().message.find("not a block of this pool"), std::string::npos);
  s = a.free(static_cast<char*>(cpu) + 8, dma + 8);  // inside a block
  EXPECT_NE(s.error().message.find("not the start of a block"), std::string::npos);
  s = a.free(cpu, dma + 4096);  // wrong DMA address
  EXPECT_NE(s.error().message.find("its block's dma is"), std::string::npos);
  EXPECT_EQ(a.free(nullptr, 0).error().code, Errc::bad_free);
  EXPECT_TRUE(a.free(cpu, dma).ok());
  s = a.free(cpu, dma);  // double free
  EXPECT_EQ(s.error().code, Errc::bad_free);
  EXPECT_NE(s.error().message.find("double free"), std::string::npos);
  // A block that a DmaBlock holds cannot be freed by address: the handle
  // owns it, and still frees it afterwards.
  auto held = a.alloc().value();
  EXPECT_EQ(a.free(held.cpu(), held.dma_addr()).error().code, Errc::bad_free);
  EXPECT_TRUE(held.release().ok());
  EXPECT_EQ(a.stats().bad_frees, 5u);  // the wrong-pool free counts in b
  EXPECT_EQ(b.stats().bad_frees, 1u);

  // Never corrupting: the double-freed block is handed out once, not twice.
  std::set<void*> seen;
  std::vector<DmaBlock> live;
  for (int i = 0; i < 300; ++i) {
    live.push_back(a.alloc().value());
    EXPECT_TRUE(seen.insert(live.back().cpu()).second) << "block handed out twice";
  }
  EXPECT_EQ(a.stats().blocks_live, 300u);
}

TEST(DmaPool, ZallocZeroesAndBlocksAreReused) {
  Pool pool = sim_pool();
  auto dp = DmaPool::create(pool, Device::on_node(1, "d"), "z", 256, 0, 0).value();
  auto b = dp.alloc().value();
  void* first = b.cpu();
  std::memset(b.cpu(), 0xa5, 256);
  ASSERT_TRUE(b.release().ok());
  auto z = dp.zalloc().value();
  EXPECT_EQ(z.cpu(), first);  // LIFO: the block just freed
  const auto* p = static_cast<const unsigned char*>(z.cpu());
  EXPECT_TRUE(std::all_of(p, p + 256, [](unsigned char c) { return c == 0; }));
}

TEST(DmaPool, GrowsOnDemandAndShrinksWithHysteresis) {
  Pool pool = sim_pool();
  // 16 KiB blocks, one per page: every page comes from pernuma1 (4 pages each).
  auto dp = DmaPool::create(pool, Device::on_node(1, "d"), "big", 16384, 0, 0).value();
  std::vector<DmaBlock> live;
  for (int i = 0; i < 64; ++i) live.push_back(dp.alloc().value());
  EXPECT_EQ(dp.stats().pages, 64u);
  EXPECT_EQ(area_used(pool, "pernuma1"), 256u);
  // The thread's cache keeps up to 16 blocks, the depot four magazines of 8
  // (512 KiB), the rest go back to their pages, and wholly free pages beyond
  // two go back to the area.
  live.clear();
  auto st = dp.stats();
  EXPECT_EQ(st.blocks_live, 0u);
  EXPECT_LE(st.blocks_cached, 16u + 32u);
  EXPECT_LE(st.pages, st.blocks_cached + 2);  // no more than kMaxEmpty wholly free pages
  EXPECT_GE(st.pages_returned, 64u - 48u - 2u);
  EXPECT_EQ(area_used(pool, "pernuma1"), 4 * st.pages);
  dp.shrink();  // the depot's blocks back to their pages, every wholly free page back
  st = dp.stats();
  EXPECT_LE(st.blocks_cached, 16u);
  EXPECT_EQ(st.pages, st.blocks_cached);
  EXPECT_EQ(area_used(pool, "pernuma1"), 4 * st.pages);
  // Nothing is lost: grow again to 64.
  for (int i = 0; i < 64; ++i) live.push_back(dp.alloc().value());
  EXPECT_EQ(dp.stats().blocks_live, 64u);
  live.clear();
  ASSERT_TRUE(dp.destroy().ok());
  EXPECT_EQ(area_used(pool, "pernuma1"), 0u);
}

TEST(DmaPool, DestroyBusyReportsTheCountAndPagesReturnWithTheLastBlock) {
  Pool pool = sim_pool();
  auto dp = DmaPool::create(pool, Device::on_node(2, "d"), "busy", 8192, 0, 0).value();
  std::vector<DmaBlock> live;
  for (int i = 0; i < 5; ++i) live.push_back(dp.alloc().value());
  live.erase(live.begin(), live.begin() + 2);
  auto s = dp.destroy();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::busy);
  EXPECT_NE(s.error().message.find("3 block(s) still allocated"), std::string::npos)
      << s.error().message;
  EXPECT_FALSE(static_cast<bool>(dp));
  EXPECT_EQ(area_used(pool, "pernuma2"), 6u);  // the 3 busy pages, 2 each
  live.pop_back();
  EXPECT_EQ(area_used(pool, "pernuma2"), 4u);
  EXPECT_TRUE(live.front().release().ok());
  live.clear();
  EXPECT_EQ(area_used(pool, "pernuma2"), 0u);
}

TEST(DmaPool, NoPageIsAnErrorAndCounted) {
  // A device whose DMA mask reaches no memory at all: alloc_coherent fails,
  // so does the block, with the page allocation's reason.
  Pool pool = sim_pool();
  auto dp = DmaPool::create(pool, Device::on_node(0, "d", 0xfff), "tiny", 64, 0, 0).value();
  auto b = dp.alloc();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::unreachable) << b.error().message;
  EXPECT_EQ(b.error().message.rfind("dma_pool tiny: no page for a block: ", 0), 0u)
      << b.error().message;
  EXPECT_EQ(dp.stats().alloc_failures, 1u);
  EXPECT_EQ(dp.stats().pages, 0u);
}

// Property: random alloc/free/bad-free sequences against a model of the live
// blocks: no overlap in CPU or DMA space, alignment and boundary kept, the
// counters add up, and everything goes back on destroy.
RC_GTEST_PROP(DmaPool, RandomOpsKeepEveryInvariant, ()) {
  Pool pool = sim_pool();
  const std::size_t size = *rc::gen::inRange<std::size_t>(1, 9000);
  const std::size_t align = std::size_t{1} << *rc::gen::inRange(0, 10);
  const std::size_t block = (std::max<std::size_t>(size, 16) + align - 1) / align * align;
  std::size_t boundary = 0;
  if (*rc::gen::arbitrary<bool>()) boundary = std::bit_ceil(block) << *rc::gen::inRange(0, 3);
  auto dp = DmaPool::create(pool, Device::on_node(*rc::gen::inRange(0, 4), "d"), "p", size, align,
                            boundary)
                .value();
  std::map<std::uintptr_t, DmaBlock> live;  // by CPU address
  std::uint64_t bad = 0;
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 10));
  for (int op : ops) {
    if (op < 6 || live.empty()) {
      auto b = dp.alloc();
      if (!b) RC_FAIL(b.error().message);
      const auto c = reinterpret_cast<std::uintptr_t>(b->cpu());
      RC_ASSERT(c % align == 0);
      RC_ASSERT(b->dma_addr() % align == 0);
      if (boundary != 0) RC_ASSERT(b->dma_addr() / boundary == (b->dma_addr() + block - 1) / boundary);
      auto next = live.lower_bound(c);
      if (next != live.end()) RC_ASSERT(c + block <= next->first);
      if (next != live.begin()) RC_ASSERT(std::prev(next)->first + block <= c);
      live.emplace(c, std::move(*b));
    } else if (op < 9) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(static_cast<std::size_t>(op) % live.size()));
      RC_ASSERT(it->second.release().ok());
      live.erase(it);
    } else {
      // A bad free: inside a live block, or a block freed twice.
      auto& [c, b] = *live.begin();
      if (block > 16) {
        RC_ASSERT(!dp.free(reinterpret_cast<void*>(c + 8), b.dma_addr() + 8).ok());
      } else {
        const std::uint64_t d = b.dma_addr();
        b.detach();
        RC_ASSERT(dp.free(reinterpret_cast<void*>(c), d).ok());
        RC_ASSERT(!dp.free(reinterpret_cast<void*>(c), d).ok());
        live.erase(live.begin());
      }
      ++bad;
    }
  }
  auto st = dp.stats();
  // Every block's DMA address is its page's DMA address + its offset there.
  for (const auto& [addr, b] : live) {
    const std::uintptr_t c = addr;  // (clang 14 cannot capture a structured binding)
    const auto page = std::find_if(st.page_list.begin(), st.page_list.end(), [&](const auto& pg) {
      const auto base = reinterpret_cast<std::uintptr_t>(pg.cpu);
      return c >= base && c + block <= base + st.page_bytes;
    });
    RC_ASSERT(page != st.page_list.end());
    RC_ASSERT(b.dma_addr() == page->dma + (c - reinterpret_cast<std::uintptr_t>(page->cpu)));
  }
  RC_ASSERT(st.blocks_live == live.size());
  RC_ASSERT(st.bad_frees == bad);
  RC_ASSERT(st.blocks_live + st.blocks_cached + st.blocks_free == st.pages * st.blocks_per_page);
  // DMA disjoint too (the sim's DMA addresses differ from the CPU's).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dmas;
  for (const auto& [c, b] : live) dmas.emplace_back(b.dma_addr(), b.dma_addr() + block);
  std::sort(dmas.begin(), dmas.end());
  for (std::size_t i = 1; i < dmas.size(); ++i) RC_ASSERT(dmas[i - 1].second <= dmas[i].first);
  live.clear();
  RC_ASSERT(dp.destroy().ok());
  for (const auto& a : pool.stats().areas) RC_ASSERT(a.used == 0u);
}
