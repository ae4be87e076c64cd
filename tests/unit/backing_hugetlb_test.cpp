// The hugetlb backing on this host's node 0 (/sys), 2 MiB pages. Needs free
// 2 MiB hugepages on node 0: as root the fixture reserves them (raising
// node0's nr_hugepages) and puts the old value back in TearDown; otherwise
// the tests are skipped with the reason.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "backing/backing.hpp"
#include "hugepages_guard.hpp"
#include "os/os.hpp"
#include "topology/topology.hpp"

using numacma::Errc;
using numacma::backing::AddrKind;
using numacma::backing::Backing;
using numacma::backing::make_backing;
using numacma::backing::Reservation;
using numacma::testing::free_2m_node0;
using numacma::testing::HugepagesGuard;
using numacma::topo::Topology;
namespace os = numacma::os;

namespace {

constexpr std::uint64_t kPage = 4096, k2M = 2ULL << 20;

class BackingHugetlb : public ::testing::Test {
 protected:
  void SetUp() override {
    guard_ = std::make_unique<HugepagesGuard>(4);
    if (!guard_->ok()) GTEST_SKIP() << guard_->why();
    auto t = Topology::from_sysfs("/sys");
    ASSERT_TRUE(t.ok()) << t.error().message;
    topo_ = std::make_unique<Topology>(std::move(*t));
    auto b = make_backing("hugetlb", *topo_);
    ASSERT_TRUE(b.ok()) << b.error().message;
    b_ = std::move(*b);
  }
  void TearDown() override {
    b_.reset();
    if (guard_) guard_->restore();  // nr_hugepages back to the old value
    guard_.reset();
  }
  /** The segments are exactly the runs of physically adjacent hugepages. */
  static void expect_segments_match_pagemap(const Reservation& r) {
    auto pa = os::physical_addresses(reinterpret_cast<void*>(r.cpu_base), r.mapped_bytes, k2M);
    ASSERT_TRUE(pa.ok()) << pa.error().message;
    std::vector<numacma::core::Segment> want;
    const std::uint64_t pages = r.bytes / kPage, per = k2M / kPage;
    for (std::size_t i = 0; i * per < pages; ++i) {
      const std::uint64_t len = std::min(per, pages - i * per);
      if (i > 0 && (*pa)[i - 1] + k2M == (*pa)[i])
        want.back().pages += len;
      else
        want.push_back({i * per, len, (*pa)[i]});
    }
    ASSERT_EQ(r.segments.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(r.segments[i].first_page, want[i].first_page) << "segment " << i;
      EXPECT_EQ(r.segments[i].pages, want[i].pages) << "segment " << i;
      EXPECT_EQ(r.segments[i].dma_base, want[i].dma_base) << "segment " << i;
      EXPECT_EQ(r.segments[i].dma_base % k2M, 0u);
    }
  }
  static void expect_on_node0(const Reservation& r) {
    auto nodes = os::page_nodes(reinterpret_cast<void*>(r.cpu_base), r.mapped_bytes, k2M);
    ASSERT_TRUE(nodes.ok()) << nodes.error().message;
    for (int n : *nodes) EXPECT_EQ(n, 0);
  }
  std::unique_ptr<HugepagesGuard> guard_;
  std::unique_ptr<Topology> topo_;
  std::unique_ptr<Backing> b_;
};

}  // namespace

TEST_F(BackingHugetlb, OneHugepage) {
  EXPECT_EQ(b_->name(), "hugetlb");
  const long free0 = free_2m_node0();
  auto r = b_->reserve(0, 1 << 20);  // 1 MiB: mapped as one 2 MiB page
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, "hugetlb-2M");
  EXPECT_EQ(r->node, 0);
  EXPECT_EQ(r->bytes, 1u << 20);
  EXPECT_EQ(r->mapped_bytes, k2M);
  EXPECT_EQ(free_2m_node0(), free0 - 1);
  expect_on_node0(*r);
  if (!os::physical_addresses_readable()) {
    EXPECT_EQ(r->addr_kind, AddrKind::iova);
    EXPECT_NE(r->note.find("IOVA"), std::string::npos) << r->note;
  } else {
    EXPECT_EQ(r->addr_kind, AddrKind::physical);
    ASSERT_EQ(r->segments.size(), 1u);
    EXPECT_EQ(r->segments[0].pages, 256u);  // cut at bytes, not mapped_bytes
    expect_segments_match_pagemap(*r);
  }
  b_->release(*r);
  EXPECT_EQ(free_2m_node0(), free0);
}

TEST_F(BackingHugetlb, TwoHugepagesSplitWhereNotAdjacent) {
  if (!os::physical_addresses_readable()) GTEST_SKIP() << "pagemap hides PFNs (needs CAP_SYS_ADMIN)";
  // Take four single hugepages, give back the 2nd and 4th: a 4 MiB
  // reservation then gets two hugepages that were never neighbours in
  // the pool's allocation order, usually not physically adjacent.
  std::vector<Reservation> singles;
  for (int i = 0; i < 4; ++i) {
    auto r = b_->reserve(0, k2M);
    ASSERT_TRUE(r.ok()) << r.error().message;
    singles.push_back(*r);
  }
  b_->release(singles[1]);
  b_->release(singles[3]);
  auto r = b_->reserve(0, 2 * k2M);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, "hugetlb-2M");
  EXPECT_EQ(r->mapped_bytes, 2 * k2M);
  expect_on_node0(*r);
  expect_segments_match_pagemap(*r);
  auto pa = os::physical_addresses(reinterpret_cast<void*>(r->cpu_base), 2 * k2M, k2M);
  ASSERT_TRUE(pa.ok());
  if ((*pa)[0] + k2M == (*pa)[1]) {
    ASSERT_EQ(r->segments.size(), 1u) << "adjacent hugepages make one segment";
    EXPECT_EQ(r->segments[0].pages, 1024u);
  } else {
    ASSERT_EQ(r->segments.size(), 2u) << "non-adjacent hugepages make two segments";
    EXPECT_EQ(r->segments[0].first_page, 0u);
    EXPECT_EQ(r->segments[0].pages, 512u);
    EXPECT_EQ(r->segments[1].first_page, 512u);
    EXPECT_EQ(r->segments[1].pages, 512u);
    EXPECT_EQ(r->segments[1].dma_base, (*pa)[1]);
  }
  RecordProperty("split", r->segments.size() == 2 ? "yes" : "no (adjacent)");
  b_->release(*r);
  b_->release(singles[0]);
  b_->release(singles[2]);
}

TEST_F(BackingHugetlb, NotEnoughHugepagesIsNoMemory) {
  const long free0 = free_2m_node0();
  auto r = b_->reserve(0, static_cast<std::uint64_t>(free0 + 1) * k2M);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::no_memory);
  EXPECT_NE(r.error().message.find("free 2M hugepages, needs " + std::to_string(free0 + 1)),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(free_2m_node0(), free0) << "nothing taken";
}

TEST_F(BackingHugetlb, PagesFallbackUsesOneHugepage) {
  if (!os::physical_addresses_readable()) GTEST_SKIP() << "pagemap hides PFNs (needs CAP_SYS_ADMIN)";
  auto p = b_->alloc_pages(0, 64 * 1024, true);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->kind, "pages-2M");
  EXPECT_EQ(p->node, 0);
  EXPECT_EQ(p->bytes, 64u * 1024);
  EXPECT_EQ(p->mapped_bytes, k2M);
  EXPECT_TRUE(p->contiguous);
  EXPECT_EQ(p->addr_kind, AddrKind::physical);
  auto pa = os::physical_addresses(reinterpret_cast<void*>(p->cpu), k2M, k2M);
  ASSERT_TRUE(pa.ok());
  EXPECT_EQ(p->dma_addr, (*pa)[0]);
  b_->free_pages(*p);
}
