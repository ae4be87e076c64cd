// src/vfio/container.cpp — see container.hpp.
#include "vfio/container.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "os/os.hpp"
#include "vfio/bind.hpp"
#include "vfio/kernel.hpp"

namespace numacma::vfio {

namespace {

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

/** "4 KiB", "8.0 MiB", "unlimited". */
std::string mib(std::uint64_t b) {
  if (b == ~std::uint64_t{0}) return "unlimited";
  char buf[32];
  if (b < (1 << 20))
    std::snprintf(buf, sizeof buf, "%" PRIu64 " KiB", b >> 10);
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

/** Every earlier store to DMA memory is visible to the device before a
 *  register write that follows (the kernel's writel: __iowmb). x86 keeps
 *  stores in order, so the compiler is all there is to stop. */
inline void io_wmb() noexcept {
#if defined(__aarch64__)
  asm volatile("dmb oshst" ::: "memory");
#elif defined(__x86_64__) || defined(__i386__)
  asm volatile("" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/** A register read completes before later loads from DMA memory (readl's
 *  __iormb): a status read, then the data the device wrote. */
inline void io_rmb() noexcept {
#if defined(__aarch64__)
  asm volatile("dmb oshld" ::: "memory");
#elif defined(__x86_64__) || defined(__i386__)
  asm volatile("" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

constexpr int kRegions = 6;  // BAR0..BAR5

struct Region {
  bool known = false;
  RegionInfo info;
  void* map = nullptr;  // mmap of the region, when it allows one
};

struct Dev {
  DeviceInfo info;
  int fd = -1;
  std::array<Region, kRegions> bars;
  std::mutex bars_mu;
};

struct Group {
  int id = -1;
  int fd = -1;
};

/** Closes an fd through the Kernel unless released. */
struct FdGuard {
  Kernel* k = nullptr;
  int fd = -1;
  FdGuard(Kernel* kernel, int f) : k(kernel), fd(f) {}
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  ~FdGuard() { reset(); }
  void reset() noexcept {
    if (fd >= 0) k->close(fd);
    fd = -1;
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

}  // namespace

struct Container::Impl {
  const topo::Topology* topology = nullptr;
  std::string root;      // sysfs
  std::string dev_root;  // /dev/vfio
  std::shared_ptr<Kernel> k;
  int container = -1;
  bool iommu_set = false;
  std::vector<Group> groups;
  std::vector<std::unique_ptr<Dev>> devs;
  std::uint64_t pgsizes = 0;

  mutable std::mutex mu;  // allocator, mappings, locked-bytes
  std::unique_ptr<IovaAllocator> iova;
  std::map<std::uint64_t, Mapping> mappings;  // by IOVA
  std::uint64_t mapped_bytes = 0;

  ~Impl() {
    for (auto& [iova_addr, m] : mappings) (void)k->unmap_dma(container, m.iova, m.bytes);
    mappings.clear();
    for (auto& d : devs) {  // device fds before the groups
      for (Region& r : d->bars)
        if (r.map != nullptr) k->unmap_region(r.map, r.info.size);
      k->close(d->fd);
    }
    devs.clear();
    for (Group& g : groups) {
      (void)k->group_unset_container(g.fd);
      k->close(g.fd);
    }
    groups.clear();
    if (container >= 0) k->close(container);
  }

  Status open_container();
  Result<std::vector<IovaRange>> reserved_regions(int group) const;
  Status not_viable(int group, const std::string& bdf) const;
  Result<Region*> region(int index, unsigned bar);
};

Status Container::Impl::open_container() {
  if (container >= 0) return {};
  const std::string path = dev_root + "/vfio";
  Result<int> c = k->open(path);
  if (!c) {
    if (c.error().code == Errc::not_found)
      return make_error(Errc::unsupported, "no " + path +
                                               ": VFIO is not loaded (modprobe vfio-pci; the IOMMU "
                                               "must be on: intel_iommu=on or amd_iommu=on)");
    if (c.error().code == Errc::permission)
      return make_error(Errc::permission, "permission denied on " + path + " (" + c.error().message +
                                              "): it is normally 0666; check the device node");
    return std::move(c).error();
  }
  const int fd = *c;
  auto fail = [&](Error e) {
    k->close(fd);
    return e;
  };
  Result<int> v = k->api_version(fd);
  if (!v) return fail(std::move(v).error());
  if (*v != 0)  // VFIO_API_VERSION
    return fail(make_error(Errc::unsupported,
                           path + " speaks VFIO API version " + std::to_string(*v) + ", not 0"));
  Result<bool> t = k->has_type1v2(fd);
  if (!t) return fail(std::move(t).error());
  if (!*t)
    return fail(make_error(Errc::unsupported, "the kernel's VFIO has no type1v2 IOMMU backend "
                                              "(modprobe vfio_iommu_type1)"));
  container = fd;
  return {};
}

Result<std::vector<IovaRange>> Container::Impl::reserved_regions(int group) const {
  const std::string path = root + "/kernel/iommu_groups/" + std::to_string(group) + "/reserved_regions";
  Result<std::string> text = os::read_file(path);
  if (!text) return std::vector<IovaRange>{};  // older kernels: the IOVA_RANGE capability has it
  Result<std::vector<IovaRange>> r = parse_reserved_regions(*text);
  if (!r) return make_error(Errc::io_error, path + ": " + r.error().message);
  return r;
}

Status Container::Impl::not_viable(int group, const std::string& bdf) const {
  std::string others;
  if (Result<std::vector<GroupMember>> blocking = group_blockers(root, group, bdf))
    for (const GroupMember& g : *blocking)
      others += (others.empty() ? "" : ", ") + g.bdf + " (bound to " + g.driver +
                ": numacma vfio bind " + g.bdf + ")";
  return make_error(Errc::unsupported,
                    "IOMMU group " + std::to_string(group) + " of " + bdf +
                        " is not viable: every device in it must be bound to vfio-pci or to no "
                        "driver" + (others.empty() ? std::string() : "; not so: " + others));
}

Result<Region*> Container::Impl::region(int index, unsigned bar) {
  if (index < 0 || static_cast<std::size_t>(index) >= devs.size())
    return make_error(Errc::not_found, "no such VFIO device");
  if (bar >= kRegions) return make_error(Errc::invalid_argument, "BAR " + std::to_string(bar) + " (0..5)");
  Dev& d = *devs[static_cast<std::size_t>(index)];
  std::lock_guard<std::mutex> lock(d.bars_mu);
  Region& r = d.bars[bar];
  if (!r.known) {
    Result<RegionInfo> ri = k->region_info(d.fd, bar);
    if (!ri) return std::move(ri).error();
    r.info = *ri;
    if (r.info.size != 0 && r.info.mmap_ok()) {
      if (Result<void*> m = k->map_region(d.fd, r.info)) r.map = *m;  // else pread/pwrite
    }
    r.known = true;
  }
  if (r.info.size == 0)
    return make_error(Errc::not_found, d.info.bdf + " has no BAR " + std::to_string(bar));
  return &r;
}

Container::Container(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Container::~Container() = default;

Result<std::unique_ptr<Container>> Container::create(const topo::Topology& topology,
                                                     std::string dev_root,
                                                     std::shared_ptr<Kernel> kernel) {
  auto impl = std::make_unique<Impl>();
  impl->k = kernel ? std::move(kernel) : os_kernel();
  impl->topology = &topology;
  impl->root = topology.root();
  impl->dev_root = std::move(dev_root);
  return std::unique_ptr<Container>(new Container(std::move(impl)));
}

Status Container::attach(std::string_view bdf_text, std::uint64_t mask) {
  Impl& m = *impl_;
  Result<std::string> parsed = topo::parse_bdf(bdf_text);
  if (!parsed) return make_error(Errc::invalid_argument, "VFIO device: " + parsed.error().message);
  const std::string bdf = std::move(*parsed);
  if (mask == 0) return make_error(Errc::invalid_argument, "VFIO device " + bdf + ": DMA mask 0");
  if (find(bdf) >= 0) return make_error(Errc::invalid_argument, "VFIO device " + bdf + " attached twice");
  // The device's node, group and driver, read now (the topology's copy may be stale).
  Result<topo::PciDevice> pci = topo::read_pci_device(m.root, bdf);
  if (!pci) {
    if (pci.error().code == Errc::not_found)
      return make_error(Errc::not_found, "no PCI device " + bdf + ": " + pci.error().message);
    return std::move(pci).error();
  }
  if (pci->iommu_group < 0)
    return make_error(Errc::unsupported,
                      "no IOMMU: " + bdf + " has no IOMMU group, so VFIO cannot drive it (boot with "
                      "intel_iommu=on or amd_iommu=on and enable VT-d/AMD-Vi in the firmware; "
                      "without an IOMMU use phys mode instead: --backing hugetlb as root, no --vfio)");
  const int group = pci->iommu_group;
  const std::string& drv = pci->driver;
  if (drv != "vfio-pci")
    return make_error(Errc::unsupported,
                      bdf + (drv.empty() ? std::string(" is bound to no driver")
                                         : " is bound to " + drv) +
                          ", not vfio-pci: run `numacma vfio bind " + bdf + "` as root first");

  if (Status s = m.open_container(); !s) return s;

  Group* g = nullptr;
  for (Group& x : m.groups)
    if (x.id == group) g = &x;
  const bool new_group = g == nullptr;
  FdGuard fresh(m.k.get(), -1);
  if (new_group) {
    const std::string gpath = m.dev_root + "/" + std::to_string(group);
    Result<int> gfd = m.k->open(gpath);
    if (!gfd) {
      const Error& e = gfd.error();
      if (e.code == Errc::permission)
        return make_error(Errc::permission,
                          "permission denied on " + gpath + " (IOMMU group of " + bdf +
                              "): run as root, or give this user the group's node "
                              "(chown USER " + gpath + ", or a udev rule for vfio)");
      if (e.sys_errno == EBUSY)
        return make_error(Errc::io_error, gpath + " is busy: IOMMU group " + std::to_string(group) +
                                              " is already open in another process or container");
      if (e.code == Errc::not_found)
        return make_error(Errc::not_found, "no " + gpath + ": is " + bdf +
                                               " really bound to vfio-pci? (numacma vfio bind " + bdf + ")");
      return std::move(gfd).error();
    }
    fresh.fd = *gfd;
    Result<bool> viable = m.k->group_viable(fresh.fd);
    if (!viable) return std::move(viable).error();
    if (!*viable) return m.not_viable(group, bdf);
    if (Status s = m.k->group_set_container(fresh.fd, m.container); !s) return s;
    if (!m.iommu_set) {
      if (Status s = m.k->set_iommu_type1v2(m.container); !s) {
        (void)m.k->group_unset_container(fresh.fd);
        if (s.error().code == Errc::permission)
          return make_error(Errc::permission,
                            s.error().message + ": the IOMMU has no interrupt remapping (enable it, "
                                                "e.g. intremap on, or load vfio_iommu_type1 with "
                                                "allow_unsafe_interrupts=1 if you accept the risk)");
        return s;
      }
      m.iommu_set = true;
    }
  }
  const int gfd_num = new_group ? fresh.fd : g->fd;
  auto undo_group = [&] {  // only while no device fd of the group is open
    if (!new_group) return;
    (void)m.k->group_unset_container(fresh.fd);
    if (m.groups.empty()) m.iommu_set = false;  // the last group out takes the IOMMU backend along
  };

  // The usable IOVA space: the kernel's ranges (for every group in the
  // container) less the reserved regions sysfs lists for this group. Checked
  // against the mask before anything changes.
  Result<IommuInfo> info = m.k->iommu_info(m.container);
  if (!info) {
    undo_group();
    return std::move(info).error();
  }
  Result<std::vector<IovaRange>> holes = m.reserved_regions(group);
  if (!holes) {
    undo_group();
    return std::move(holes).error();
  }
  std::vector<IovaRange> ranges;
  for (const auto& r : info->ranges) ranges.push_back({r.first, r.last});
  if (ranges.empty()) ranges.push_back({0, (std::uint64_t{1} << 39) - 1});  // no capability: 39-bit
  const std::vector<IovaRange> usable_now = subtract(ranges, *holes);
  std::vector<IovaRange> gone;  // what a later group takes out of the current space
  {
    std::lock_guard<std::mutex> lock(m.mu);
    const std::vector<IovaRange> cur = m.iova ? m.iova->usable() : subtract(usable_now, {{0, kIovaFloor - 1}});
    if (m.iova) gone = subtract(cur, usable_now);
    const std::vector<IovaRange> after = subtract(cur, gone);
    if (after.empty() || after.front().first > mask) {
      undo_group();
      return make_error(Errc::unreachable,
                        "the DMA mask " + hex(mask) + " of " + bdf +
                            " is below every usable IOVA range (lowest usable IOVA: " +
                            (after.empty() ? std::string("none") : hex(after.front().first)) + ")");
    }
  }
  Result<int> dfd_r = m.k->device_fd(gfd_num, bdf);
  if (!dfd_r) {
    undo_group();
    return std::move(dfd_r).error();
  }
  FdGuard dfd(m.k.get(), *dfd_r);
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (!m.iova) m.iova = std::make_unique<IovaAllocator>(usable_now);
    for (const IovaRange& r : gone) {
      if (Status s = m.iova->exclude(r); !s) {
        dfd.reset();  // closed before the group leaves the container
        undo_group();
        return make_error(Errc::unsupported, "cannot attach " + bdf + ": " + s.error().message);
      }
    }
  }
  std::lock_guard<std::mutex> lock(m.mu);  // report() reads these
  m.pgsizes = info->pgsizes;
  if (new_group) m.groups.push_back({group, fresh.release()});
  auto d = std::make_unique<Dev>();
  d->info.bdf = bdf;
  d->info.group = group;
  d->info.node = pci->numa_node;
  d->info.dma_mask = mask;
  d->fd = dfd.release();
  m.devs.push_back(std::move(d));
  return {};
}

Result<std::uint64_t> Container::map(std::uintptr_t vaddr, std::uint64_t bytes, std::uint64_t align,
                                     std::uint64_t limit, std::string_view what) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (!m.iova) return make_error(Errc::invalid_argument, "VFIO container without devices");
  const std::uint64_t memlock = m.k->memlock_limit();
  if (!m.k->can_lock_unlimited() && m.mapped_bytes + bytes > memlock)
    return make_error(Errc::no_memory,
                      "RLIMIT_MEMLOCK is " + mib(memlock) + " but VFIO must pin " +
                          mib(m.mapped_bytes + bytes) + " (" + std::string(what) +
                          " included): raise it (ulimit -l, or LimitMEMLOCK= in a systemd unit) to "
                          "at least the pool's areas plus its page buffers");
  Result<std::uint64_t> iova = m.iova->alloc(bytes, align, limit);
  if (!iova) {
    Error e = std::move(iova).error();
    e.message = std::string(what) + ": " + e.message;
    return e;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (Status s = m.k->map_dma(m.container, vaddr, *iova, bytes); !s) {
    (void)m.iova->free(*iova, bytes);
    Error e = std::move(s).error();
    if (e.code == Errc::no_memory && memlock != ~std::uint64_t{0})
      e.message += " (RLIMIT_MEMLOCK is " + mib(memlock) + ": raise it, ulimit -l)";
    else if (e.sys_errno == ENOSPC)
      e.message += " (the container's DMA mapping limit is reached: vfio_iommu_type1 dma_entry_limit)";
    e.message = std::string(what) + ": " + e.message;
    return e;
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0);
  m.mappings.emplace(*iova, Mapping{std::string(what), *iova, bytes, vaddr,
                                    static_cast<std::uint64_t>(ns.count())});
  m.mapped_bytes += bytes;
  return *iova;
}

Status Container::unmap(std::uint64_t iova, std::uint64_t bytes) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.mappings.find(iova);
  if (it == m.mappings.end() || it->second.bytes != bytes)
    return make_error(Errc::invalid_argument,
                      "VFIO unmap of " + hex(iova) + " + " + std::to_string(bytes) + ": not a mapping");
  Result<std::uint64_t> done = m.k->unmap_dma(m.container, iova, bytes);
  if (!done) return std::move(done).error();
  if (*done != bytes)
    return make_error(Errc::io_error, "VFIO_IOMMU_UNMAP_DMA at " + hex(iova) + " unmapped " +
                                          std::to_string(*done) + " of " + std::to_string(bytes) + " bytes");
  m.mappings.erase(it);
  m.mapped_bytes -= bytes;
  return m.iova->free(iova, bytes);
}

std::uint64_t Container::min_mask() const noexcept {
  std::uint64_t mask = ~std::uint64_t{0};
  for (const auto& d : impl_->devs) mask = std::min(mask, d->info.dma_mask);
  return mask;
}

std::size_t Container::device_count() const noexcept { return impl_->devs.size(); }

int Container::find(std::string_view bdf_text) const noexcept {
  Result<std::string> bdf = topo::parse_bdf(bdf_text);  // "05:00.0" finds "0000:05:00.0"
  if (!bdf) return -1;
  for (std::size_t i = 0; i < impl_->devs.size(); ++i)
    if (impl_->devs[i]->info.bdf == *bdf) return static_cast<int>(i);
  return -1;
}

DeviceInfo Container::device(int index) const {
  return impl_->devs.at(static_cast<std::size_t>(index))->info;
}

Result<std::uint64_t> Container::bar_size(int index, unsigned bar) {
  Result<Region*> r = impl_->region(index, bar);
  if (!r) return std::move(r).error();
  return (*r)->info.size;
}

namespace {

/** A register read of sizeof(T) bytes: through the BAR's mmap, else pread. */
template <class T>
Result<T> reg_read(Container::Impl& m, int index, unsigned bar, std::uint64_t off) {
  Result<Region*> r = m.region(index, bar);
  if (!r) return std::move(r).error();
  const Region& reg = **r;
  if (off % sizeof(T) != 0 || off + sizeof(T) > reg.info.size)
    return make_error(Errc::invalid_argument, "BAR" + std::to_string(bar) + " read" +
                                                  std::to_string(8 * sizeof(T)) + " at " + hex(off));
  T v = 0;
  if (reg.map != nullptr) {
    v = *reinterpret_cast<volatile T*>(static_cast<std::uint8_t*>(reg.map) + off);
    io_rmb();
    return v;
  }
  const int fd = m.devs[static_cast<std::size_t>(index)]->fd;
  if (Status s = m.k->read_at(fd, reg.info.offset + off, &v, sizeof(T)); !s) return std::move(s).error();
  return v;
}

/** A register write of sizeof(T) bytes, after every earlier store to DMA memory. */
template <class T>
Status reg_write(Container::Impl& m, int index, unsigned bar, std::uint64_t off, T v) {
  Result<Region*> r = m.region(index, bar);
  if (!r) return std::move(r).error();
  const Region& reg = **r;
  if (off % sizeof(T) != 0 || off + sizeof(T) > reg.info.size)
    return make_error(Errc::invalid_argument, "BAR" + std::to_string(bar) + " write" +
                                                  std::to_string(8 * sizeof(T)) + " at " + hex(off));
  if (reg.map != nullptr) {
    io_wmb();
    *reinterpret_cast<volatile T*>(static_cast<std::uint8_t*>(reg.map) + off) = v;
    return {};
  }
  const int fd = m.devs[static_cast<std::size_t>(index)]->fd;
  return m.k->write_at(fd, reg.info.offset + off, &v, sizeof(T));
}

}  // namespace

Result<std::uint32_t> Container::read32(int index, unsigned bar, std::uint64_t off) {
  return reg_read<std::uint32_t>(*impl_, index, bar, off);
}
Status Container::write32(int index, unsigned bar, std::uint64_t off, std::uint32_t v) {
  return reg_write<std::uint32_t>(*impl_, index, bar, off, v);
}
Result<std::uint64_t> Container::read64(int index, unsigned bar, std::uint64_t off) {
  return reg_read<std::uint64_t>(*impl_, index, bar, off);
}
Status Container::write64(int index, unsigned bar, std::uint64_t off, std::uint64_t v) {
  return reg_write<std::uint64_t>(*impl_, index, bar, off, v);
}

Status Container::config_read(int index, std::uint32_t off, void* out, std::size_t len) {
  if (index < 0 || static_cast<std::size_t>(index) >= impl_->devs.size())
    return make_error(Errc::not_found, "no such VFIO device");
  Dev& d = *impl_->devs[static_cast<std::size_t>(index)];
  Result<RegionInfo> ri = impl_->k->region_info(d.fd, impl_->k->config_region_index());
  if (!ri) return std::move(ri).error();
  if (off + len > ri->size)
    return make_error(Errc::invalid_argument, "config read past " + std::to_string(ri->size) + " bytes");
  return impl_->k->read_at(d.fd, ri->offset + off, out, len);
}

Status Container::config_write(int index, std::uint32_t off, const void* in, std::size_t len) {
  if (index < 0 || static_cast<std::size_t>(index) >= impl_->devs.size())
    return make_error(Errc::not_found, "no such VFIO device");
  Dev& d = *impl_->devs[static_cast<std::size_t>(index)];
  Result<RegionInfo> ri = impl_->k->region_info(d.fd, impl_->k->config_region_index());
  if (!ri) return std::move(ri).error();
  if (off + len > ri->size)
    return make_error(Errc::invalid_argument, "config write past " + std::to_string(ri->size) + " bytes");
  return impl_->k->write_at(d.fd, ri->offset + off, in, len);
}

ContainerReport Container::report() const {
  const Impl& m = *impl_;
  ContainerReport rep;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.iova) rep.ranges = m.iova->usable();
  rep.pgsizes = m.pgsizes;
  if (m.container >= 0) {
    if (Result<IommuInfo> info = m.k->iommu_info(m.container)) rep.dma_avail = info->dma_avail;
  }
  for (const auto& d : m.devs) rep.devices.push_back(d->info);
  for (const auto& [iova, mp] : m.mappings) rep.mappings.push_back(mp);
  return rep;
}

}  // namespace numacma::vfio
