// tests/unit/config_plan_test.cpp — make_plan on hand-built topologies:
// where each key's areas land (R1-R5), what is reported instead of placed,
// and the rounding to whole pages and bitmap bits (R6).
#include <algorithm>
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
                     std::uint64_t page = 4096, unsigned order = 0, Arch arch = Arch::x86_64) {
  auto p = parse_params(text);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return p.ok() ? make_plan(*p, t, page, order, arch) : ReservationPlan{};
}

topo::NodeInfo big_node(int id, std::uint64_t bytes) {
  topo::NodeInfo n = node(id);
  n.mem.total_bytes = n.mem.free_bytes = bytes;
  return n;
}

/** The node whose synthesized window (1 GiB-aligned, in id order) holds addr. */
int node_at(const topo::Topology& t, std::uint64_t addr) {
  for (const PhysRange& r : physical_layout(t))
    if (r.start <= addr && addr < r.end) return r.node;
  return -2;
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
  // The default area goes where x86-64 puts it: top-down, the highest node.
  const auto p = plan("numa_cma=3:32M,1:8M cma_pernuma=16M cma=64M", t);
  ASSERT_EQ(p.areas.size(), 7u);
  expect_area(p.areas[0], "reserved", AreaKind::default_area, 3, 64 * kMiB);
  for (int n = 0; n < 4; ++n)
    expect_area(p.areas[1 + n], "pernuma" + std::to_string(n), AreaKind::pernuma, n, 16 * kMiB);
  // numa_cma= areas keep the order they were given in.
  expect_area(p.areas[5], "numa3", AreaKind::numa, 3, 32 * kMiB);
  expect_area(p.areas[6], "numa1", AreaKind::numa, 1, 8 * kMiB);
  EXPECT_TRUE(p.not_placed.empty());
}

TEST(MakePlan, MemorylessNodeIsSkippedByPernumaAndReportedForNuma) {
  // Node 0 has CPUs only (as on some ARM64 and CXL machines): the default
  // area lands where memory is (R5: top-down, node 2), pernuma skips node 0
  // (R2), and numa_cma=0: is reported (R3). numa2's 1 MiB is a 2 MiB pageblock.
  const auto t = topology({node(0, false), node(1), node(2)});
  const auto p = plan("cma=4M cma_pernuma=2M numa_cma=0:1M,2:1M", t);
  ASSERT_EQ(p.areas.size(), 4u);
  expect_area(p.areas[0], "reserved", AreaKind::default_area, 2, 4 * kMiB);
  expect_area(p.areas[1], "pernuma1", AreaKind::pernuma, 1, 2 * kMiB);
  expect_area(p.areas[2], "pernuma2", AreaKind::pernuma, 2, 2 * kMiB);
  expect_area(p.areas[3], "numa2", AreaKind::numa, 2, 2 * kMiB);
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
  ASSERT_EQ(p.not_placed.size(), 2u);  // the kernel warns "invalid node" for each
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
  expect_area(p.areas[0], "reserved", AreaKind::default_area, 5, 2 * kMiB);
  expect_area(p.areas[1], "pernuma2", AreaKind::pernuma, 2, 2 * kMiB);
  expect_area(p.areas[2], "pernuma5", AreaKind::pernuma, 5, 2 * kMiB);
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

TEST(MakePlan, RoundsUpToPageblocksAndBitmapBits) {
  const auto t = topology({node(0)});
  // Every CMA area is whole 2 MiB pageblocks (cma=100K is a 2 MiB area in the
  // kernel; cma_pernuma=3M gives 4 MiB areas, numa_cma=0:5M 6 MiB).
  auto p = plan("cma=100K cma_pernuma=3M numa_cma=0:5M", t);
  ASSERT_EQ(p.areas.size(), 3u);
  EXPECT_EQ(p.areas[0].bytes, 2 * kMiB);
  EXPECT_EQ(p.areas[1].bytes, 4 * kMiB);
  EXPECT_EQ(p.areas[2].bytes, 6 * kMiB);
  p = plan("cma=1 cma_pernuma=4096 numa_cma=0:2M", t);
  ASSERT_EQ(p.areas.size(), 3u);
  for (const auto& a : p.areas) EXPECT_EQ(a.bytes, 2 * kMiB) << a.name;
  // order_per_bit up to 9 fits inside a pageblock: still 2 MiB units.
  p = plan("cma=1 cma_pernuma=16K numa_cma=0:20K", t, 4096, 2);
  ASSERT_EQ(p.areas.size(), 3u);
  for (const auto& a : p.areas) EXPECT_EQ(a.bytes, 2 * kMiB) << a.name;
  // A 2 MiB-page backing with order_per_bit 1: 4 MiB units.
  p = plan("cma=5M", t, 2 * kMiB, 1);
  ASSERT_EQ(p.areas.size(), 1u);
  EXPECT_EQ(p.areas[0].bytes, 8 * kMiB);
}

TEST(MakePlan, RoundingOverflowIsReportedNotWrapped) {
  const auto t = topology({node(0)});
  const auto p = plan("cma=0xffffffffffffffff numa_cma=0:0xfffffffffffff000", t);
  EXPECT_TRUE(p.areas.empty());  // neither fits 64 bits once rounded up to 2 MiB
  ASSERT_EQ(p.not_placed.size(), 2u);
  EXPECT_EQ(p.not_placed[0].name, "reserved");
  EXPECT_NE(p.not_placed[0].reason.find("64 bits"), std::string::npos);
  EXPECT_EQ(p.not_placed[1].name, "numa0");
  EXPECT_NE(p.not_placed[1].reason.find("64 bits"), std::string::npos);
}

TEST(MakePlan, AreasThatDoNotFitAreRefusedAsTheKernelDoes) {
  // Four 256 MiB nodes (as the guest the kernel was measured in):
  // cma=300M cma_pernuma=200M gives the four per-node areas and no default
  // area; cma=2G gives no area at all; cma=1E neither.
  std::vector<topo::NodeInfo> nodes;
  for (int n = 0; n < 4; ++n) nodes.push_back(big_node(n, 256 * kMiB));
  const auto t = topology(nodes);
  auto p = plan("cma=300M cma_pernuma=200M", t);
  ASSERT_EQ(p.areas.size(), 4u);
  for (int n = 0; n < 4; ++n) expect_area(p.areas[static_cast<std::size_t>(n)], "pernuma" + std::to_string(n), AreaKind::pernuma, n, 200 * kMiB);
  ASSERT_EQ(p.not_placed.size(), 1u);
  EXPECT_EQ(p.not_placed[0].name, "reserved");
  EXPECT_NE(p.not_placed[0].reason.find("no free 2 MiB-aligned 300 MiB range"), std::string::npos)
      << p.not_placed[0].reason;
  for (auto [huge, why] : {std::pair<const char*, const char*>{"cma=2G", "no free 2 MiB-aligned 2048 MiB range"},
                           {"cma=1E", "exceeds the limit"}}) {
    p = plan(huge, t);
    EXPECT_TRUE(p.areas.empty()) << huge;
    ASSERT_EQ(p.not_placed.size(), 1u) << huge;
    EXPECT_NE(p.not_placed[0].reason.find(why), std::string::npos) << p.not_placed[0].reason;
  }
  // A per-node area larger than its node.
  p = plan("cma_pernuma=300M", t);
  EXPECT_TRUE(p.areas.empty());
  ASSERT_EQ(p.not_placed.size(), 4u);
  EXPECT_NE(p.not_placed[1].reason.find("on node 1"), std::string::npos) << p.not_placed[1].reason;
}

TEST(MakePlan, PerNodeAreasSitTopDownInTheirNodeThenTheDefault) {
  std::vector<topo::NodeInfo> nodes;
  for (int n = 0; n < 4; ++n) nodes.push_back(big_node(n, 256 * kMiB));
  const auto t = topology(nodes);  // windows at 0, 1G, 2G, 3G
  const auto p = plan("cma=64M cma_pernuma=16M numa_cma=1:8M", t);
  ASSERT_EQ(p.areas.size(), 6u);
  auto find = [&](const std::string& n) {
    for (const auto& a : p.areas)
      if (a.name == n) return a;
    ADD_FAILURE() << n;
    return PlannedArea{};
  };
  for (int n = 0; n < 4; ++n) {
    const auto a = find("pernuma" + std::to_string(n));
    EXPECT_EQ(a.phys_base, static_cast<std::uint64_t>(n) * 1024 * kMiB + 240 * kMiB) << a.name;
    EXPECT_EQ(node_at(t, a.phys_base), n);
  }
  EXPECT_EQ(find("numa1").phys_base, 1024 * kMiB + 232 * kMiB);  // right below pernuma1
  // x86-64: the default area top-down below the end of memory: node 3, below pernuma3.
  EXPECT_EQ(find("reserved").phys_base, 3 * 1024 * kMiB + 176 * kMiB);
  EXPECT_EQ(find("reserved").node, 3);
}

TEST(MakePlan, DefaultAreaFollowsTheArchitecture) {
  // Memory beyond 4 GiB: four 4 GiB nodes at 0, 4G, 8G, 12G.
  std::vector<topo::NodeInfo> nodes;
  for (int n = 0; n < 4; ++n) nodes.push_back(big_node(n, 4096 * kMiB));
  const auto t = topology(nodes);
  // arm64: below its DMA-zone limit (4 GiB), so in low memory, node 0.
  auto arm = plan("cma=64M", t, 4096, 0, Arch::arm64);
  ASSERT_EQ(arm.areas.size(), 1u);
  EXPECT_EQ(arm.areas[0].node, 0);
  EXPECT_EQ(arm.areas[0].phys_base + 64 * kMiB, 4096 * kMiB);
  // x86-64: memory reaches 4 GiB + size, so bottom-up from 4 GiB: node 1's start.
  auto x86 = plan("cma=64M", t, 4096, 0, Arch::x86_64);
  ASSERT_EQ(x86.areas.size(), 1u);
  EXPECT_EQ(x86.areas[0].node, 1);
  EXPECT_EQ(x86.areas[0].phys_base, 4096 * kMiB);
  // All memory below 4 GiB: both put it at the top of the highest node.
  const auto small = topology({big_node(0, 256 * kMiB), big_node(1, 256 * kMiB)});
  for (Arch a : {Arch::x86_64, Arch::arm64}) {
    auto q = plan("cma=16M", small, 4096, 0, a);
    ASSERT_EQ(q.areas.size(), 1u);
    EXPECT_EQ(q.areas[0].node, 1) << arch_name(a);
    EXPECT_EQ(q.areas[0].phys_base, 1024 * kMiB + 240 * kMiB) << arch_name(a);
  }
}

TEST(MakePlan, MemoryBlocksGiveTheLayout) {
  // Nodes whose memory blocks interleave: node 0 has [0,128M) and [256M,384M),
  // node 1 [128M,256M). The sim's layout and the plan follow the blocks.
  auto n0 = big_node(0, 256 * kMiB);
  auto n1 = big_node(1, 128 * kMiB);
  n0.ranges = {{0, 128 * kMiB}, {256 * kMiB, 384 * kMiB}};
  n1.ranges = {{128 * kMiB, 256 * kMiB}};
  const auto t = topology({n0, n1});
  const auto layout = physical_layout(t);
  ASSERT_EQ(layout.size(), 3u);
  EXPECT_EQ(layout[1], (PhysRange{128 * kMiB, 256 * kMiB, 1}));
  const auto p = plan("cma=32M cma_pernuma=8M", t);
  ASSERT_EQ(p.areas.size(), 3u);
  EXPECT_EQ(p.areas[1].phys_base, 376 * kMiB);  // pernuma0: top of node 0's upper range
  EXPECT_EQ(p.areas[2].phys_base, 248 * kMiB);  // pernuma1: top of node 1
  EXPECT_EQ(p.areas[0].phys_base, 344 * kMiB);  // reserved: top-down below the end, under pernuma0
  EXPECT_EQ(p.areas[0].node, 0);
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
  const std::uint64_t unit = std::max<std::uint64_t>(std::uint64_t{4096} << order, 2 * kMiB);
  const auto cma = *rc::gen::inRange<std::uint64_t>(0, 256 * kMiB);
  const auto per = *rc::gen::inRange<std::uint64_t>(0, 256 * kMiB);
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
    RC_ASSERT(a.phys_base % (2 * kMiB) == 0);
    RC_ASSERT(node_at(t, a.phys_base) == a.node);
    RC_ASSERT(node_at(t, a.phys_base + a.bytes - 1) == a.node);
  }
  for (std::size_t i = 0; i < p.areas.size(); ++i)  // never overlapping
    for (std::size_t j = i + 1; j < p.areas.size(); ++j)
      RC_ASSERT(p.areas[i].phys_base + p.areas[i].bytes <= p.areas[j].phys_base ||
                p.areas[j].phys_base + p.areas[j].bytes <= p.areas[i].phys_base);
}

}  // namespace
}  // namespace numacma::config
