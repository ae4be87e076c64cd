// src/pool/pool.cpp — building a Pool (the "boot": SEMANTICS R1-R6), its
// reports, and the public handles (Pool, DmaBuffer, Device).
//
//   PoolOptions --parse_params--> Params --make_plan(topology)--> ReservationPlan
//        for each planned area:  backing.reserve(node, bytes) --> Reservation
//                                core::Area over its segments  --> AreaSlot
//        failures (R3, R4) become ReservationNotes; the pool starts regardless.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <set>

#include "pool/pool_impl.hpp"

namespace numacma {

const char* served_name(Served s) noexcept {
  switch (s) {
    case Served::local: return "local";
    case Served::other_node: return "other_node";
    case Served::default_area: return "default";
    case Served::pages: return "pages";
  }
  return "unknown";
}

namespace detail {

std::string fmt_bytes(std::uint64_t b) { return config::fmt_size(b); }

std::string fmt_hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

PoolImpl* impl_of(const Pool& pool) noexcept { return pool.impl_.get(); }

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
  if (unknown_cpu_node_ == kNoNode && !topology.nodes().empty())
    unknown_cpu_node_ = topology.nodes().front().id;
}

void PoolImpl::size_node_tables() {
  const std::size_t max_node = static_cast<std::size_t>(std::max(topology.max_node_id(), 0));
  pernuma_.assign(max_node + 1, -1);
  numa_.assign(max_node + 1, -1);
  counters = std::vector<NodeCounters>(max_node + 2);
  shelves = std::vector<PageShelf>(max_node + 2);
}

AreaSlot& PoolImpl::add_area(std::unique_ptr<AreaSlot> slot) {
  const int idx = static_cast<int>(areas.size());
  const auto node = static_cast<std::size_t>(slot->area.node());
  switch (slot->kind) {
    case config::AreaKind::default_area: default_ = idx; break;
    case config::AreaKind::pernuma: pernuma_[node] = idx; break;
    case config::AreaKind::numa: numa_[node] = idx; break;
    case config::AreaKind::device: device_[slot->area.name()] = idx; break;
  }
  areas.push_back(std::move(slot));
  return *areas.back();
}

void PoolImpl::index_by_cpu() {
  by_cpu_.clear();
  for (std::size_t i = 0; i < areas.size(); ++i) by_cpu_.push_back(static_cast<int>(i));
  std::sort(by_cpu_.begin(), by_cpu_.end(), [&](int a, int b) {
    return areas[static_cast<std::size_t>(a)]->area.config().cpu_base <
           areas[static_cast<std::size_t>(b)]->area.config().cpu_base;
  });
}

Result<DmaBuffer> PoolImpl::alloc_buffer(const Device& dev, std::size_t bytes, int cpu) {
  Result<RawBuffer> r = alloc(dev, bytes, cpu);
  if (!r) return std::move(r).error();
  DmaBuffer b;
  b.pool_ = shared_from_this();
  b.cpu_ = r->cpu;
  b.dma_ = r->dma;
  b.size_ = bytes;
  b.node_ = r->node;
  b.area_ = r->area;
  b.iova_ = r->iova;
  b.contiguous_ = r->contiguous;
  b.served_ = r->served;
  return b;
}

PoolImpl::~PoolImpl() {
  if (shared_pool) shared_pool->detach();  // this process's shared buffers go back first
  // Page blocks are unmapped from the IOMMU (vfio mode) before they are
  // freed; then the container goes (unmapping the areas) before the areas'
  // memory does.
  for (PageShelf& sh : shelves) {
    for (const auto& [cpu, slot] : sh.live) (void)release_block(sh.slots[slot]);
    for (std::uint32_t slot : sh.cached) (void)release_block(sh.slots[slot]);
  }
  vfio.reset();
  if (backing) {
    for (const PageShelf& sh : shelves)  // blocks whose unmap failed: unmapped now, with the container
      for (const backing::PagesBlock& b : sh.stuck) backing->free_pages(b);
    for (auto& slot : areas)
      if (slot->shared) slot->shared.reset();  // unmaps this process's view; the memory stays
      else backing->release(slot->res);
  }
}

AreaReport area_report(const core::Area& area, const core::AreaStats& a, config::AreaKind kind,
                       std::string backing, bool iova, std::string note) {
  AreaReport r;
  r.name = a.name;
  r.kind = config::area_kind_name(kind);
  r.node = a.node;
  r.backing = std::move(backing);
  r.iova = iova;
  r.base_dma = a.base_dma;
  r.pages = a.pages;
  r.order_per_bit = a.order_per_bit;
  r.used = a.used;
  r.maxchunk = a.maxchunk;
  r.alloc_pages_success = a.alloc_pages_success;
  r.alloc_pages_fail = a.alloc_pages_fail;
  r.release_pages_success = a.release_pages_success;
  r.segments = a.segments;
  for (const core::Segment& seg : area.config().segments)  // never empty: Area::create fills one
    r.longest_segment = std::max(r.longest_segment, seg.pages);
  r.note = std::move(note);
  return r;
}

Stats PoolImpl::stats() const {
  Stats st;
  for (const auto& slot : areas) {
    core::AreaStats a;
    if (slot->shared) {
      Result<core::AreaStats> sa = slot->shared->stats(slot->area);
      if (!sa) continue;  // a lock that cannot be had: the area is left out
      a = std::move(*sa);
    } else {
      std::lock_guard<std::mutex> lock(slot->mu);
      a = slot->area.stats();
    }
    AreaReport r = area_report(slot->area, a, slot->kind, slot->res.kind, slot->iova(), slot->res.note);
    st.areas.push_back(std::move(r));
  }
  // An attached pool's counters are the reservation's, every process's together.
  const std::size_t slots = shared_counts != nullptr ? shared_count_slots : counters.size();
  for (std::size_t i = 0; i < slots; ++i) {
    const auto get = [&](Bucket b) {
      if (shared_counts != nullptr)
        return std::atomic_ref<std::uint64_t>(shared_counts[i * 5 + b]).load(std::memory_order_relaxed);
      return const_cast<NodeCounters&>(counters[i]).at(b).load(std::memory_order_relaxed);
    };
    NodeReport n;
    n.node = static_cast<int>(i) - 1;
    n.local = get(kLocal);
    n.other_node = get(kOtherNode);
    n.default_area = get(kDefault);
    n.pages = get(kPages);
    n.failed = get(kFailed);
    // kNoNode and offline ids appear only once something was asked of them.
    const bool known = n.node >= 0 && topology.is_online(n.node);
    if (known || n.local + n.other_node + n.default_area + n.pages + n.failed > 0)
      st.nodes.push_back(n);
  }
  for (const PageShelf& sh : shelves) {
    std::lock_guard<std::mutex> lock(sh.mu);
    st.pages_live += sh.live.size();
  }
  st.bad_frees = bad_frees.load(std::memory_order_relaxed);
  return st;
}

namespace {

bool reserved_name(const std::string& n) {
  if (n == "reserved" || n == "pages" || n.empty()) return true;
  for (const char* prefix : {"pernuma", "numa"}) {
    const std::string p(prefix);
    if (n.size() > p.size() && n.compare(0, p.size(), p) == 0 &&
        std::all_of(n.begin() + static_cast<long>(p.size()), n.end(),
                    [](char c) { return c >= '0' && c <= '9'; }))
      return true;
  }
  return false;
}

}  // namespace

Result<config::ReservationPlan> plan_areas(const PoolOptions& options, const topo::Topology& t,
                                           std::vector<ReservationNote>& notes) {
  if (options.order_per_bit > 9)
    return make_error(Errc::invalid_argument,
                      "order_per_bit " + std::to_string(options.order_per_bit) +
                          " is too large (at most 9: one bit per 2 MiB)");
  Result<config::Params> params = config::parse_params(options.params);
  if (!params) return std::move(params).error();
  config::ReservationPlan plan =
      config::make_plan(*params, t, kPageSize, options.order_per_bit,
                        options.arch == Arch::host     ? config::host_arch()
                        : options.arch == Arch::arm64 ? config::Arch::arm64
                                                      : config::Arch::x86_64);

  // Device areas (dev->cma_area): validated here, reserved with the rest.
  std::set<std::string> names;
  const std::uint64_t granule = kPageSize << options.order_per_bit;
  for (const DeviceAreaSpec& d : options.device_areas) {
    if (reserved_name(d.device))
      return make_error(Errc::invalid_argument,
                        "device area name '" + d.device +
                            "' is empty or clashes with a kernel area name");
    if (!names.insert(d.device).second)
      return make_error(Errc::invalid_argument, "device area '" + d.device + "' declared twice");
    if (d.bytes == 0)
      return make_error(Errc::invalid_argument, "device area '" + d.device + "' has size 0");
    int node = d.node == kNoNode ? t.first_memory_node() : d.node;
    if (d.node == kNoNode)  // the default area's node, where the plan put it
      for (const config::PlannedArea& pa : plan.areas)
        if (pa.kind == config::AreaKind::default_area) node = pa.node;
    const topo::NodeInfo* ni = t.node(node);
    if (ni == nullptr || !ni->has_memory) {
      notes.push_back({d.device, node,
                             "device area not placed: node " + std::to_string(node) +
                                 (ni == nullptr ? " does not exist" : " has no memory")});
      continue;
    }
    if (d.bytes > (std::uint64_t{1} << 46))
      return make_error(Errc::invalid_argument, "device area '" + d.device + "' is too large");
    config::place_device_area(plan, {d.device, config::AreaKind::device, node,
                                     (d.bytes + granule - 1) / granule * granule, 0});
  }
  for (const std::string& n : params->notes) notes.push_back({"params", kNoNode, n});
  for (const config::NotPlaced& np : plan.not_placed)
    notes.push_back({np.name, np.node, np.reason});

  return plan;
}

}  // namespace detail

// ---- Pool --------------------------------------------------------------------

Pool::Pool(std::shared_ptr<detail::PoolImpl> impl) : impl_(std::move(impl)) {}
Pool::Pool(Pool&&) noexcept = default;
Pool& Pool::operator=(Pool&&) noexcept = default;
Pool::~Pool() = default;

Result<Pool> Pool::create(const PoolOptions& options) {
  using detail::AreaSlot;
  auto impl = std::make_shared<detail::PoolImpl>();
  impl->opts = options;

  Result<topo::Topology> topology = topo::Topology::from_sysfs(options.sysfs_root);
  if (!topology) return std::move(topology).error();
  impl->topology = std::move(*topology);
  const topo::Topology& t = impl->topology;
  impl->map_cpus();

  Result<config::ReservationPlan> planned = detail::plan_areas(options, t, impl->notes);
  if (!planned) return std::move(planned).error();
  const config::ReservationPlan& plan = *planned;

  backing::SimOptions sim;
  sim.fail_nth_reservation = options.sim_fail_nth_reservation;
  backing::BackingOptions bo;
  bo.compact = options.compact;
  Result<std::unique_ptr<backing::Backing>> b = backing::make_backing(options.backing, t, sim, bo);
  if (!b) return std::move(b).error();
  impl->backing = std::move(*b);

  if (!options.vfio.empty()) {  // vfio mode: the container first, every area mapped into it
    if (Status s = detail::open_vfio(*impl); !s) return std::move(s).error();
  }

  impl->size_node_tables();

  for (const config::PlannedArea& pa : plan.areas) {
    Result<backing::Reservation> r = impl->backing->reserve_at(pa.node, pa.bytes, pa.phys_base);
    if (!r) {  // R4: the pool starts anyway; this node simply has no such area
      impl->notes.push_back({pa.name, pa.node, "not reserved: " + r.error().message});
      continue;
    }
    if (impl->vfio) {  // an area the devices cannot reach is an error, not a note
      if (Status s = detail::map_area_vfio(*impl, pa.name, *r); !s) {
        impl->backing->release(*r);
        return make_error(s.error().code, "VFIO mapping of area " + pa.name + " (" +
                                              detail::fmt_bytes(pa.bytes) + " on node " +
                                              std::to_string(pa.node) + "): " + s.error().message);
      }
    }
    core::AreaConfig cfg;
    cfg.name = pa.name;
    cfg.node = pa.node;
    cfg.page_size = detail::kPageSize;
    cfg.pages = pa.bytes / detail::kPageSize;
    cfg.order_per_bit = options.order_per_bit;
    cfg.max_align_order = detail::kCmaAlignment;
    cfg.segments = r->segments;
    cfg.cpu_base = r->cpu_base;
    Result<core::Area> area = core::Area::create(std::move(cfg));
    if (!area) {
      if (impl->vfio) {  // never free memory the IOMMU still maps
        const std::uint64_t mapped = (r->mapped_bytes + detail::kPageSize - 1) / detail::kPageSize * detail::kPageSize;
        if (Status u = impl->vfio->unmap(r->segments.front().dma_base, mapped); !u)
          return make_error(u.error().code, "area " + pa.name + " is unusable and could not be unmapped: " +
                                                u.error().message);
      }
      impl->backing->release(*r);
      impl->notes.push_back({pa.name, pa.node, "not usable: " + area.error().message});
      continue;
    }
    if (!r->note.empty()) impl->notes.push_back({pa.name, pa.node, r->note});
    impl->add_area(std::make_unique<AreaSlot>(std::move(*area), pa.kind, std::move(*r)));
  }
  impl->index_by_cpu();

  const bool any_iova = std::any_of(impl->areas.begin(), impl->areas.end(),
                                    [](const auto& s) { return s->iova(); });
  switch (options.dma_mode) {
    case DmaMode::automatic: impl->iova_mode = any_iova; break;
    case DmaMode::phys: impl->iova_mode = false; break;
    case DmaMode::iova: impl->iova_mode = true; break;
  }
  if (impl->vfio) impl->iova_mode = true;
  if (!impl->iova_mode && any_iova) {
    for (const auto& s : impl->areas)
      if (s->iova())
        impl->notes.push_back({s->area.name(), s->area.node(),
                               "IOVA-only area in phys mode: it serves no multi-page buffer"});
  }
  return Pool(std::move(impl));
}

Result<DmaBuffer> Pool::alloc_coherent(const Device& dev, std::size_t bytes) {
  // The calling CPU matters only to a device with no node (its pages come
  // from that CPU's node, A3/A7): the others do not ask for it.
  const int cpu = dev.node == kNoNode ? impl_->backing->calling_cpu() : -1;
  return impl_->alloc_buffer(dev, bytes, cpu);
}

Status Pool::free_coherent(const Device& dev, std::size_t bytes, void* cpu,
                           std::uint64_t dma_addr) {
  return impl_->free(bytes, cpu, dma_addr, detail::kUnknownArea, dev.node);
}

Status Pool::free_coherent(DmaBuffer&& buf) {
  if (!buf) return make_error(Errc::bad_free, "free of an empty DmaBuffer");
  if (buf.pool_ != impl_)
    return make_error(Errc::bad_free, "free of a DmaBuffer that belongs to another pool");
  return buf.release();
}

Stats Pool::stats() const { return impl_->stats(); }

Result<std::string> Pool::dump_bitmap(std::string_view area) const {
  for (const auto& slot : impl_->areas) {
    if (slot->area.name() == area) {
      if (slot->shared) return slot->shared->dump_bitmap(slot->area);
      std::lock_guard<std::mutex> lock(slot->mu);
      return slot->area.dump_bitmap();
    }
  }
  return make_error(Errc::not_found, "no area named '" + std::string(area) + "'");
}

const std::vector<ReservationNote>& Pool::reservation_notes() const noexcept {
  return impl_->notes;
}

std::string Pool::dma_mode() const {
  return impl_->vfio ? "vfio" : impl_->iova_mode ? "iova" : "phys";
}
Policy Pool::policy() const noexcept { return impl_->opts.policy; }

std::vector<DeviceAreaSpec> Pool::device_areas() const {
  std::vector<DeviceAreaSpec> out;
  for (const auto& [name, idx] : impl_->device_) {
    const auto& a = impl_->areas[static_cast<std::size_t>(idx)]->area;
    out.push_back({name, a.node(), a.config().pages * a.config().page_size});
  }
  std::sort(out.begin(), out.end(),
            [](const DeviceAreaSpec& a, const DeviceAreaSpec& b) { return a.device < b.device; });
  return out;
}

const void* Pool::topology_handle() const noexcept { return &impl_->topology; }

// ---- DmaBuffer -----------------------------------------------------------------

DmaBuffer::DmaBuffer(DmaBuffer&& o) noexcept
    : pool_(std::move(o.pool_)),
      cpu_(std::exchange(o.cpu_, nullptr)),
      dma_(o.dma_),
      size_(o.size_),
      node_(o.node_),
      area_(o.area_),
      iova_(o.iova_),
      contiguous_(o.contiguous_),
      served_(o.served_) {}

DmaBuffer& DmaBuffer::operator=(DmaBuffer&& o) noexcept {
  if (this != &o) {
    if (cpu_ != nullptr) (void)release();
    pool_ = std::move(o.pool_);
    cpu_ = std::exchange(o.cpu_, nullptr);
    dma_ = o.dma_;
    size_ = o.size_;
    node_ = o.node_;
    area_ = o.area_;
    iova_ = o.iova_;
    contiguous_ = o.contiguous_;
    served_ = o.served_;
  }
  return *this;
}

DmaBuffer::~DmaBuffer() {
  if (cpu_ != nullptr) (void)release();
}

Status DmaBuffer::release() {
  if (cpu_ == nullptr || !pool_) return {};
  Status s = pool_->free(size_, cpu_, dma_, area_ >= 0 ? area_ : detail::kPagesBuffer, node_);
  cpu_ = nullptr;
  pool_.reset();
  return s;
}

void DmaBuffer::detach() noexcept {
  cpu_ = nullptr;
  pool_.reset();
}

const std::string& DmaBuffer::area_name() const noexcept {
  static const std::string pages = "pages";
  static const std::string none;
  if (!pool_) return none;
  if (area_ < 0) return pages;
  return pool_->areas[static_cast<std::size_t>(area_)]->area.name();
}

// ---- Device ------------------------------------------------------------------

Result<Device> Device::from_pci(std::string_view bdf, const Pool& pool) {
  const detail::PoolImpl& p = *pool.impl_;
  const topo::PciDevice* pci = p.topology.pci(bdf);
  if (pci == nullptr)
    return make_error(Errc::not_found, "no PCI device '" + std::string(bdf) + "' under " +
                                           p.topology.root() + "/bus/pci/devices");
  Device d;
  d.name = pci->bdf;
  d.node = pci->numa_node;
  if (p.device_.count(d.name) != 0) d.area = d.name;
  return d;
}

Device Device::on_node(int node, std::string name, std::uint64_t coherent_dma_mask) {
  Device d;
  d.name = std::move(name);
  d.node = node;
  d.coherent_dma_mask = coherent_dma_mask;
  return d;
}

}  // namespace numacma
