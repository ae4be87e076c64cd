// The anon backing on this host's node 0 (/sys): 4 KiB pages, mbind strict,
// populated, mlocked, placement verified; one IOVA segment (IOVA = VA).
// Skipped, with the reason, where mbind or mlock is not permitted.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>

#include "backing/backing.hpp"
#include "os/os.hpp"
#include "topology/topology.hpp"

using numacma::Errc;
using numacma::backing::AddrKind;
using numacma::backing::Backing;
using numacma::backing::make_backing;
using numacma::topo::Topology;
namespace os = numacma::os;

namespace {

// The sanitizers' runtimes intercept mlock() and make it a no-op, so VmLck
// cannot show the lock in those builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kMlockIsReal = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
constexpr bool kMlockIsReal = false;
#else
constexpr bool kMlockIsReal = true;
#endif
#else
constexpr bool kMlockIsReal = true;
#endif

constexpr std::uint64_t kPage = 4096;

/** VmLck of this process, in kB. */
long locked_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmLck:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class BackingAnon : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = Topology::from_sysfs("/sys");
    ASSERT_TRUE(t.ok()) << t.error().message;
    topo_ = std::make_unique<Topology>(std::move(*t));
    ASSERT_NE(topo_->node(0), nullptr) << "node 0 is not online";
    auto b = make_backing("anon", *topo_);
    ASSERT_TRUE(b.ok()) << b.error().message;
    b_ = std::move(*b);
  }
  /** Skips when the failure is the host refusing mbind/mlock, not a bug. */
  static bool refused(const numacma::Error& e) {
    const bool call = e.message.find("mlock(") != std::string::npos ||
                      e.message.find("mbind(") != std::string::npos;
    return e.code == Errc::permission || (call && e.code == Errc::no_memory);
  }
  std::unique_ptr<Topology> topo_;
  std::unique_ptr<Backing> b_;
};

}  // namespace

TEST_F(BackingAnon, ReservationOnNode0) {
  EXPECT_EQ(b_->name(), "anon");
  const long lck0 = locked_kb();
  auto r = b_->reserve(0, 64 * kPage);
  if (!r.ok() && refused(r.error())) GTEST_SKIP() << "mbind/mlock not permitted: " << r.error().message;
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, "anon");
  EXPECT_EQ(r->node, 0);
  EXPECT_EQ(r->bytes, 64 * kPage);
  EXPECT_EQ(r->mapped_bytes, 64 * kPage);
  EXPECT_EQ(r->addr_kind, AddrKind::iova);
  ASSERT_EQ(r->segments.size(), 1u);
  EXPECT_EQ(r->segments[0].first_page, 0u);
  EXPECT_EQ(r->segments[0].pages, 64u);
  EXPECT_EQ(r->segments[0].dma_base, r->cpu_base) << "IOVA = VA";
  EXPECT_NE(r->note.find("IOVA"), std::string::npos) << r->note;
  // Placement: every page present and on node 0.
  auto nodes = os::page_nodes(reinterpret_cast<void*>(r->cpu_base), r->bytes, kPage);
  ASSERT_TRUE(nodes.ok());
  for (int n : *nodes) EXPECT_EQ(n, 0);
  // Locked.
  if (kMlockIsReal) {
    EXPECT_GE(locked_kb() - lck0, 256);
  }
  b_->release(*r);
  EXPECT_LE(locked_kb(), lck0);
  auto gone = os::page_nodes(reinterpret_cast<void*>(r->cpu_base), kPage, kPage);
  ASSERT_TRUE(gone.ok());
  EXPECT_LT((*gone)[0], 0) << "released: not mapped any more";
}

TEST_F(BackingAnon, OfflineNodeIsAnError) {
  auto r = b_->reserve(1000, 16 * kPage);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("1000"), std::string::npos) << r.error().message;
}

TEST_F(BackingAnon, SinglePageIsContiguous) {
  auto p = b_->alloc_pages(0, 100, false);
  if (!p.ok() && refused(p.error())) GTEST_SKIP() << "mbind/mlock not permitted: " << p.error().message;
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->kind, "pages-4K");
  EXPECT_EQ(p->node, 0);
  EXPECT_EQ(p->bytes, kPage);
  EXPECT_TRUE(p->contiguous);
  if (os::physical_addresses_readable()) {
    EXPECT_EQ(p->addr_kind, AddrKind::physical);
    auto pa = os::physical_addresses(reinterpret_cast<void*>(p->cpu), kPage, kPage);
    ASSERT_TRUE(pa.ok());
    EXPECT_EQ(p->dma_addr, (*pa)[0]);
  } else {
    EXPECT_EQ(p->addr_kind, AddrKind::iova);
    EXPECT_EQ(p->dma_addr, p->cpu);
  }
  b_->free_pages(*p);
}

TEST_F(BackingAnon, MultiPageIsNotContiguous) {
  auto p = b_->alloc_pages(0, 3 * kPage, false);
  if (!p.ok() && refused(p.error())) GTEST_SKIP() << "mbind/mlock not permitted: " << p.error().message;
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_FALSE(p->contiguous);
  EXPECT_EQ(p->addr_kind, AddrKind::iova);
  EXPECT_EQ(p->dma_addr, p->cpu);
  EXPECT_EQ(p->bytes, 3 * kPage);
  auto nodes = os::page_nodes(reinterpret_cast<void*>(p->cpu), p->bytes, kPage);
  ASSERT_TRUE(nodes.ok());
  for (int n : *nodes) EXPECT_EQ(n, 0);
  b_->free_pages(*p);
  // Physically contiguous was required: refused, not faked.
  auto phys = b_->alloc_pages(0, 3 * kPage, true);
  ASSERT_FALSE(phys.ok());
  EXPECT_EQ(phys.error().code, Errc::not_contiguous);
  EXPECT_NE(phys.error().message.find("IOVA"), std::string::npos);
}

TEST_F(BackingAnon, PagesOfNoNodeReportWhereTheyLanded) {
  auto p = b_->alloc_pages(-1, kPage, false);
  if (!p.ok() && refused(p.error())) GTEST_SKIP() << "mlock not permitted: " << p.error().message;
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_GE(p->node, 0);
  EXPECT_NE(topo_->node(p->node), nullptr);
  b_->free_pages(*p);
}
