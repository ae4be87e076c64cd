// tests/unit/config_profile_test.cpp — make_plan under the kernel profiles
// (docs/semantics.md, "Kernel profiles"): 6.12's pernuma<N> and numa<N>
// against 7.2's one numa<N> per node (d5cae2261b86), CONFIG_CMA_SIZE_PERNUMA
// (7e6ace2535d0), the order of reservation, and the profile names.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/params.hpp"
#include "topology/topology.hpp"

namespace numacma::config {
namespace {

constexpr std::uint64_t kMiB = 1u << 20;
const Profile k612{KernelProfile::v6_12, false};
const Profile k72{KernelProfile::v7_2, false};
const Profile k72_auto{KernelProfile::v7_2, true};

topo::NodeInfo node(int id, bool mem = true, std::uint64_t bytes = 1024 * kMiB) {
  topo::NodeInfo n;
  n.id = id;
  n.has_memory = mem;
  n.cpus = {id};
  n.mem.total_bytes = mem ? bytes : 0;
  n.mem.free_bytes = n.mem.total_bytes;
  return n;
}

topo::Topology topology(std::vector<topo::NodeInfo> nodes) { return topo::Topology::from_parts(std::move(nodes), {}); }

ReservationPlan plan(const std::string& text, const topo::Topology& t, const Profile& profile,
                     Arch arch = Arch::x86_64) {
  auto p = parse_params(text);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return p.ok() ? make_plan(*p, t, 4096, 0, arch, profile) : ReservationPlan{};
}

/** "reserved:64,numa0:16,..." (MiB), in plan order. */
std::string areas(const ReservationPlan& p) {
  std::string s;
  for (const PlannedArea& a : p.areas)
    s += (s.empty() ? "" : ",") + a.name + ":" + std::to_string(a.bytes / kMiB);
  return s;
}

std::string not_placed(const ReservationPlan& p) {
  std::string s;
  for (const NotPlaced& n : p.not_placed) s += (s.empty() ? "" : "; ") + n.name + ": " + n.reason;
  return s;
}

TEST(KernelProfile, NamesRoundTripAndOthersAreRefused) {
  for (const char* name : {"6.12", "7.2"}) {
    auto k = parse_kernel_profile(name);
    ASSERT_TRUE(k.ok()) << name;
    EXPECT_STREQ(kernel_profile_name(*k), name);
  }
  for (const char* bad : {"", "6.1", "7", "7.2.0", "v7.2", "latest"}) {
    auto k = parse_kernel_profile(bad);
    ASSERT_FALSE(k.ok()) << bad;
    EXPECT_EQ(k.error().code, Errc::invalid_argument);
    EXPECT_NE(k.error().message.find("expected 6.12 or 7.2"), std::string::npos) << k.error().message;
  }
}

TEST(KernelProfile, SixTwelveKeepsTwoAreasANodeSevenTwoOneWithNumaCmaWinning) {
  const auto t = topology({node(0), node(1), node(2)});
  const std::string params = "cma=64M cma_pernuma=16M numa_cma=1:32M";
  EXPECT_EQ(areas(plan(params, t, k612)), "reserved:64,pernuma0:16,pernuma1:16,pernuma2:16,numa1:32");
  EXPECT_EQ(areas(plan(params, t, k72)), "reserved:64,numa0:16,numa1:32,numa2:16");
  // The default: the same plan as before profiles existed.
  auto parsed = parse_params(params);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(areas(make_plan(*parsed, t, 4096, 0, Arch::x86_64)), areas(plan(params, t, k612)));
}

TEST(KernelProfile, SevenTwoNumaCmaAloneAndAZeroSizeFallingBackToCmaPernuma) {
  const auto t = topology({node(0), node(1), node(2)});
  EXPECT_EQ(areas(plan("numa_cma=2:8M", t, k72)), "numa2:8");
  // numa_cma_size[nid] ?: pernuma_size_bytes: a 0 for a node means the common size.
  EXPECT_EQ(areas(plan("cma_pernuma=4M numa_cma=0:0,2:8M", t, k72)), "numa0:4,numa1:4,numa2:8");
}

TEST(KernelProfile, CmaSizePernumaGivesEveryNodeTheDefaultAreasRoundedSize) {
  const auto t = topology({node(0), node(1), node(2), node(3)});
  // 5M rounds up to 6M (whole 2 MiB pageblocks): cma_get_size() of the default area.
  EXPECT_EQ(areas(plan("cma=5M", t, k72_auto)), "reserved:6,numa0:6,numa1:6,numa2:6,numa3:6");
  // Off: without the option, with a key given (even cma_pernuma=0), without a default area.
  EXPECT_EQ(areas(plan("cma=5M", t, k72)), "reserved:6");
  EXPECT_EQ(areas(plan("cma=5M cma_pernuma=0", t, k72_auto)), "reserved:6");
  EXPECT_EQ(areas(plan("cma=5M numa_cma=1:2M", t, k72_auto)), "reserved:6,numa1:2");
  EXPECT_EQ(areas(plan("cma=0", t, k72_auto)), "");
  EXPECT_EQ(areas(plan("", t, k72_auto)), "");
  // One node online: nothing more.
  EXPECT_EQ(areas(plan("cma=4M", topology({node(0)}), k72_auto)), "reserved:4");
}

TEST(KernelProfile, CmaSizePernumaCountsOnlineNodesAsEachArchitectureHasThemAtBoot) {
  // Node 1 has CPUs only. x86-64 has onlined only node 0 when CMA is
  // reserved (one node: no per-node areas); arm64 both (two nodes: node 0
  // gets its area, node 1 none, having no memory).
  const auto t = topology({node(0), node(1, false)});
  EXPECT_EQ(areas(plan("cma=4M", t, k72_auto, Arch::x86_64)), "reserved:4");
  const auto arm = plan("cma=4M", t, k72_auto, Arch::arm64);
  EXPECT_EQ(areas(arm), "reserved:4,numa0:4");
  EXPECT_EQ(not_placed(arm), "");
}

TEST(KernelProfile, SevenTwoReportsMissingAndMemorylessNodesAsRTwoAndRThree) {
  const auto t = topology({node(0), node(1, false), node(2)});
  const auto p = plan("cma_pernuma=4M numa_cma=1:8M,5:8M", t, k72);
  EXPECT_EQ(areas(p), "numa0:4,numa2:4");
  EXPECT_EQ(not_placed(p), "numa5: node 5 does not exist; numa1: node 1 has no memory");
}

TEST(KernelProfile, SevenTwoReservesTheDefaultAreaFirst) {
  // Two 256 MiB nodes: x86-64 puts the default area top-down, at the top of
  // node 1. 6.12 reserves numa1 first (the top of node 1) and the default
  // area below it; 7.2 the other way round.
  const auto t = topology({node(0, true, 256 * kMiB), node(1, true, 256 * kMiB)});
  const auto phys = [](const ReservationPlan& p, const std::string& name) {
    for (const PlannedArea& a : p.areas)
      if (a.name == name) return a.phys_base;
    ADD_FAILURE() << name;
    return std::uint64_t{0};
  };
  const auto old = plan("cma=16M numa_cma=1:8M", t, k612);
  const auto now = plan("cma=16M numa_cma=1:8M", t, k72);
  EXPECT_EQ(areas(old), areas(now));
  EXPECT_EQ(phys(old, "numa1"), 1024 * kMiB + 248 * kMiB);
  EXPECT_EQ(phys(old, "reserved"), 1024 * kMiB + 232 * kMiB);
  EXPECT_EQ(phys(now, "reserved"), 1024 * kMiB + 240 * kMiB);
  EXPECT_EQ(phys(now, "numa1"), 1024 * kMiB + 232 * kMiB);
}

TEST(KernelProfile, SevenTwoReservesNoPerNodeAreaWhenTheDefaultAreaFails) {
  // The default area does not fit (300M on 256 MiB nodes): 6.12 still has its
  // per-node areas (reserved before it); 7.2 returns before reserving them.
  const auto t = topology({node(0, true, 256 * kMiB), node(1, true, 256 * kMiB)});
  const auto old = plan("cma=300M cma_pernuma=16M", t, k612);
  EXPECT_EQ(areas(old), "pernuma0:16,pernuma1:16");
  const auto now = plan("cma=300M cma_pernuma=16M", t, k72);
  EXPECT_EQ(areas(now), "");
  ASSERT_EQ(now.not_placed.size(), 3u) << not_placed(now);
  EXPECT_EQ(now.not_placed[0].name, "reserved");
  for (int n = 0; n < 2; ++n) {
    EXPECT_EQ(now.not_placed[1 + n].name, "numa" + std::to_string(n));
    EXPECT_NE(now.not_placed[1 + n].reason.find("the default area failed"), std::string::npos)
        << now.not_placed[1 + n].reason;
  }
  // Without cma= there is no default area to fail: the per-node areas are reserved.
  EXPECT_EQ(areas(plan("cma_pernuma=16M", t, k72)), "numa0:16,numa1:16");
}

}  // namespace
}  // namespace numacma::config
