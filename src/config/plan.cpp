// src/config/plan.cpp — placing parsed parameters on a topology (docs/semantics.md R1-R6),
// as the kernel's dma_contiguous_reserve() does.
//
//   Params                       Topology (online nodes, has_memory, memory blocks)
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

/** The kernel's order (dma_contiguous_reserve): for each node in id order
 *  pernuma<N> then numa<N>, each inside its node; then the default area
 *  below the architecture's limit. What does not fit moves to not_placed. */
void place(ReservationPlan& plan, const topo::Topology& topology) {
  const std::vector<PhysRange> layout = physical_layout(topology);
  Memblock mem(layout);
  std::vector<std::size_t> order;
  for (const topo::NodeInfo& n : topology.nodes())
    for (AreaKind k : {AreaKind::pernuma, AreaKind::numa})
      for (std::size_t i = 0; i < plan.areas.size(); ++i)
        if (plan.areas[i].kind == k && plan.areas[i].node == n.id) order.push_back(i);
  for (std::size_t i = 0; i < plan.areas.size(); ++i)
    if (plan.areas[i].kind == AreaKind::default_area) order.push_back(i);
  std::vector<bool> keep(plan.areas.size(), true);
  for (std::size_t i : order) {
    PlannedArea& a = plan.areas[i];
    const bool dflt = a.kind == AreaKind::default_area;
    Result<std::uint64_t> base =
        mem.cma_reserve(a.bytes, dflt ? default_area_limit(plan.arch, layout) : 0, dflt ? -1 : a.node);
    if (!base) {
      plan.not_placed.push_back({a.name, dflt ? -1 : a.node, "not reserved: " + base.error().message});
      keep[i] = false;
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

}  // namespace

ReservationPlan make_plan(const Params& params, const topo::Topology& topology,
                          std::uint64_t page_size, unsigned order_per_bit, Arch arch) {
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
  place(p.plan, topology);
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
