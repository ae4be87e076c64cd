// src/config/plan.cpp — placing parsed parameters on a topology (SEMANTICS R1-R6).
//
//   Params                      Topology (online nodes, has_memory)
//     cma=64M        ---------> "reserved"  on first_memory_node()      (R1, R5)
//     cma_pernuma=16M --------> "pernuma<N>" on each node with memory   (R2)
//     numa_cma=1:32M,5:8M ----> "numa1" on node 1; node 5 -> not_placed (R3)
//
//   bytes := round_up(size, page_size << order_per_bit)                 (R6)
//
// The plan is only where and how much; whether the memory can really be had
// (enough hugepages, mbind allowed) is the backing's question at pool start
// (R4). A request that cannot even be placed is reported in not_placed, never
// dropped silently and never fatal.
#include <cstdint>
#include <limits>
#include <string>

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
    plan.areas.push_back({std::move(name), kind, node, rounded});
  }
};

}  // namespace

ReservationPlan make_plan(const Params& params, const topo::Topology& topology,
                          std::uint64_t page_size, unsigned order_per_bit) {
  Planner p;
  p.page_size = page_size;
  p.order_per_bit = order_per_bit;
  p.granule = granule_of(page_size, order_per_bit);

  // R1/R5: the default area on the first online node with memory.
  if (params.cma_bytes && *params.cma_bytes != 0) {
    const int node = topology.first_memory_node();
    if (node < 0)
      p.plan.not_placed.push_back({"reserved", -1, "no online node has memory"});
    else
      p.add("reserved", AreaKind::default_area, node, *params.cma_bytes);
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
  return p.plan;
}

}  // namespace numacma::config
