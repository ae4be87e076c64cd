// tests/unit/config_plan_test.cpp — make_plan on hand-built topologies:
// where each key's areas land (R1-R5), what is reported instead of placed,
// and the rounding to whole pages and bitmap bits (R6).
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "config/params.hpp"
#include "topology/topology.hpp"

namespace numacma::config {
namespace {

constexpr std::uint64_t kMiB = 1u << 20;

topo::NodeInfo node(int id, bool mem = true) {
  topo::NodeInfo n;
  n.id = id;
  n.has_memory = mem;
  n.cpus = {id};
  n.mem.total_bytes = mem ? 1024 * kMiB : 0;
  n.mem.free_bytes = n.mem.total_bytes;
  return n;
}

topo::Topology topology(std::vector<topo::NodeInfo> nodes) {
  return topo::Topology::from_parts(std::move(nodes), {});
}

ReservationPlan plan(const std::string& text, const topo::Topology& t,
                     std::uint64_t page = 4096, unsigned order = 0) {
  auto p = parse_params(text);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return p.ok() ? make_plan(*p, t, page, order) : ReservationPlan{};
}

void expect_area(const PlannedArea& a, const std::string& name, AreaKind kind, int node,
                 std::uint64_t bytes) {
  EXPECT_EQ(a.name, name);
  EXPECT_EQ(a.kind, kind) << a.name;
  EXPECT_EQ(a.node, node) << a.name;
  EXPECT_EQ(a.bytes, bytes) << a.name;
}

TEST(MakePlan, EmptyParamsPlanNothing) {
  const auto t = topology({node(0), node(1)});
  const auto p = plan("", t);
  EXPECT_TRUE(p.areas.empty());
  EXPECT_TRUE(p.not_placed.empty());
}

TEST(MakePlan, OneNodeAllKeys) {
  const auto t = topology({node(0)});
  const auto p = plan("cma=64M cma_pernuma=16M numa_cma=0:8M", t);
  ASSERT_EQ(p.areas.size(), 3u);
  expect_area(p.areas[0], "reserved", AreaKind::default_area, 0, 64 * kMiB);
  expect_area(p.areas[1], "pernuma0", AreaKind::pernuma, 0, 16 * kMiB);
  expect_area(p.areas[2], "numa0", AreaKind::numa, 0, 8 * kMiB);
  EXPECT_TRUE(p.not_placed.empty());
}

TEST(MakePlan, FourNodesOrderIsDefaultPernumaNuma) {
  const auto t = topology({node(0), node(1), node(2), node(3)});
  // Keys given in the "wrong" order: the plan order does not follow the text.
  const auto p = plan("numa_cma=3:32M,1:8M cma_pernuma=16M cma=64M", t);
  ASSERT_EQ(p.areas.size(), 7u);
  expect_area(p.areas[0], "reserved", AreaKind::default_area, 0, 64 * kMiB);
  for (int n = 0; n < 4; ++n)
    expect_area(p.areas[1 + n], "pernuma" + std::to_string(n), AreaKind::pernuma, n, 16 * kMiB);
  // numa_cma= areas keep the order they were given in.
  expect_area(p.areas[5], "numa3", AreaKind::numa, 3, 32 * kMiB);
  expect_area(p.areas[6], "numa1", AreaKind::numa, 1, 8 * kMiB);
  EXPECT_TRUE(p.not_placed.empty());
}

TEST(MakePlan, MemorylessNodeIsSkippedByPernumaAndReportedForNuma) {
  // Node 0 has CPUs only (as on some ARM64 and CXL machines): the default
  // area moves to node 1 (R5), pernuma skips node 0 (R2), and numa_cma=0:
  // is reported (R3).
  const auto t = topology({node(0, false), node(1), node(2)});
  const auto p = plan("cma=4M cma_pernuma=2M numa_cma=0:1M,2:1M", t);
  ASSERT_EQ(p.areas.size(), 4u);
  expect_area(p.areas[0], "reserved", AreaKind::default_area, 1, 4 * kMiB);
  expect_area(p.areas[1], "pernuma1", AreaKind::pernuma, 1, 2 * kMiB);
  expect_area(p.areas[2], "pernuma2", AreaKind::pernuma, 2, 2 * kMiB);
  expect_area(p.areas[3], "numa2", AreaKind::numa, 2, 1 * kMiB);
  ASSERT_EQ(p.not_placed.size(), 1u);
  EXPECT_EQ(p.not_placed[0].name, "numa0");
  EXPECT_EQ(p.not_placed[0].node, 0);
  EXPECT_EQ(p.not_placed[0].reason, "node 0 has no memory");
}

TEST(MakePlan, NumaCmaToMissingNodeIsReportedNotFatal) {
  const auto t = topology({node(0), node(1)});
  const auto p = plan("numa_cma=5:4M,1:4M,1023:1M", t);
  ASSERT_EQ(p.areas.size(), 1u);
  expect_area(p.areas[0], "numa1", AreaKind::numa, 1, 4 * kMiB);
  ASSERT_EQ(p.not_placed.size(), 2u);
  EXPECT_EQ(p.not_placed[0].name, "numa5");
  EXPECT_EQ(p.not_placed[0].node, 5);
  EXPECT_EQ(p.not_placed[0].reason, "node 5 does not exist");
  EXPECT_EQ(p.not_placed[1].name, "numa1023");
  EXPECT_EQ(p.not_placed[1].reason, "node 1023 does not exist");
}

TEST(MakePlan, SparseNodeIds) {
  // Online nodes need not be 0..N-1 (offlined or hot-added nodes).
  const auto t = topology({node(2), node(5)});
  const auto p = plan("cma=1M cma_pernuma=1M numa_cma=3:1M", t);
  ASSERT_EQ(p.areas.size(), 3u);
  expect_area(p.areas[0], "reserved", AreaKind::default_area, 2, kMiB);
  expect_area(p.areas[1], "pernuma2", AreaKind::pernuma, 2, kMiB);
  expect_area(p.areas[2], "pernuma5", AreaKind::pernuma, 5, kMiB);
  ASSERT_EQ(p.not_placed.size(), 1u);
  EXPECT_EQ(p.not_placed[0].reason, "node 3 does not exist");
}

TEST(MakePlan, NoNodeWithMemory) {
  const auto t = topology({node(0, false), node(1, false)});
  const auto p = plan("cma=4M cma_pernuma=4M", t);
  EXPECT_TRUE(p.areas.empty());
  ASSERT_EQ(p.not_placed.size(), 2u);
  EXPECT_EQ(p.not_placed[0].name, "reserved");
  EXPECT_EQ(p.not_placed[0].node, -1);
  EXPECT_NE(p.not_placed[0].reason.find("no online node has memory"), std::string::npos);
  EXPECT_EQ(p.not_placed[1].name, "pernuma");
}

TEST(MakePlan, ZeroSizePlansNothing) {
  const auto t = topology({node(0), node(1)});
  const auto p = plan("cma=0 cma_pernuma=0K numa_cma=1:0,7:0", t);
  EXPECT_TRUE(p.areas.empty());
  EXPECT_TRUE(p.not_placed.empty());  // even node 7: nothing was asked of it
}

TEST(MakePlan, RoundsUpToPagesAndBitmapBits) {
  const auto t = topology({node(0)});
  // Whole pages (order_per_bit 0).
  auto p = plan("cma=1 cma_pernuma=4096 numa_cma=0:4097", t);
  ASSERT_EQ(p.areas.size(), 3u);
  EXPECT_EQ(p.areas[0].bytes, 4096u);
  EXPECT_EQ(p.areas[1].bytes, 4096u);
  EXPECT_EQ(p.areas[2].bytes, 8192u);
  // order_per_bit 2: one bit per 16 KiB.
  p = plan("cma=1 cma_pernuma=16K numa_cma=0:20K", t, 4096, 2);
  ASSERT_EQ(p.areas.size(), 3u);
  EXPECT_EQ(p.areas[0].bytes, 16384u);
  EXPECT_EQ(p.areas[1].bytes, 16384u);
  EXPECT_EQ(p.areas[2].bytes, 32768u);
  // A 2 MiB-page backing with order_per_bit 1: 4 MiB units.
  p = plan("cma=5M", t, 2 * kMiB, 1);
  ASSERT_EQ(p.areas.size(), 1u);
  EXPECT_EQ(p.areas[0].bytes, 8 * kMiB);
}

TEST(MakePlan, RoundingOverflowIsReportedNotWrapped) {
  const auto t = topology({node(0)});
  const auto p = plan("cma=0xffffffffffffffff numa_cma=0:0xfffffffffffff000", t);
  ASSERT_EQ(p.areas.size(), 1u);  // the second is already whole pages
  EXPECT_EQ(p.areas[0].name, "numa0");
  EXPECT_EQ(p.areas[0].bytes, 0xfffffffffffff000u);
  ASSERT_EQ(p.not_placed.size(), 1u);
  EXPECT_EQ(p.not_placed[0].name, "reserved");
  EXPECT_NE(p.not_placed[0].reason.find("64 bits"), std::string::npos);
}

TEST(MakePlan, UnusableGranuleIsReported) {
  const auto t = topology({node(0)});
  for (auto [page, order] : {std::pair<std::uint64_t, unsigned>{0, 0}, {4096, 64}, {4096, 60}}) {
    const auto p = plan("cma=4M", t, page, order);
    EXPECT_TRUE(p.areas.empty()) << page << " << " << order;
    ASSERT_EQ(p.not_placed.size(), 1u);
    EXPECT_NE(p.not_placed[0].reason.find("order_per_bit"), std::string::npos);
  }
}

RC_GTEST_PROP(MakePlanProp, SizesAreWholeUnitsAndNeverSmaller, ()) {
  const auto t = topology({node(0), node(1, false), node(2), node(3)});
  const auto order = *rc::gen::inRange<unsigned>(0, 10);
  const std::uint64_t unit = std::uint64_t{4096} << order;
  const auto cma = *rc::gen::inRange<std::uint64_t>(0, std::uint64_t{1} << 40);
  const auto per = *rc::gen::inRange<std::uint64_t>(0, std::uint64_t{1} << 40);
  Params params;
  params.cma_bytes = cma;
  params.pernuma_bytes = per;
  const auto p = make_plan(params, t, 4096, order);
  RC_ASSERT(p.not_placed.empty());
  RC_ASSERT(p.areas.size() == (cma ? 1u : 0u) + (per ? 3u : 0u));
  for (const auto& a : p.areas) {
    const std::uint64_t want = a.kind == AreaKind::default_area ? cma : per;
    RC_ASSERT(a.bytes % unit == 0);
    RC_ASSERT(a.bytes >= want);
    RC_ASSERT(a.bytes - want < unit);
    RC_ASSERT(a.node != 1);
  }
}

}  // namespace
}  // namespace numacma::config
