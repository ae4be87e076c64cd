// The auto backing on this host's node 0 (/sys): hugetlb when node 0 has
// enough free hugepages of a size, else anon; the reservation's note says
// which and why.
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
using numacma::testing::free_2m_node0;
using numacma::testing::HugepagesGuard;
using numacma::topo::Topology;
namespace os = numacma::os;

namespace {

constexpr std::uint64_t k2M = 2ULL << 20;

long free_1g_node0() {
  return numacma::testing::read_long(
      "/sys/devices/system/node/node0/hugepages/hugepages-1048576kB/free_hugepages");
}

std::unique_ptr<Backing> make_auto() {
  auto t = Topology::from_sysfs("/sys");
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  auto b = make_backing("auto", *t);
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
  return std::move(b).value();
}

}  // namespace

TEST(BackingAuto, PicksHugetlbWhenEnoughFreeHugepages) {
  HugepagesGuard guard(2);
  if (!guard.ok()) GTEST_SKIP() << guard.why();
  auto b = make_auto();
  EXPECT_EQ(b->name(), "auto");
  const long free0 = free_2m_node0();
  auto r = b->reserve(0, 2 * k2M);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, "hugetlb-2M");
  EXPECT_EQ(r->node, 0);
  EXPECT_EQ(r->mapped_bytes, 2 * k2M);
  EXPECT_EQ(r->note.rfind("auto: hugetlb-2M on node 0 (" + std::to_string(free0) +
                              " free 2M hugepages)",
                          0),
            0u)
      << r->note;
  EXPECT_EQ(r->addr_kind, os::physical_addresses_readable() ? AddrKind::physical : AddrKind::iova);
  b->release(*r);
  guard.restore();
}

TEST(BackingAuto, FallsBackToAnonAndSaysWhy) {
  // Ask for one more 2 MiB hugepage than node 0 has free (and less than a
  // 1 GiB page, so that size cannot serve it either unless one is free).
  // Holding the hugepage lock keeps the other test processes (ctest -j) from
  // changing node 0's hugepages between the count and the reservation.
  HugepagesGuard lock(0);
  const long free2m = free_2m_node0();
  if (free2m > 64) GTEST_SKIP() << "node 0 has " << free2m << " free 2M hugepages: too many to exceed cheaply";
  if (free_1g_node0() > 0) GTEST_SKIP() << "node 0 has a free 1G hugepage: auto would use it";
  const std::uint64_t bytes = static_cast<std::uint64_t>(std::max(free2m, 0L) + 1) * k2M;
  auto b = make_auto();
  auto r = b->reserve(0, bytes);
  if (!r.ok() && (r.error().code == Errc::permission ||
                  r.error().message.find("mlock(") != std::string::npos))
    GTEST_SKIP() << "mbind/mlock not permitted: " << r.error().message;
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, "anon");
  EXPECT_EQ(r->addr_kind, AddrKind::iova);
  EXPECT_EQ(r->note.rfind("auto: anon on node 0 (", 0), 0u) << r->note;
  EXPECT_NE(r->note.find("free 2M hugepages, needs " + std::to_string(bytes / k2M)), std::string::npos)
      << r->note;
  EXPECT_NE(r->note.find("IOVA"), std::string::npos) << r->note;
  auto nodes = os::page_nodes(reinterpret_cast<void*>(r->cpu_base), r->bytes, 4096);
  ASSERT_TRUE(nodes.ok());
  for (int n : *nodes) EXPECT_EQ(n, 0);
  b->release(*r);
}
