// src/config/plan.cpp — placing parsed parameters on a topology (docs/semantics.md R1-R6),
// as the kernel's dma_contiguous_reserve() does.
//
//   Params                       Topology (online nodes, has_memory, memory blocks)
//   (Profile 6.12; 7.2 makes one "numa<N>" per node instead: plan_numa_v7_2)
//     cma=64M        ----------> "reserved"   below the arch's limit (R1, R5)
//     cma_pernuma=16M ---------> "pernuma<N>" in each node with memory (R2)
//     numa_cma=1:32M,5:8M -----> "numa1" in node 1; node 5 -> not_placed (R3)
//
//   bytes := round_up(size, max(2 MiB pageblock, page_size << order_per_bit))  (R6)
//   place(): node by node pernuma<N> then numa<N>, then the default area, each
//            where cma_declare_contiguous_nid puts it (memblock.hpp); what does
//            not fit -> not_placed with the reason (R4: the kernel warns, goes on)
//
// The plan is where and how much; whether the memory can really be had on a
// real backing (enough hugepages, mbind allowed) is the backing's question at
// pool start (R4). Nothing is dropped silently and nothing here is fatal.
#include <cstdint>
#include <limits>
#include <string>

#include "config/memblock.hpp"
#include "config/params.hpp"

namespace numacma::config {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

/** The rounding unit P << order_per_bit, or 0 when it does not exist
 *  (page_size 0, or the shift leaves 64 bits). */
std::uint64_t granule_of(std::uint64_t page_size, unsigned order_per_bit) noexcept {
  if (page_size == 0 || order_per_bit >= 64) return 0;
  if (page_size > (kMax >> order_per_bit)) return 0;
  return page_size << order_per_bit;
}

struct Planner {
  ReservationPlan plan;
  std::uint64_t granule = 0;
  std::uint64_t page_size = 0;
  unsigned order_per_bit = 0;

  void add(std::string name, AreaKind kind, int node, std::uint64_t bytes) {
    if (granule == 0) {
      plan.not_placed.push_back({std::move(name), node,
                                 "page size " + std::to_string(page_size) + " << order_per_bit " +
                                     std::to_string(order_per_bit) + " is not a usable unit"});
      return;
    }
    const std::uint64_t rem = bytes % granule;
    if (rem != 0 && bytes > kMax - (granule - rem)) {
      plan.not_placed.push_back({std::move(name), node,
                                 "size " + std::to_string(bytes) +
                                     " does not fit in 64 bits once rounded up to " +
                                     std::to_string(granule) + " bytes"});
      return;
    }
    const std::uint64_t rounded = rem == 0 ? bytes : bytes + (granule - rem);
    plan.areas.push_back({std::move(name), kind, node, rounded, 0});
  }
};

/** The kernel's order (dma_contiguous_reserve). 6.12: for each node in id
 *  order pernuma<N> then numa<N>, each inside its node; then the default
 *  area below the architecture's limit. 7.2: the default area first, then
 *  numa<N> node by node, and none of them when the default area failed (its
 *  dma_contiguous_reserve returns before dma_numa_cma_reserve). What does not
 *  fit moves to not_placed. */
void place(ReservationPlan& plan, const topo::Topology& topology, KernelProfile kernel) {
  const std::vector<PhysRange> layout = physical_layout(topology);
  Memblock mem(layout);
  std::vector<std::size_t> order;
  const auto defaults = [&] {
    for (std::size_t i = 0; i < plan.areas.size(); ++i)
      if (plan.areas[i].kind == AreaKind::default_area) order.push_back(i);
  };
  if (kernel == KernelProfile::v7_2) defaults();
  for (const topo::NodeInfo& n : topology.nodes())
    for (AreaKind k : {AreaKind::pernuma, AreaKind::numa})
      for (std::size_t i = 0; i < plan.areas.size(); ++i)
        if (plan.areas[i].kind == k && plan.areas[i].node == n.id) order.push_back(i);
  if (kernel == KernelProfile::v6_12) defaults();
  std::vector<bool> keep(plan.areas.size(), true);
  bool default_failed = false;
  for (std::size_t i : order) {
    PlannedArea& a = plan.areas[i];
    const bool dflt = a.kind == AreaKind::default_area;
    if (default_failed) {
      plan.not_placed.push_back({a.name, a.node,
                                 "not reserved: the default area failed, and 7.2 reserves the per-node "
                                 "areas only after it"});
      keep[i] = false;
      continue;
    }
    Result<std::uint64_t> base =
        mem.cma_reserve(a.bytes, dflt ? default_area_limit(plan.arch, layout) : 0, dflt ? -1 : a.node);
    if (!base) {
      plan.not_placed.push_back({a.name, dflt ? -1 : a.node, "not reserved: " + base.error().message});
      keep[i] = false;
      default_failed = dflt && kernel == KernelProfile::v7_2;
      continue;
    }
    a.phys_base = *base;
    if (dflt) {  // the node it landed on
      for (const PhysRange& r : layout)
        if (r.start <= *base && *base < r.end) a.node = r.node;
    }
  }
  std::vector<PlannedArea> kept;
  for (std::size_t i = 0; i < plan.areas.size(); ++i)
    if (keep[i]) kept.push_back(std::move(plan.areas[i]));
  plan.areas = std::move(kept);
  plan.free_after = mem.free();
}

/** 7.2's dma_numa_cma_reserve (d5cae2261b86, 7e6ace2535d0): one "numa<N>"
 *  per online node, numa_cma='s size where it names the node, else
 *  cma_pernuma='s; with cma_size_pernuma and neither key given, the default
 *  area's reserved size when more than one node is online. */
void plan_numa_v7_2(Planner& p, const Params& params, const topo::Topology& topology, const Profile& profile) {
  std::uint64_t per_node = params.pernuma_bytes.value_or(0);
  const bool configured = params.pernuma_bytes.has_value() || !params.numa_cma.empty();
  // nr_online_nodes when dma_contiguous_reserve runs: x86-64 has onlined only
  // the nodes with memory by then, arm64 every node it parsed.
  std::size_t online = 0;
  for (const topo::NodeInfo& n : topology.nodes()) online += p.plan.arch == Arch::arm64 || n.has_memory;
  if (profile.cma_size_pernuma && !configured && online > 1)
    for (const PlannedArea& a : p.plan.areas)
      if (a.kind == AreaKind::default_area) per_node = a.bytes;  // cma_get_size(): the rounded size
  for (const auto& [node, bytes] : params.numa_cma)
    if (bytes != 0 && topology.node(node) == nullptr)
      p.plan.not_placed.push_back({"numa" + std::to_string(node), node,
                                   "node " + std::to_string(node) + " does not exist"});
  bool any = false;
  for (const topo::NodeInfo& n : topology.nodes()) {
    std::uint64_t named = 0;
    for (const auto& [node, bytes] : params.numa_cma)
      if (node == n.id) named = bytes;
    const std::uint64_t size = named != 0 ? named : per_node;  // "per-node numa setting has the priority"
    if (size == 0) continue;
    std::string name = "numa" + std::to_string(n.id);
    if (!n.has_memory) {  // as R2 and R3: the size for every node skips it, a named node is reported
      if (named != 0)
        p.plan.not_placed.push_back({std::move(name), n.id, "node " + std::to_string(n.id) + " has no memory"});
      continue;
    }
    any = true;
    p.add(std::move(name), AreaKind::numa, n.id, size);
  }
  if (!any && per_node != 0) p.plan.not_placed.push_back({"numa", -1, "no online node has memory"});
}

}  // namespace

ReservationPlan make_plan(const Params& params, const topo::Topology& topology,
                          std::uint64_t page_size, unsigned order_per_bit, Arch arch, const Profile& profile) {
  Planner p;
  p.page_size = page_size;
  p.order_per_bit = order_per_bit;
  p.granule = granule_of(page_size, order_per_bit);
  // Every CMA area is a whole number of pageblocks (cma_declare_contiguous_nid
  // aligns the size up to CMA_MIN_ALIGNMENT_BYTES).
  if (p.granule != 0 && p.granule < kCmaMinAlignment) p.granule = kCmaMinAlignment;
  p.plan.arch = arch;

  // R1/R5: the default area; its node is where place() puts it.
  if (params.cma_bytes && *params.cma_bytes != 0) {
    if (topology.first_memory_node() < 0)
      p.plan.not_placed.push_back({"reserved", -1, "no online node has memory"});
    else
      p.add("reserved", AreaKind::default_area, -1, *params.cma_bytes);
  }

  if (profile.kernel == KernelProfile::v7_2) {
    plan_numa_v7_2(p, params, topology, profile);
    place(p.plan, topology, profile.kernel);
    return p.plan;
  }

  // R2: one area per online node with memory, ascending id (nodes() is sorted).
  if (params.pernuma_bytes && *params.pernuma_bytes != 0) {
    bool any = false;
    for (const auto& n : topology.nodes()) {
      if (!n.has_memory) continue;
      any = true;
      p.add("pernuma" + std::to_string(n.id), AreaKind::pernuma, n.id, *params.pernuma_bytes);
    }
    if (!any) p.plan.not_placed.push_back({"pernuma", -1, "no online node has memory"});
  }

  // R3: the named nodes, in the order given; a bad node is reported, not fatal.
  for (const auto& [node, bytes] : params.numa_cma) {
    if (bytes == 0) continue;
    std::string name = "numa" + std::to_string(node);
    const topo::NodeInfo* info = topology.node(node);
    if (info == nullptr)
      p.plan.not_placed.push_back({std::move(name), node,
                                   "node " + std::to_string(node) + " does not exist"});
    else if (!info->has_memory)
      p.plan.not_placed.push_back({std::move(name), node,
                                   "node " + std::to_string(node) + " has no memory"});
    else
      p.add(std::move(name), AreaKind::numa, node, bytes);
  }
  place(p.plan, topology, profile.kernel);
  return p.plan;
}

void place_device_area(ReservationPlan& plan, PlannedArea area) {
  Memblock mem(plan.free_after, 0);
  Result<std::uint64_t> base = mem.alloc_top_down(area.bytes, kCmaMinAlignment, 0, mem.end(), area.node);
  if (!base) {
    plan.not_placed.push_back({area.name, area.node, "device area does not fit: " + base.error().message});
    return;
  }
  area.phys_base = *base;
  plan.areas.push_back(std::move(area));
  plan.free_after = mem.free();
}

}  // namespace numacma::config
