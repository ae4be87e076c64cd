// src/pool/builder.cpp — building a Pool (the "boot": docs/semantics.md R1-R6). The
// same steps make a private pool here and an attached one in
// src/shared/attach.cpp; only where each area's state lives differs.
//
//   set_topology          topology, CPUs' nodes, per-node tables
//   plan (private)        PoolOptions --parse_params--> Params --make_plan--> ReservationPlan
//   add_area, per area    private: backing.reserve(node, bytes) -> core::Area in the heap
//                         attached: the reservation's memory and state, mapped
//   finish                the CPU index, the DMA mode
//   failures (R3, R4) become ReservationNotes; the pool starts regardless.
#include <algorithm>

#include "pool/pool_impl.hpp"

namespace numacma {

namespace detail {

void PoolImpl::map_cpus() {
  // The kernel's numa_mem_id(): a CPU's own node, or, on a memoryless node,
  // the nearest node with memory (its zonelist's first). No memory anywhere:
  // the CPU's own node, whose page requests then fail as they would.
  const auto mem_node = [&](int node) {
    const topo::NodeInfo* ni = topology.node(node);
    if (ni != nullptr && ni->has_memory) return node;
    const std::vector<int> near = topology.nodes_by_distance(node);
    return near.empty() ? node : near.front();
  };
  int max_cpu = -1;
  for (const topo::NodeInfo& n : topology.nodes())
    for (int c : n.cpus) max_cpu = std::max(max_cpu, c);
  cpu_mem_node_.assign(static_cast<std::size_t>(max_cpu + 1), kNoNode);
  for (const topo::NodeInfo& n : topology.nodes()) {
    const int m = mem_node(n.id);
    for (int c : n.cpus) cpu_mem_node_[static_cast<std::size_t>(c)] = m;
  }
  unknown_cpu_node_ = knows_cpu(0) ? cpu_mem_node_[0] : topology.first_memory_node();
  if (unknown_cpu_node_ == kNoNode && !topology.nodes().empty()) unknown_cpu_node_ = topology.nodes().front().id;
}

void PoolImpl::set_topology(topo::Topology t) {
  topology = std::move(t);
  map_cpus();
  online_.assign(static_cast<std::size_t>(std::max(topology.max_node_id() + 1, 0)), 0);
  for (std::size_t n = 0; n < online_.size(); ++n) online_[n] = topology.is_online(static_cast<int>(n)) ? 1 : 0;
  layout = config::physical_layout(topology);
  zones = config::zones_of(config_arch(opts.arch), layout);
  node_zones_.assign(static_cast<std::size_t>(std::max(topology.max_node_id() + 1, 0)), NodeZones{});
  for (const topo::NodeInfo& n : topology.nodes()) {
    const std::vector<int> near = topology.nodes_by_distance(n.id);
    NodeZones& z = node_zones_[static_cast<std::size_t>(n.id)];
    z.node = {config::zone_node(zones, config::Zone::dma, n.id, layout, near),
              config::zone_node(zones, config::Zone::dma32, n.id, layout, near)};
    for (config::Zone zone : {config::Zone::dma, config::Zone::dma32, config::Zone::normal})
      z.floor[static_cast<std::size_t>(zone)] = config::zone_floor(zones, zone, n.id, layout);
  }
  const int max_node = std::max(topology.max_node_id(), 0);
  areas.size_nodes(max_node);
  pages.size_nodes(max_node);
  counters.own(max_node);
}

void PoolImpl::finish() {
  areas.index_by_cpu();
  takes_zones_ = backing && backing->takes_zones();
  const auto& all = areas.slots();
  const bool any_iova = std::any_of(all.begin(), all.end(), [](const auto& s) { return s->iova(); });
  switch (opts.dma_mode) {
    case DmaMode::automatic: iova_mode = iova_mode || any_iova; break;
    case DmaMode::phys: iova_mode = false; break;
    case DmaMode::iova: iova_mode = true; break;
  }
  if (iova_space) iova_mode = true;
  if (!iova_mode && any_iova)
    for (const auto& s : all)
      if (s->iova())
        notes.push_back({s->area.name(), s->area.node(), "IOVA-only area in phys mode: it serves no multi-page buffer"});
}

namespace {

/** Reserves one planned area of a private pool; false: a note says why not. */
Result<bool> reserve_area(PoolImpl& impl, const config::PlannedArea& pa) {
  Result<backing::Reservation> r = impl.backing->reserve_at(pa.node, pa.bytes, pa.phys_base);
  if (!r) {  // R4: the pool starts anyway; this node simply has no such area
    impl.notes.push_back({pa.name, pa.node, "not reserved: " + r.error().message});
    return false;
  }
  if (impl.iova_space) {  // an area the devices cannot reach is an error, not a note
    if (Status s = map_area_iova(impl, pa.name, *r); !s) {
      impl.backing->release(*r);
      return make_error(s.error().code, "VFIO mapping of area " + pa.name + " (" + fmt_bytes(pa.bytes) + " on node " +
                                            std::to_string(pa.node) + "): " + s.error().message);
    }
  }
  core::AreaConfig cfg;
  cfg.name = pa.name;
  cfg.node = pa.node;
  cfg.page_size = kPageBytes;
  cfg.pages = pa.bytes / kPageBytes;
  cfg.order_per_bit = impl.opts.order_per_bit;
  cfg.max_align_order = kCmaAlignmentOrder;
  cfg.segments = r->segments;
  cfg.cpu_base = r->cpu_base;
  Result<core::Area> area = core::Area::create(std::move(cfg));
  if (!area) {
    if (impl.iova_space) {  // never free memory the IOMMU still maps
      const std::uint64_t mapped = pages_of(r->mapped_bytes) * kPageBytes;
      if (Status u = impl.iova_space->unmap(r->segments.front().dma_base, mapped); !u)
        return make_error(u.error().code, "area " + pa.name + " is unusable and could not be unmapped: " +
                                              u.error().message);
    }
    impl.backing->release(*r);
    impl.notes.push_back({pa.name, pa.node, "not usable: " + area.error().message});
    return false;
  }
  if (!r->note.empty()) impl.notes.push_back({pa.name, pa.node, r->note});
  impl.add_area(std::make_unique<AreaSlot>(std::move(*area), pa.kind, std::move(*r)));
  return true;
}

}  // namespace

}  // namespace detail

namespace detail {
namespace {

/** PoolOptions::require_device_usable refused: why, and what would do. */
Error not_device_usable(const PoolImpl& impl) {
  if (impl.address_kind() == AddressKind::simulated)
    return make_error(Errc::invalid_argument,
                      "require_device_usable: backing sim" +
                          (backing::is_host_sysfs(impl.opts.sysfs_root)
                               ? std::string()
                               : " (sysfs root " + impl.opts.sysfs_root + " is a fixture)") +
                          ": its DMA addresses are simulated, no device can use them");
  std::string areas;
  for (const auto& slot : impl.areas.slots())
    if (!impl.area_device_usable(*slot))
      areas += (areas.empty() ? "" : ", ") + slot->area.name() + " (" + slot->res.kind + ")";
  return make_error(Errc::unsupported,
                    "require_device_usable: the pool is in iova mode without VFIO: " +
                        (areas.empty() ? std::string("its page-fallback buffers") : "areas " + areas) +
                        " carry virtual addresses (IOVA = VA) that no IOMMU maps for a device. Reserve "
                        "free hugepages on each node and read physical addresses as root (numacma "
                        "doctor says how), or give VFIO devices (PoolOptions::vfio, --vfio BDF)");
}

}  // namespace
}  // namespace detail

Result<Pool> Pool::create(const PoolOptions& options) {
  auto impl = std::make_shared<detail::PoolImpl>();
  impl->opts = options;
  // A fixture is a fixture: over any tree but /sys, auto means sim and a real
  // backing is refused. The vfio_pool_*_test fake VFIO kernel is the exception:
  // its temporary tree stands for this host (one node, node 0, as here).
  if (!detail::vfio_kernel_for_testing()) {
    Result<std::string> kind = backing::backing_for_root(options.backing, options.sysfs_root);
    if (!kind) return std::move(kind).error();
    impl->opts.backing = *kind;
  }
  Result<topo::Topology> topology = topo::Topology::from_sysfs(options.sysfs_root);
  if (!topology) return std::move(topology).error();
  impl->set_topology(std::move(*topology));

  Result<config::ReservationPlan> plan = detail::plan_areas(options, impl->topology, impl->notes);
  if (!plan) return std::move(plan).error();

  backing::SimOptions sim;
  sim.fail_nth_reservation = options.sim_fail_nth_reservation;
  backing::BackingOptions bo;
  bo.compact = options.compact;
  Result<std::unique_ptr<backing::Backing>> b = backing::make_backing(impl->opts.backing, impl->topology, sim, bo);
  if (!b) return std::move(b).error();
  impl->backing = std::move(*b);

  if (!options.vfio.empty()) {  // vfio mode: the container first, every area mapped into it
    if (Status s = detail::open_vfio(*impl); !s) return std::move(s).error();
  }
  for (const config::PlannedArea& pa : plan->areas)
    if (Result<bool> r = detail::reserve_area(*impl, pa); !r) return std::move(r).error();
  impl->finish();
  if (impl->noiommu())
    if (Status s = detail::check_noiommu_areas(*impl); !s) return std::move(s).error();
  if (options.require_device_usable && !numacma::device_usable(impl->address_kind()))
    return detail::not_device_usable(*impl);
  return Pool(std::move(impl));
}

}  // namespace numacma
