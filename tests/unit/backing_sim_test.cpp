// The sim backing (src/backing/sim.cpp) over the fixture topologies: the
// simulated physical layout, one window per online node in id order, each
// starting on a 1 GiB boundary after the previous node's memory;
// reservations bump up from the window's start (16 MiB into the first node
// with memory, 2 MiB aligned), A7 pages carve down from the window's top.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "backing/backing.hpp"
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
  // Four nodes of 64 GiB: windows at 0, 64G, 128G, 192G.
  Topology t = load("arm64-4n");
  auto b = sim(t);
  const std::uint64_t expect_base[4] = {16 * M, 64 * G, 128 * G, 192 * G};
  for (int n = 0; n < 4; ++n) {
    auto r = b->reserve(n, 4 * M);
    ASSERT_TRUE(r.ok()) << r.error().message;
    expect_one_segment(*r, n, 4 * M, expect_base[n]);
    b->release(*r);
  }
}

TEST(BackingSim, ReservationsBumpUpTwoMiBAligned) {
  Topology t = load("arm64-4n");
  auto b = sim(t);
  auto r1 = b->reserve(0, 4 * M);
  auto r2 = b->reserve(0, 4096);
  auto r3 = b->reserve(0, 8192);
  ASSERT_TRUE(r1.ok() && r2.ok() && r3.ok());
  expect_one_segment(*r1, 0, 4 * M, 16 * M);
  expect_one_segment(*r2, 0, 4096, 20 * M);
  expect_one_segment(*r3, 0, 8192, 22 * M);  // 20M + 4K rounded up to 2 MiB
  // Releasing gives the CPU memory back; the simulated range is not reused
  // (reservations happen once, at pool creation).
  b->release(*r2);
  auto r4 = b->reserve(0, 4096);
  ASSERT_TRUE(r4.ok());
  expect_one_segment(*r4, 0, 4096, 24 * M);
  for (auto* r : {&r1, &r3, &r4}) b->release(**r);
}

TEST(BackingSim, WindowsOfEveryFixtureAreDisjointAndOrdered) {
  for (const char* name : {"arm64-4n", "epyc-8n", "x86-2s", "memless-3n", "vm1"}) {
    SCOPED_TRACE(name);
    Topology t = load(name);
    auto b = sim(t);
    std::uint64_t prev_top = 0;
    bool first = true;
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
      const std::uint64_t window = first ? dma - 16 * M : dma;
      EXPECT_EQ(window % G, 0u) << "node " << n.id;
      EXPECT_GE(window, prev_top) << "node " << n.id;
      prev_top = window + n.mem.total_bytes;
      first = false;
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
  EXPECT_EQ(r1->segments[0].dma_base, 16 * G);
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
  auto too_big = b->reserve(0, 32 * G);  // starts at 16M: does not fit
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
  // The failed one took no simulated memory.
  EXPECT_EQ(r3->segments[0].dma_base, r1->segments[0].dma_base + 2 * M);
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
  auto p3 = b->alloc_pages(1, 4096, true);  // first fit in the freed range
  ASSERT_TRUE(p3.ok());
  EXPECT_EQ(p3->dma_addr, 128 * G - 8192);
  b->free_pages(*p2);
  b->free_pages(*p3);
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
  // vm1: one node of 6121684 kB. Reserve all but two pages above 16 MiB; the
  // pages then fit exactly once.
  Topology t = load("vm1");
  auto b = sim(t);
  const std::uint64_t total = t.node(0)->mem.total_bytes;
  ASSERT_EQ(total, 6121684 * K);
  auto r = b->reserve(0, total - 16 * M - 8192);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto p = b->alloc_pages(0, 8192, true);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->dma_addr, total - 8192);
  EXPECT_EQ(r->segments[0].dma_base + r->bytes, p->dma_addr);
  auto q = b->alloc_pages(0, 4096, true);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code, Errc::no_memory);
  b->free_pages(*p);
  b->release(*r);
}
