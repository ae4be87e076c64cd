// A reservation over a fixture is simulated and remembers its sysfs root:
// reserve with backing auto over tests/data/... records sim, a real backing
// is refused, status and an attached pool answer with the reservation's
// root (not the caller's /sys); and a reservation of nothing (cma=0) is a
// failure that leaves nothing behind.
#include <gtest/gtest.h>

#include <string>

#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "shared_test_util.hpp"

using numacma::AddressKind;
using numacma::Errc;
using numacma::Pool;
using numacma::ReserveOptions;
using numacma::testing::fixture;
using numacma::testing::ScopedRunDir;

TEST(SharedFixture, AutoOverAFixtureIsSimAndTheRootIsRemembered) {
  ScopedRunDir run;
  ReserveOptions o;
  o.params = "cma=8M cma_pernuma=2M";
  o.backing = "auto";
  o.sysfs_root = fixture("arm64-4n");
  auto r = numacma::reserve("fx", o);
  ASSERT_TRUE(r) << r.error().message;
  auto st = numacma::status("fx");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->backing, "sim");
  EXPECT_EQ(st->sysfs_root, fixture("arm64-4n"));
  ASSERT_EQ(st->areas.size(), 5u);
  for (const auto& a : st->areas) {
    EXPECT_EQ(a.area.backing, "sim");
    EXPECT_FALSE(a.area.device_usable);
  }
  // The node facts come from the reservation's tree: the fixture's 1024
  // hugepages a node, and no numastat (unknown, -1), never this machine's.
  ASSERT_FALSE(st->nodes.empty());
  for (const auto& n : st->nodes) {
    EXPECT_EQ(n.numa_hit, -1) << n.alloc.node;
    EXPECT_EQ(n.hugepages_total, 1024) << n.alloc.node;
  }
  EXPECT_EQ(st->nodes.back().alloc.node, 3);  // the fixture's nodes, not this host's one
  auto p = Pool::attach("fx");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->sysfs_root(), fixture("arm64-4n"));
  EXPECT_EQ(p->address_kind(), AddressKind::simulated);
}

TEST(SharedFixture, ARealBackingOverAFixtureIsRefused) {
  ScopedRunDir run;
  ReserveOptions o;
  o.params = "cma=8M";
  o.sysfs_root = fixture("arm64-4n");
  for (const char* real : {"anon", "hugetlb", "hugetlb-1G"}) {
    o.backing = real;
    auto r = numacma::reserve("fx", o);
    ASSERT_FALSE(r) << real;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find("fixture"), std::string::npos) << r.error().message;
  }
  auto names = numacma::reserved_pools();
  EXPECT_TRUE(!names || names->empty());
}

TEST(SharedFixture, ReservingNothingFailsAndLeavesNothing) {
  ScopedRunDir run;
  for (const char* params : {"cma=0", "cma=0 cma_pernuma=0", "numa_cma=9:4M"}) {
    auto r = numacma::reserve("empty", numacma::testing::sim_options(params, "arm64-4n"));
    ASSERT_FALSE(r) << params;
    EXPECT_EQ(r.error().code, Errc::no_memory) << r.error().message;
    EXPECT_NE(r.error().message.find("nothing to reserve"), std::string::npos) << r.error().message;
    auto names = numacma::reserved_pools();
    EXPECT_TRUE(!names || names->empty()) << params;
  }
}
