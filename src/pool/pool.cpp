// src/pool/pool.cpp — building a Pool (the "boot": docs/semantics.md R1-R6), its
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

const char* address_kind_name(AddressKind k) noexcept {
  switch (k) {
    case AddressKind::physical: return "physical";
    case AddressKind::iova_vfio: return "iova_vfio";
    case AddressKind::virtual_only: return "virtual_only";
    case AddressKind::simulated: return "simulated";
    case AddressKind::iova_external: return "iova_external";
  }
  return "unknown";
}

namespace detail {

bool PoolImpl::noiommu() const noexcept {
  return vfio && vfio->backend() == vfio::IommuBackend::noiommu;
}

AddressKind PoolImpl::address_kind() const noexcept {
  if (vfio && !noiommu()) return AddressKind::iova_vfio;
  if (iova_space) return AddressKind::iova_external;
  if (backing && backing->name() == "sim") return AddressKind::simulated;
  // iova mode: some buffers carry virtual addresses; phys mode: every buffer
  // is physical (an IOVA-only area serves none, A7's pages must be physical).
  return iova_mode ? AddressKind::virtual_only : AddressKind::physical;
}

bool PoolImpl::area_device_usable(const AreaSlot& slot) const noexcept {
  if (iova_space) return true;
  return !slot.iova() && address_kind() != AddressKind::simulated;
}

std::string fmt_bytes(std::uint64_t b) { return config::fmt_size(b); }

std::string fmt_hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

PoolImpl* impl_of(const Pool& pool) noexcept { return pool.impl_.get(); }

Result<DmaBuffer> PoolImpl::alloc_buffer(const Device& dev, std::size_t bytes, int cpu,
                                         const std::shared_ptr<PoolImpl>* self) {
  // The DmaBuffer owns it (marked as it is allocated): a free by address is refused.
  RawBuffer raw;
  if (!kept_page(dev, bytes, cpu, raw)) {  // A3's kept page, else every rule
    Result<RawBuffer> r = alloc(dev, bytes, cpu, true);
    if (!r) return std::move(r).error();
    raw = *r;
  }
  Result<DmaBuffer> out{DmaBuffer()};
  DmaBuffer& b = *out;
  b.pool_ = self != nullptr ? *self : shared_from_this();
  b.cpu_ = raw.cpu;
  b.dma_ = raw.dma;
  b.size_ = bytes;
  b.node_ = raw.node;
  b.area_ = raw.area;
  b.iova_ = raw.iova;
  b.contiguous_ = raw.contiguous;
  b.served_ = raw.served;
  return out;
}

PoolImpl::~PoolImpl() {
  if (attachment) attachment->detach();  // this process's shared buffers go back first
  // Page blocks are unmapped from the IOMMU (vfio mode) before they are
  // freed; then the container goes (unmapping the areas) before the areas'
  // memory does.
  for (PageShelf& sh : pages.all()) {
    for (const auto& [cpu, slot] : sh.live) (void)release_block(sh.slots[slot]);
    for (std::uint32_t slot : sh.cached) (void)release_block(sh.slots[slot]);
  }
  iova_space.reset();  // unmaps what an external IOMMU still maps (the areas)
  vfio.reset();
  if (backing) {
    for (const PageShelf& sh : pages.all())  // blocks whose unmap failed: unmapped now, with the container
      for (const backing::PagesBlock& b : sh.stuck) backing->free_pages(b);
    if (!attachment)  // an attached pool's mappings go with its attachment
      for (const auto& slot : areas.slots()) backing->release(slot->res);
  }
  // The areas (over the attachment's mappings) go before the attachment.
  areas = AreaTable();
  attachment.reset();
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
  for (const auto& slot : areas.slots()) {
    if (!lock_area(*slot)) continue;  // a lock that cannot be had in time: the area is left out
    const core::AreaStats a = slot->area.stats();
    unlock_area(*slot);
    st.areas.push_back(area_report(slot->area, a, slot->kind, slot->res.kind, slot->iova(), slot->res.note));
    st.areas.back().device_usable = area_device_usable(*slot);
  }
  st.address_kind = address_kind();
  st.device_usable = numacma::device_usable(st.address_kind);
  // An attached pool's counters are the reservation's, every process's together.
  for (std::size_t i = 0; i < counters.slots(); ++i) {
    NodeReport n;
    n.node = static_cast<int>(i) - 1;
    n.local = counters.get(i, kLocal);
    n.other_node = counters.get(i, kOtherNode);
    n.default_area = counters.get(i, kDefault);
    n.pages = counters.get(i, kPages);
    n.failed = counters.get(i, kFailed);
    // kNoNode and offline ids appear only once something was asked of them.
    const bool known = n.node >= 0 && topology.is_online(n.node);
    if (known || n.local + n.other_node + n.default_area + n.pages + n.failed > 0) st.nodes.push_back(n);
  }
  for (const PageShelf& sh : pages.all()) {
    std::lock_guard<ShelfLock> lock(sh.mu);
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
  if (options.order_per_bit > core::kMaxOrderPerBit)
    return make_error(Errc::invalid_argument,
                      "order_per_bit " + std::to_string(options.order_per_bit) + " is too large (at most " +
                          std::to_string(core::kMaxOrderPerBit) + ": one bit per 2 MiB)");
  Result<config::Params> params = config::parse_params(options.params);
  if (!params) return std::move(params).error();
  if (options.cma_size_pernuma && options.kernel != Kernel::v7_2)
    return make_error(Errc::invalid_argument,
                      "cma_size_pernuma is kernel 7.2's CONFIG_CMA_SIZE_PERNUMA: ask for kernel 7.2 with it");
  const config::Profile profile{options.kernel == Kernel::v7_2 ? config::KernelProfile::v7_2
                                                              : config::KernelProfile::v6_12,
                                options.cma_size_pernuma};
  config::ReservationPlan plan =
      config::make_plan(*params, t, kPageBytes, options.order_per_bit, config_arch(options.arch), profile);

  // Device areas (dev->cma_area): validated here, reserved with the rest.
  std::set<std::string> names;
  const std::uint64_t granule = kPageBytes << options.order_per_bit;
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
    if (d.bytes > kMaxRequestBytes)
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

namespace {
Error empty_pool() {
  return make_error(Errc::invalid_argument, "the Pool is empty (moved from, or never made)");
}
}  // namespace

Result<DmaBuffer> Pool::alloc_coherent(const Device& dev, std::size_t bytes) {
  if (!impl_) return empty_pool();
  // The calling CPU matters only to a device with no node (its pages come
  // from that CPU's node, A3/A7): the others do not ask for it.
  const int cpu = dev.node == kNoNode ? impl_->backing->calling_cpu() : -1;
  return impl_->alloc_buffer(dev, bytes, cpu, &impl_);
}

Status Pool::free_coherent(const Device& dev, std::size_t bytes, void* cpu, std::uint64_t dma_addr) {
  if (!impl_) return make_error(Errc::bad_free, empty_pool().message);
  return impl_->free(bytes, cpu, dma_addr, detail::kUnknownArea, dev.node);
}

Status Pool::free_coherent(DmaBuffer&& buf) {
  if (!buf) return make_error(Errc::bad_free, "free of an empty DmaBuffer");
  if (!impl_ || buf.pool_ != impl_)
    return make_error(Errc::bad_free, "free of a DmaBuffer that belongs to another pool");
  return buf.release();
}

Stats Pool::stats() const { return impl_ ? impl_->stats() : Stats{}; }

Result<std::string> Pool::dump_bitmap(std::string_view area) const {
  if (!impl_) return empty_pool();
  for (const auto& slot : impl_->areas.slots()) {
    if (slot->area.name() != area) continue;
    if (!impl_->lock_area(*slot)) return impl_->lock_error(*slot);
    std::string d = slot->area.dump_bitmap();
    impl_->unlock_area(*slot);
    return d;
  }
  return make_error(Errc::not_found, "no area named '" + std::string(area) + "'");
}

const std::vector<ReservationNote>& Pool::reservation_notes() const noexcept {
  static const std::vector<ReservationNote> none;
  return impl_ ? impl_->notes : none;
}

std::string Pool::dma_mode() const {
  if (!impl_) return "";
  if (impl_->noiommu()) return "noiommu";
  return impl_->vfio ? "vfio" : impl_->iova_space ? "external" : impl_->iova_mode ? "iova" : "phys";
}
AddressKind Pool::address_kind() const noexcept {
  return impl_ ? impl_->address_kind() : AddressKind::simulated;
}
bool Pool::device_usable() const noexcept { return numacma::device_usable(address_kind()); }
const std::string& Pool::sysfs_root() const noexcept {
  static const std::string none;
  return impl_ ? impl_->opts.sysfs_root : none;
}
Policy Pool::policy() const noexcept { return impl_ ? impl_->opts.policy : Policy::kernel; }

std::vector<DeviceAreaSpec> Pool::device_areas() const {
  std::vector<DeviceAreaSpec> out;
  if (!impl_) return out;
  for (const auto& [name, idx] : impl_->areas.devices()) {
    const core::Area& a = impl_->areas.at(idx).area;
    out.push_back({name, a.node(), a.config().pages * a.config().page_size});
  }
  std::sort(out.begin(), out.end(),
            [](const DeviceAreaSpec& a, const DeviceAreaSpec& b) { return a.device < b.device; });
  return out;
}

// ---- DmaBuffer -----------------------------------------------------------------

Status DmaBuffer::release() {
  if (cpu_ == nullptr || !pool_) return {};
  Status s = pool_->free(size_, cpu_, dma_, area_ >= 0 ? area_ : detail::kPagesBuffer, node_);
  cpu_ = nullptr;
  pool_.reset();
  return s;
}

void DmaBuffer::detach() noexcept {
  if (cpu_ != nullptr && pool_) pool_->forget_handle(area_, cpu_, node_);
  cpu_ = nullptr;
  pool_.reset();
}

bool DmaBuffer::device_usable() const noexcept {
  if (cpu_ == nullptr || !pool_) return false;
  switch (pool_->address_kind()) {
    case AddressKind::iova_vfio:
    case AddressKind::iova_external: return true;
    case AddressKind::simulated: return false;
    default: return !iova_ && contiguous_;  // iova mode: a hugetlb area's buffer is still physical
  }
}

const std::string& DmaBuffer::area_name() const noexcept {
  static const std::string pages = "pages";
  static const std::string none;
  if (!pool_) return none;
  if (area_ < 0) return pages;
  return pool_->areas.at(area_).area.name();
}

// ---- Device ------------------------------------------------------------------

Result<Device> Device::from_pci(std::string_view bdf, const Pool& pool) {
  if (!pool.impl_) return empty_pool();
  const detail::PoolImpl& p = *pool.impl_;
  Result<std::string> parsed = topo::parse_bdf(bdf);  // "05:00.0" is "0000:05:00.0"
  const topo::PciDevice* pci = parsed ? p.topology.pci(*parsed) : nullptr;
  if (pci == nullptr)
    return make_error(Errc::not_found, "no PCI device '" + std::string(bdf) + "' under " +
                                           p.topology.root() + "/bus/pci/devices");
  Device d;
  d.name = pci->bdf;
  d.node = pci->numa_node;
  if (p.areas.device(d.name) >= 0) d.area = d.name;
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
