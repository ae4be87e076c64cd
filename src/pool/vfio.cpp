// src/pool/vfio.cpp — the pool in vfio mode: what the pool asks of its
// VFIO container (src/vfio/container.hpp), and the public VFIO handles.
//
//   create:  open_vfio (attach every PoolOptions::vfio device)
//            each reserved area -> map_area_iova: one IOVA range below the
//            smallest mask, aligned to the backing's page (2 MiB at least, so
//            A6's alignment in DMA space is the alignment in the area)
//   alloc:   A7 pages -> map_pages_iova below the device's own mask
//   free:    pages unmapped before they go back to the OS (release_block)
//   destroy: page blocks unmapped and freed, then the container (areas
//            unmapped, fds closed), then the areas' memory
//
// VFIO's no-IOMMU mode (Iommu::noiommu) has a container but no IOVA space:
// the pool is in phys mode, its DMA handles physical addresses, and every
// area must have them (check_noiommu_areas, after the areas are reserved).
#include <algorithm>
#include <mutex>

#include "pool/pool_impl.hpp"

namespace numacma {

namespace detail {

namespace {

constexpr std::uint64_t k2M = 2ULL << 20, k1G = 1ULL << 30;

/** A6 in IOVA space: P << min(order(count), CMA_ALIGNMENT). */
std::uint64_t pages_align(std::uint64_t bytes) {
  std::uint64_t a = kPageBytes;
  while (a < bytes && a < (kPageBytes << kCmaAlignmentOrder)) a <<= 1;
  return a;
}

}  // namespace

namespace {
std::mutex g_kernel_mu;
std::shared_ptr<vfio::Kernel> g_kernel;  // a test's fake; nullptr: the real kernel
}  // namespace

void set_vfio_kernel_for_testing(std::shared_ptr<vfio::Kernel> kernel) {
  std::lock_guard<std::mutex> lock(g_kernel_mu);
  g_kernel = std::move(kernel);
}

std::shared_ptr<vfio::Kernel> vfio_kernel_for_testing() {
  std::lock_guard<std::mutex> lock(g_kernel_mu);
  return g_kernel;
}

Status open_vfio(PoolImpl& impl) {
  const PoolOptions& o = impl.opts;
  const bool noiommu = o.iommu == Iommu::noiommu;
  if (noiommu && o.dma_mode == DmaMode::iova)
    return make_error(Errc::invalid_argument,
                      "dma_mode iova and VFIO's no-IOMMU mode exclude each other: without an IOMMU every "
                      "DMA address is physical");
  if (noiommu && o.backing == "sim")
    return make_error(Errc::invalid_argument,
                      "the sim backing simulates its DMA addresses: VFIO's no-IOMMU mode needs physical "
                      "ones (--backing hugetlb, as root)");
  if (!noiommu && o.dma_mode == DmaMode::phys)
    return make_error(Errc::invalid_argument,
                      "dma_mode phys and VFIO devices exclude each other: with VFIO every DMA "
                      "address is an IOVA");
  if (o.backing == "sim")
    return make_error(Errc::invalid_argument,
                      "the sim backing simulates its DMA addresses: use anon, hugetlb or auto with VFIO");
  // Each BDF in the form sysfs names it by ("05:00.0" is "0000:05:00.0"),
  // so that a device given twice in two spellings is caught below.
  for (VfioDeviceSpec& d : impl.opts.vfio) {
    Result<std::string> bdf = topo::parse_bdf(d.bdf);
    if (!bdf) return make_error(Errc::invalid_argument, "VFIO device: " + bdf.error().message);
    d.bdf = std::move(*bdf);
  }
  for (std::size_t i = 0; i < o.vfio.size(); ++i) {
    const VfioDeviceSpec& d = o.vfio[i];
    if (d.dma_mask == 0)
      return make_error(Errc::invalid_argument, "VFIO device " + d.bdf + ": DMA mask 0");
    for (std::size_t j = 0; j < i; ++j)
      if (o.vfio[j].bdf == d.bdf)
        return make_error(Errc::invalid_argument, "VFIO device " + d.bdf + " listed twice");
  }
  Result<std::unique_ptr<vfio::Container>> c =
      vfio::Container::create(impl.topology, o.vfio_dev_root, vfio_kernel_for_testing(),
                              o.iommu == Iommu::iommufd   ? vfio::IommuBackend::iommufd
                              : o.iommu == Iommu::type1   ? vfio::IommuBackend::type1
                              : o.iommu == Iommu::noiommu ? vfio::IommuBackend::noiommu
                                                          : vfio::IommuBackend::automatic);
  if (!c) return std::move(c).error();
  for (const VfioDeviceSpec& d : o.vfio)
    if (Status s = (*c)->attach(d.bdf, d.dma_mask); !s) return s;
  impl.vfio = std::move(*c);
  if (noiommu) {  // phys mode: no IOVA space, the backing keeps its pages locked
    impl.opts.dma_mode = DmaMode::phys;
    return {};
  }
  impl.iova_space = container_space(*impl.vfio);
  impl.iova_mode = true;
  impl.backing->pinned_by_iommu();
  return {};
}

Status check_noiommu_areas(const PoolImpl& impl) {
  std::string virt;
  for (const auto& slot : impl.areas.slots())
    if (!impl.area_device_usable(*slot))
      virt += (virt.empty() ? "" : ", ") + slot->area.name() + " (" + slot->res.kind + ")";
  if (virt.empty()) return {};
  return make_error(Errc::unsupported,
                    "VFIO's no-IOMMU mode hands the devices physical addresses, but areas " + virt +
                        " have none a device could use (anon memory, or hugetlb whose pagemap this "
                        "process cannot read): use --backing hugetlb as root, with free hugepages on each "
                        "node (numacma doctor says how)");
}

Status map_area_iova(PoolImpl& impl, const std::string& name, backing::Reservation& r) {
  const std::uint64_t align = r.kind == "hugetlb-1G" ? k1G : k2M;
  const std::uint64_t bytes = (r.mapped_bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
  Result<std::uint64_t> iova = impl.iova_space->map(r.cpu_base, bytes, align, impl.iova_space->area_limit(), name);
  if (!iova) return std::move(iova).error();
  r.segments = {{0, r.bytes / kPageBytes, *iova}};
  r.addr_kind = backing::AddrKind::iova;
  r.note = r.kind + ", " + impl.iova_space->describe_mapping(*iova) +
           (r.note.empty() ? std::string() : "; " + r.note);
  return {};
}

Status map_pages_iova(PoolImpl& impl, backing::PagesBlock& b, std::uint64_t limit) {
  const std::uint64_t bytes = (b.mapped_bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
  Result<std::uint64_t> iova = impl.iova_space->map(b.cpu, bytes, pages_align(bytes), limit, "pages");
  if (!iova) return std::move(iova).error();
  b.dma_addr = *iova;
  b.addr_kind = backing::AddrKind::iova;
  b.contiguous = true;  // in IOVA space, which is what the device sees
  return {};
}

Status PoolImpl::release_block(const backing::PagesBlock& b) {
  if (iova_space) {
    const std::uint64_t bytes = pages_of(b.mapped_bytes) * kPageBytes;
    if (Status s = iova_space->unmap(b.dma_addr, bytes); !s)
      return make_error(s.error().code, "pages at IOVA " + fmt_hex(b.dma_addr) +
                                            " could not be unmapped, so they are kept (never freed "
                                            "while the device can reach them): " + s.error().message);
  }
  backing->free_pages(b);
  return {};
}

}  // namespace detail

// ---- Pool's VFIO calls ----------------------------------------------------------

Status Pool::vfio_attach(const VfioDeviceSpec& spec) {
  if (!impl_->vfio)
    return make_error(Errc::invalid_argument,
                      "vfio_attach: the pool is not in vfio mode (create it with PoolOptions::vfio)");
  return impl_->vfio->attach(spec.bdf, spec.dma_mask);
}

Result<VfioDevice> Pool::vfio_device(std::string_view bdf) const {
  const int i = impl_->vfio ? impl_->vfio->find(bdf) : -1;
  if (i < 0)
    return make_error(Errc::not_found, std::string(bdf).append(" is not a VFIO device of this pool"));
  VfioDevice d;
  d.pool_ = impl_;
  d.bdf_ = impl_->vfio->device(i).bdf;  // as the container knows it: "0000:05:00.0"
  d.index_ = i;
  return d;
}

VfioReport Pool::vfio_report() const {
  VfioReport rep;
  if (!impl_->vfio) return rep;
  const vfio::ContainerReport c = impl_->vfio->report();
  rep.enabled = true;
  rep.iommu = c.backend;
  rep.unsafe = impl_->noiommu();
  for (const vfio::IovaRange& r : c.ranges) rep.iova_ranges.emplace_back(r.first, r.last);
  rep.iova_pgsizes = c.pgsizes;
  rep.dma_avail = c.dma_avail;
  for (const vfio::DeviceInfo& d : c.devices) rep.devices.push_back({d.bdf, d.group, d.node, d.dma_mask});
  for (const vfio::Mapping& m : c.mappings) rep.mappings.push_back({m.what, m.iova, m.bytes, m.map_ns});
  std::stable_partition(rep.mappings.begin(), rep.mappings.end(),
                        [](const VfioMapping& m) { return m.what != "pages"; });
  return rep;
}

namespace {

Result<Device> device_of(const detail::PoolImpl& p, std::string_view bdf) {
  const int i = p.vfio ? p.vfio->find(bdf) : -1;
  if (i < 0)
    return make_error(Errc::not_found, std::string(bdf).append(
                                           " is not a VFIO device of this pool (PoolOptions::vfio "
                                           "or Pool::vfio_attach)"));
  const vfio::DeviceInfo info = p.vfio->device(i);
  Device d;
  d.name = info.bdf;
  d.node = info.node >= 0 && p.topology.is_online(info.node) ? info.node : kNoNode;
  d.coherent_dma_mask = info.dma_mask;
  if (p.areas.device(d.name) >= 0) d.area = d.name;
  return d;
}

}  // namespace

Result<Device> Device::from_vfio(std::string_view bdf, const Pool& pool) {
  return device_of(*detail::impl_of(pool), bdf);
}

// ---- VfioDevice -------------------------------------------------------------------

namespace {
Error no_device() { return make_error(Errc::invalid_argument, "empty VfioDevice handle"); }
}  // namespace

Result<Device> VfioDevice::device() const {
  if (!pool_) return no_device();
  return device_of(*pool_, bdf_);
}

Result<std::uint64_t> VfioDevice::bar_size(unsigned bar) const {
  if (!pool_) return no_device();
  return pool_->vfio->bar_size(index_, bar);
}
Result<std::uint32_t> VfioDevice::read32(unsigned bar, std::uint64_t off) const {
  if (!pool_) return no_device();
  return pool_->vfio->read32(index_, bar, off);
}
Status VfioDevice::write32(unsigned bar, std::uint64_t off, std::uint32_t v) const {
  if (!pool_) return no_device();
  return pool_->vfio->write32(index_, bar, off, v);
}
Result<std::uint64_t> VfioDevice::read64(unsigned bar, std::uint64_t off) const {
  if (!pool_) return no_device();
  return pool_->vfio->read64(index_, bar, off);
}
Status VfioDevice::write64(unsigned bar, std::uint64_t off, std::uint64_t v) const {
  if (!pool_) return no_device();
  return pool_->vfio->write64(index_, bar, off, v);
}
Status VfioDevice::config_read(std::uint32_t off, void* out, std::size_t len) const {
  if (!pool_) return no_device();
  return pool_->vfio->config_read(index_, off, out, len);
}
Status VfioDevice::config_write(std::uint32_t off, const void* in, std::size_t len) const {
  if (!pool_) return no_device();
  return pool_->vfio->config_write(index_, off, in, len);
}
Status VfioDevice::enable_bus_master() const {
  std::uint16_t cmd = 0;
  if (Status s = config_read(4, &cmd, 2); !s) return s;
  cmd |= 0x6;  // memory space + bus master
  return config_write(4, &cmd, 2);
}
Status VfioDevice::disable_bus_master() const {
  std::uint16_t cmd = 0;
  if (Status s = config_read(4, &cmd, 2); !s) return s;
  cmd = static_cast<std::uint16_t>(cmd & ~0x4u);
  return config_write(4, &cmd, 2);
}

}  // namespace numacma
