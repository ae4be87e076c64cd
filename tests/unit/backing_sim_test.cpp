// The sim backing (src/backing/sim.cpp) over the fixture topologies: the
// simulated physical layout (config::physical_layout: the fixtures have no
// memory blocks, so one window per online node in id order, each starting on
// a 1 GiB boundary after the previous node's memory, the first 16 MiB taken);
// reserve_at takes exactly the planned range, reserve places top-down in the
// node; A7 pages are naturally aligned blocks of at most order 10, taken
// top-down from the node's free memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "backing/backing.hpp"
#include "config/memblock.hpp"
#include "topology/topology.hpp"

using numacma::Errc;
using numacma::backing::AddrKind;
using numacma::backing::Backing;
using numacma::backing::make_backing;
using numacma::backing::PagesBlock;
using numacma::backing::Reservation;
using numacma::backing::SimOptions;
using numacma::topo::Topology;

namespace {

constexpr std::uint64_t K = 1024, M = K * K, G = M * K;

Topology load(const char* name) {
  auto t = Topology::from_sysfs(std::string(NUMACMA_TEST_DATA) + "/" + name);
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return std::move(t).value();
}

std::unique_ptr<Backing> sim(const Topology& t, SimOptions o = {}) {
  auto b = make_backing("sim", t, o);
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
  return std::move(b).value();
}

/** The whole reservation is one segment at `dma`, and its memory is usable. */
void expect_one_segment(const Reservation& r, int node, std::uint64_t bytes, std::uint64_t dma) {
  EXPECT_EQ(r.kind, "sim");
  EXPECT_EQ(r.node, node);
  EXPECT_EQ(r.bytes, bytes);
  EXPECT_EQ(r.mapped_bytes, bytes);
  EXPECT_EQ(r.addr_kind, AddrKind::physical);
  ASSERT_EQ(r.segments.size(), 1u);
  EXPECT_EQ(r.segments[0].first_page, 0u);
  EXPECT_EQ(r.segments[0].pages, bytes / 4096);
  EXPECT_EQ(r.segments[0].dma_base, dma);
  ASSERT_NE(r.cpu_base, 0u);
  auto* p = reinterpret_cast<unsigned char*>(r.cpu_base);
  p[0] = 0xa5;
  p[bytes - 1] = 0x5a;
  EXPECT_EQ(p[0] + p[bytes - 1], 0xff);
}

}  // namespace

TEST(BackingSim, NameAndUnknownKind) {
  Topology t = load("arm64-4n");
  EXPECT_EQ(sim(t)->name(), "sim");
  auto bad = make_backing("tmpfs", t);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_NE(bad.error().message.find("tmpfs"), std::string::npos);
  EXPECT_NE(bad.error().message.find("sim"), std::string::npos);  // names the valid kinds
}

TEST(BackingSim, Arm64NodeWindows) {
  // Four nodes of 64 GiB: windows at 0, 64G, 128G, 192G. A reservation with
  // no plan behind it is placed as the kernel would place a node's area: the
  // memory reaches beyond 4 GiB, so bottom-up from 4 GiB (node 0) or from the
  // node's start.
  Topology t = load("arm64-4n");
  auto b = sim(t);
  const std::uint64_t expect_base[4] = {64 * G - 4 * M, 128 * G - 4 * M, 192 * G - 4 * M, 256 * G - 4 * M};
  for (int n = 0; n < 4; ++n) {
    auto r = b->reserve(n, 4 * M);
    ASSERT_TRUE(r.ok()) << r.error().message;
    expect_one_segment(*r, n, 4 * M, expect_base[n]);  // top-down in the node (no plan: top-down)
    b->release(*r);
  }
}

TEST(BackingSim, ReserveAtTakesExactlyThePlannedRangeOnce) {
  Topology t = load("arm64-4n");
  auto b = sim(t);
  auto r1 = b->reserve_at(1, 4 * M, 64 * G + 6 * M);
  ASSERT_TRUE(r1.ok()) << r1.error().message;
  expect_one_segment(*r1, 1, 4 * M, 64 * G + 6 * M);
  auto clash = b->reserve_at(1, 2 * M, 64 * G + 8 * M);  // inside r1
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code, Errc::no_memory);
  EXPECT_NE(clash.error().message.find("not free"), std::string::npos) << clash.error().message;
  auto wrong_node = b->reserve_at(2, 2 * M, 64 * G + 20 * M);  // node 1's memory
  ASSERT_FALSE(wrong_node.ok());
  b->release(*r1);  // its range is free again
  auto again = b->reserve_at(1, 2 * M, 64 * G + 8 * M);
  ASSERT_TRUE(again.ok()) << again.error().message;
  b->release(*again);
}

TEST(BackingSim, WindowsOfEveryFixtureAreDisjointAndOrdered) {
  for (const char* name : {"arm64-4n", "epyc-8n", "x86-2s", "memless-3n", "vm1"}) {
    SCOPED_TRACE(name);
    Topology t = load(name);
    const auto layout = numacma::config::physical_layout(t);
    std::uint64_t prev_end = 0;
    for (const auto& w : layout) {  // 1 GiB-aligned windows, in node order, MemTotal long
      EXPECT_EQ(w.start % G, 0u) << "node " << w.node;
      EXPECT_GE(w.start, prev_end) << "node " << w.node;
      EXPECT_EQ(w.end - w.start, t.node(w.node)->mem.total_bytes & ~4095ULL);
      prev_end = w.end;
    }
    auto b = sim(t);
    for (const auto& n : t.nodes()) {
      auto r = b->reserve(n.id, 2 * M);
      if (!n.has_memory || n.mem.total_bytes == 0) {
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, Errc::no_memory);
        EXPECT_NE(r.error().message.find("no memory"), std::string::npos);
        continue;
      }
      ASSERT_TRUE(r.ok()) << r.error().message;
      const std::uint64_t dma = r->segments.at(0).dma_base;
      const auto w = std::find_if(layout.begin(), layout.end(), [&](const auto& x) { return x.node == n.id; });
      ASSERT_NE(w, layout.end());
      EXPECT_GE(dma, w->start);                  // inside its node's window
      EXPECT_LE(dma + 2 * M, w->end);
      EXPECT_GT(dma + 2 * M + 2 * M, w->end);     // at its top (2 MiB aligned)
      EXPECT_EQ(dma % (2 * M), 0u);
      b->release(*r);
    }
  }
}

TEST(BackingSim, MemorylessNodeLeavesAGigabyteHole) {
  // memless-3n: node 0 [0,16G), node 1 [16G,32G), node 2 has no memory.
  Topology t = load("memless-3n");
  auto b = sim(t);
  auto r1 = b->reserve(1, 2 * M);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->segments[0].dma_base, 32 * G - 2 * M);
  auto r2 = b->reserve(2, 2 * M);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, Errc::no_memory);
  auto p2 = b->alloc_pages(2, 4096, false);
  ASSERT_FALSE(p2.ok());
  EXPECT_EQ(p2.error().code, Errc::no_memory);
  auto r9 = b->reserve(9, 2 * M);  // not a node at all
  ASSERT_FALSE(r9.ok());
  EXPECT_EQ(r9.error().code, Errc::no_memory);
  b->release(*r1);
}

TEST(BackingSim, ReservationBeyondTheNodeFails) {
  Topology t = load("epyc-8n");  // 32 GiB a node
  auto b = sim(t);
  auto too_big = b->reserve(0, 32 * G);  // the first 16 MiB are taken: does not fit
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.error().code, Errc::no_memory);
  EXPECT_NE(too_big.error().message.find("node 0"), std::string::npos);
  auto whole = b->reserve(1, 32 * G);  // exactly node 1's memory (MAP_NORESERVE: free)
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  EXPECT_EQ(whole->segments[0].dma_base, 32 * G);
  auto more = b->reserve(1, 4096);
  EXPECT_FALSE(more.ok());
  b->release(*whole);
}

TEST(BackingSim, FailNthReservation) {
  Topology t = load("arm64-4n");
  SimOptions o;
  o.fail_nth_reservation = 2;
  auto b = sim(t, o);
  auto r1 = b->reserve(0, 2 * M);
  auto r2 = b->reserve(0, 2 * M);
  auto r3 = b->reserve(0, 2 * M);
  ASSERT_TRUE(r1.ok());
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, Errc::no_memory);
  EXPECT_NE(r2.error().message.find("injected failure of reservation #2"), std::string::npos);
  ASSERT_TRUE(r3.ok()) << "only the 2nd fails";
  // The failed one took no simulated memory: r3 sits right below r1.
  EXPECT_EQ(r3->segments[0].dma_base + 2 * M, r1->segments[0].dma_base);
  b->release(*r1);
  b->release(*r3);
  // 0 = never.
  auto never = sim(t);
  for (int i = 0; i < 5; ++i) {
    auto r = never->reserve(1, 2 * M);
    ASSERT_TRUE(r.ok());
    never->release(*r);
  }
}

TEST(BackingSim, PagesCarveDownFromTheTopAndAreReused) {
  Topology t = load("arm64-4n");
  auto b = sim(t);
  auto p1 = b->alloc_pages(1, 8192, true);
  auto p2 = b->alloc_pages(1, 100, true);  // rounded up to one page
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(p1->kind, "sim-pages");
  EXPECT_EQ(p1->node, 1);
  EXPECT_EQ(p1->bytes, 8192u);
  EXPECT_TRUE(p1->contiguous);
  EXPECT_EQ(p1->addr_kind, AddrKind::physical);
  EXPECT_EQ(p1->dma_addr, 128 * G - 8192);  // node 1's window is [64G, 128G)
  EXPECT_EQ(p2->bytes, 4096u);
  EXPECT_EQ(p2->dma_addr, 128 * G - 12288);
  std::memset(reinterpret_cast<void*>(p1->cpu), 1, p1->bytes);
  b->free_pages(*p1);
  auto p3 = b->alloc_pages(1, 4096, true);  // the highest free page again
  ASSERT_TRUE(p3.ok());
  EXPECT_EQ(p3->dma_addr, 128 * G - 4096);
  b->free_pages(*p2);
  b->free_pages(*p3);
}

TEST(BackingSim, PagesAreNaturallyAlignedBlocksOfAtMostOrderTen) {
  Topology t = load("arm64-4n");
  auto b = sim(t);
  auto one = b->alloc_pages(2, 4096, true);
  auto four = b->alloc_pages(2, 16 * K, true);  // order 2: 16 KiB aligned, below the single page
  ASSERT_TRUE(one.ok() && four.ok());
  EXPECT_EQ(four->dma_addr % (16 * K), 0u);
  EXPECT_LT(four->dma_addr, one->dma_addr);
  auto max = b->alloc_pages(2, 4 * M, true);  // order 10: the largest block
  ASSERT_TRUE(max.ok()) << max.error().message;
  EXPECT_EQ(max->dma_addr % (4 * M), 0u);
  auto beyond = b->alloc_pages(2, 4 * M + 4096, true);  // order 11: the kernel refuses it
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().code, Errc::no_memory);
  EXPECT_NE(beyond.error().message.find("order 10"), std::string::npos) << beyond.error().message;
  for (auto* p : {&one, &four, &max}) b->free_pages(**p);
}

TEST(BackingSim, PagesOfNoNodeComeFromTheFirstNodeWithMemory) {
  Topology t = load("memless-3n");
  auto b = sim(t);
  auto p = b->alloc_pages(-1, 4096, false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->node, 0);
  EXPECT_EQ(p->dma_addr, 16 * G - 4096);
  b->free_pages(*p);
}

TEST(BackingSim, PagesLimitPerNode) {
  Topology t = load("arm64-4n");
  SimOptions o;
  o.pages_limit_per_node = 1 * M;
  auto b = sim(t, o);
  auto a = b->alloc_pages(2, 1 * M, true);
  ASSERT_TRUE(a.ok());
  auto over = b->alloc_pages(2, 4096, true);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, Errc::no_memory);
  EXPECT_NE(over.error().message.find("node 2"), std::string::npos);
  auto other = b->alloc_pages(3, 4096, true);  // the limit is per node
  ASSERT_TRUE(other.ok());
  b->free_pages(*a);
  auto again = b->alloc_pages(2, 4096, true);
  ASSERT_TRUE(again.ok()) << "freed pages count no more";
  b->free_pages(*again);
  b->free_pages(*other);
}

TEST(BackingSim, PagesAndReservationsNeverOverlap) {
  // vm1: one node of 6121684 kB. Reserve all of it but two pages at the top
  // and the first 16 MiB; the pages then fit twice above the area, then only
  // below it, in [1 MiB, 16 MiB) (x86-64's ZONE_DMA: no area is placed
  // there, the kernel keeps the first MiB), never inside it.
  Topology t = load("vm1");
  auto b = sim(t);
  const std::uint64_t total = t.node(0)->mem.total_bytes;
  ASSERT_EQ(total, 6121684 * K);
  auto r = b->reserve_at(0, total - 16 * M - 8192, 16 * M);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto p = b->alloc_pages(0, 4096, true);
  auto p2 = b->alloc_pages(0, 4096, true);
  ASSERT_TRUE(p.ok() && p2.ok());
  EXPECT_EQ(p->dma_addr, total - 4096);
  EXPECT_EQ(p2->dma_addr, total - 8192);
  EXPECT_EQ(r->segments[0].dma_base + r->bytes, p2->dma_addr);
  auto q = b->alloc_pages(0, 4096, true);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->dma_addr, 16 * M - 4096);
  // An area may not go below 16 MiB: nothing is left for one.
  EXPECT_FALSE(b->reserve(0, 2 * M).ok());
  b->free_pages(*p);
  b->free_pages(*p2);
  b->free_pages(*q);
  b->release(*r);
}

TEST(BackingSim, PagesBelowAnAddressComeFromThereOnly) {
  // alloc_pages(..., below): the pool asks for ZONE_DMA (below 16 MiB) or
  // ZONE_DMA32 (below 4 GiB) so. vm1's ZONE_DMA is [1 MiB, 16 MiB): three
  // order-10 blocks (4, 8, 12 MiB), then only smaller ones.
  Topology t = load("vm1");
  auto b = sim(t);
  EXPECT_TRUE(b->takes_zones());
  std::vector<PagesBlock> held;
  for (std::uint64_t at : {12 * M, 8 * M, 4 * M}) {
    auto blk = b->alloc_pages(0, 4 * M, true, 16 * M);
    ASSERT_TRUE(blk.ok()) << blk.error().message;
    EXPECT_EQ(blk->dma_addr, at);
    held.push_back(*blk);
  }
  auto none = b->alloc_pages(0, 4 * M, true, 16 * M);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, Errc::no_memory);
  EXPECT_NE(none.error().message.find("below 0x1000000"), std::string::npos) << none.error().message;
  for (std::uint64_t at : {2 * M, 1 * M}) {  // [2, 4) MiB, then [1, 2) MiB: never the first MiB
    auto blk = b->alloc_pages(0, at, true, 16 * M);
    ASSERT_TRUE(blk.ok()) << blk.error().message;
    EXPECT_EQ(blk->dma_addr, at);
    held.push_back(*blk);
  }
  EXPECT_FALSE(b->alloc_pages(0, 4096, true, 16 * M).ok());
  for (PagesBlock& h : held) b->free_pages(h);
  held.clear();
  // A block of 2^order pages is taken whole, as dma-direct takes and frees
  // it: 12 KiB holds 16 KiB, the next page lies below the block.
  auto three = b->alloc_pages(0, 12 * K, true, 16 * M);
  auto next = b->alloc_pages(0, 4096, true, 16 * M);
  ASSERT_TRUE(three.ok() && next.ok());
  EXPECT_EQ(three->bytes, 12 * K);
  EXPECT_EQ(three->dma_addr, 16 * M - 16 * K);
  EXPECT_EQ(next->dma_addr, 16 * M - 20 * K);
  held.push_back(*three);
  held.push_back(*next);
  auto high = b->alloc_pages(0, 4096, true);  // no limit: the top of the node
  ASSERT_TRUE(high.ok());
  EXPECT_EQ(high->dma_addr, t.node(0)->mem.total_bytes / 4096 * 4096 - 4096);
  auto dma32 = b->alloc_pages(0, 8192, true, 4ULL << 30);  // below 4 GiB: its top first
  ASSERT_TRUE(dma32.ok());
  EXPECT_EQ(dma32->dma_addr, (4ULL << 30) - 8192);
  held.push_back(*high);
  held.push_back(*dma32);
  for (const PagesBlock& h : held) b->free_pages(h);
}
