// src/vfio/container.cpp — see container.hpp. A device's fd, regions and
// registers are device.cpp.
//
// attach(bdf, mask) in named steps, each undoing what it did when it fails:
//
//   check_device      BDF, mask, the device's group and driver read now
//   open_container    /dev/vfio/vfio, API version, TYPE1v2 (once)
//   join_group        the group: found in the container, or opened, checked
//                     viable, added (SET_CONTAINER) and, first group, SET_IOMMU
//   plan_iova         the usable IOVA space with this group, checked against
//                     the mask before anything else changes
//   device_fd         VFIO_GROUP_GET_DEVICE_FD
//   narrow_iova       the allocator made, or narrowed by what the group takes
//   publish           the group and the device entered in the tables
//
// Locking, once: `mu` guards the IOVA allocator, the mappings, pgsizes and
// the tables report() reads. attach() takes it only around its three reads
// or writes of those (plan_iova, narrow_iova, publish) and makes its ioctls
// without it, so that map/unmap on other threads never wait on a slow
// kernel call. Between plan_iova and narrow_iova nothing but attach() itself
// changes the usable space (map/unmap change what is used, not the ranges),
// so the plan is still true when it is applied; two attach() calls must not
// overlap (container.hpp).
#include "vfio/container.hpp"
#include "vfio/container_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>

#include "os/errno_error.hpp"
#include "os/os.hpp"
#include "vfio/bind.hpp"
#include "vfio/kernel.hpp"

namespace numacma::vfio {

namespace detail {

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

std::string mib(std::uint64_t b) {
  if (b == ~std::uint64_t{0}) return "unlimited";
  char buf[32];
  if (b < (1 << 20))
    std::snprintf(buf, sizeof buf, "%" PRIu64 " KiB", b >> 10);
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

}  // namespace detail

using namespace detail;

Container::Impl::~Impl() {
  for (auto& [iova_addr, m] : mappings) (void)kernel_unmap(m.iova, m.bytes);
  mappings.clear();
  devs.clear();  // device fds (and BAR mappings) before the groups and the iommufd
  for (Group& g : groups) {
    (void)k->group_unset_container(g.fd);
    k->close(g.fd);
  }
  groups.clear();
  if (container >= 0) k->close(container);
  if (iommufd >= 0) k->close(iommufd);
}

/** The device's node, group and driver, read now (the topology's copy may be
 *  stale); an error that says what to do for each thing missing. */
Result<topo::PciDevice> Container::Impl::check_device(const std::string& bdf, std::uint64_t mask) const {
  if (mask == 0) return make_error(Errc::invalid_argument, "VFIO device " + bdf + ": DMA mask 0");
  for (const auto& d : devs)
    if (d->info().bdf == bdf)
      return make_error(Errc::invalid_argument, "VFIO device " + bdf + " attached twice");
  Result<topo::PciDevice> pci = topo::read_pci_device(root, bdf);
  if (!pci) {
    const std::string prefix = "no PCI device " + bdf;
    if (pci.error().code == Errc::not_found && pci.error().message.rfind(prefix, 0) != 0)
      return make_error(Errc::not_found, prefix + ": " + pci.error().message);
    return pci;  // a missing directory says "no PCI device BDF: ..." itself
  }
  if (pci->iommu_group < 0 && want == IommuBackend::noiommu)
    return make_error(Errc::unsupported, "no IOMMU group: " + bdf + " has no VFIO no-IOMMU group. " +
                                             kNoIommuModeHow + ", then bind it again: numacma vfio unbind " +
                                             bdf + "; numacma vfio bind " + bdf);
  if (pci->iommu_group < 0)
    return make_error(Errc::unsupported,
                      "no IOMMU: " + bdf + " has no IOMMU group, so VFIO cannot drive it (boot with "
                      "intel_iommu=on or amd_iommu=on and enable VT-d/AMD-Vi in the firmware; "
                      "without an IOMMU use phys mode instead: --backing hugetlb as root, no --vfio; or, "
                      "if you accept that the device can then write anywhere in memory, VFIO's no-IOMMU "
                      "mode: --iommu noiommu, docs/vfio.md)");
  if (Status s = check_group_kind(*pci); !s) return std::move(s).error();
  const std::string& drv = pci->driver;
  if (drv != "vfio-pci")
    return make_error(Errc::unsupported,
                      bdf + (drv.empty() ? std::string(" is bound to no driver") : " is bound to " + drv) +
                          ", not vfio-pci: run `numacma vfio bind " + bdf + "` as root first");
  return pci;
}

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
  FdGuard fd(k.get(), *c);
  Result<int> v = k->api_version(fd.fd);
  if (!v) return std::move(v).error();
  if (*v != 0)  // VFIO_API_VERSION
    return make_error(Errc::unsupported, path + " speaks VFIO API version " + std::to_string(*v) + ", not 0");
  if (mode == IommuBackend::noiommu) {
    Result<bool> n = k->has_noiommu(fd.fd);
    if (!n) return std::move(n).error();
    if (!*n) return make_error(Errc::unsupported, path + " offers no no-IOMMU container. " + kNoIommuModeHow);
  } else {
    Result<bool> t = k->has_type1v2(fd.fd);
    if (!t) return std::move(t).error();
    if (!*t)
      return make_error(Errc::unsupported, "the kernel's VFIO has no type1v2 IOMMU backend "
                                           "(modprobe vfio_iommu_type1)");
  }
  container = fd.release();
  return {};
}

/** The group already in the container, or the group opened, checked viable
 *  and added to it (fresh holds its fd until publish). On failure nothing
 *  of the group is left in the container. */
Result<GroupJoin> Container::Impl::join_group(int group, const std::string& bdf, FdGuard& fresh) {
  for (const Group& g : groups)
    if (g.id == group) return GroupJoin{group, g.fd, false};
  const std::string gpath =
      dev_root + "/" + (mode == IommuBackend::noiommu ? "noiommu-" : "") + std::to_string(group);
  Result<int> gfd = k->open(gpath);
  if (!gfd) return group_open_error(gpath, group, bdf, std::move(gfd).error());
  fresh.fd = *gfd;
  Result<bool> viable = k->group_viable(fresh.fd);
  if (!viable) return std::move(viable).error();
  if (!*viable) return not_viable(group, bdf);
  if (Status s = k->group_set_container(fresh.fd, container); !s) return std::move(s).error();
  if (Status s = set_iommu(fresh.fd); !s) return std::move(s).error();
  return GroupJoin{group, fresh.fd, true};
}

Error Container::Impl::group_open_error(const std::string& gpath, int group, const std::string& bdf,
                                        Error e) const {
  if (e.code == Errc::permission && mode == IommuBackend::noiommu)
    return make_error(Errc::permission, "permission denied on " + gpath + " (no-IOMMU group of " + bdf +
                                            "): no-IOMMU mode needs CAP_SYS_RAWIO: run as root");
  if (e.code == Errc::permission)
    return make_error(Errc::permission, "permission denied on " + gpath + " (IOMMU group of " + bdf +
                                            "): run as root, or give this user the group's node "
                                            "(chown USER " + gpath + ", or a udev rule for vfio)");
  if (e.sys_errno == EBUSY)
    return os::with_errno(make_error(Errc::io_error, gpath + " is busy: IOMMU group " + std::to_string(group) +
                                                         " is already open in another process or container"),
                          EBUSY);
  if (e.code == Errc::not_found)
    return make_error(Errc::not_found, "no " + gpath + ": is " + bdf +
                                           " really bound to vfio-pci? (numacma vfio bind " + bdf + ")");
  return e;
}

/** SET_IOMMU once, when the first group is in; on failure the group leaves. */
Status Container::Impl::set_iommu(int group_fd) {
  if (iommu_set) return {};
  if (mode == IommuBackend::noiommu) {
    if (Status s = k->set_iommu_noiommu(container); !s) {
      (void)k->group_unset_container(group_fd);
      if (s.error().code == Errc::permission)
        return make_error(Errc::permission, s.error().message + ": no-IOMMU mode needs CAP_SYS_RAWIO (run as root)");
      return s;
    }
    iommu_set = true;
    return {};
  }
  if (Status s = k->set_iommu_type1v2(container); !s) {
    (void)k->group_unset_container(group_fd);
    if (s.error().code == Errc::permission)
      return make_error(Errc::permission,
                        s.error().message + ": the IOMMU has no interrupt remapping (enable it, "
                                            "e.g. intremap on, or load vfio_iommu_type1 with "
                                            "allow_unsafe_interrupts=1 if you accept the risk)");
    return s;
  }
  iommu_set = true;
  return {};
}

/** Undoes join_group for a fresh group, only while no device fd of it is
 *  open; the last group out takes the IOMMU backend along. */
void Container::Impl::leave_group(const GroupJoin& g) {
  if (!g.fresh) return;
  (void)k->group_unset_container(g.fd);
  if (groups.empty()) iommu_set = false;
}

/** The usable IOVA space: the kernel's ranges (for every group in the
 *  container) less the reserved regions sysfs lists for this group; refused
 *  when the mask reaches none of what would be left. Changes nothing. */
Result<IovaPlan> Container::Impl::plan_iova(int group, std::uint64_t mask, const std::string& bdf) const {
  Result<IommuInfo> info = k->iommu_info(container);
  if (!info) return std::move(info).error();
  std::vector<IovaRange> ranges;
  for (const auto& r : info->ranges) ranges.push_back({r.first, r.last});
  return plan_ranges(std::move(ranges), group, info->pgsizes, mask, bdf);
}

Result<IovaPlan> Container::Impl::plan_ranges(std::vector<IovaRange> ranges, int group, std::uint64_t pgs,
                                              std::uint64_t mask, const std::string& bdf) const {
  Result<std::vector<IovaRange>> holes = reserved_regions(group);
  if (!holes) return std::move(holes).error();
  if (ranges.empty()) ranges.push_back({0, kNoCapabilityLast});
  IovaPlan plan;
  plan.usable = subtract(ranges, *holes);
  plan.pgsizes = pgs;
  std::lock_guard<std::mutex> lock(mu);
  const std::vector<IovaRange> cur = iova ? iova->usable() : subtract(plan.usable, {{0, kIovaFloor - 1}});
  if (iova) plan.gone = subtract(cur, plan.usable);
  const std::vector<IovaRange> after = subtract(cur, plan.gone);
  if (after.empty() || after.front().first > mask)
    return make_error(Errc::unreachable,
                      "the DMA mask " + hex(mask) + " of " + bdf +
                          " is below every usable IOVA range (lowest usable IOVA: " +
                          (after.empty() ? std::string("none") : hex(after.front().first)) + ")");
  return plan;
}

/** The allocator made (first device) or narrowed by what the group takes. */
Status Container::Impl::narrow_iova(const IovaPlan& plan, const std::string& bdf) {
  std::lock_guard<std::mutex> lock(mu);
  if (!iova) iova = std::make_unique<IovaAllocator>(plan.usable);
  for (const IovaRange& r : plan.gone)
    if (Status s = iova->exclude(r); !s)
      return make_error(Errc::unsupported, "cannot attach " + bdf + ": " + s.error().message);
  return {};
}

/** The group (when fresh) and the device entered in the tables. */
void Container::Impl::publish(const GroupJoin& g, FdGuard& fresh, const topo::PciDevice& pci,
                              const std::string& bdf, std::uint64_t mask, FdGuard& dfd, std::uint64_t pgs) {
  DeviceInfo info;
  info.bdf = bdf;
  info.group = g.id;
  info.node = pci.numa_node;
  info.dma_mask = mask;
  auto d = std::make_unique<DeviceAccess>(*k, std::move(info), dfd.release());
  std::lock_guard<std::mutex> lock(mu);  // report() reads these
  pgsizes = pgs;
  if (g.fresh) groups.push_back({g.id, fresh.release()});
  devs.push_back(std::move(d));
}

Result<std::vector<IovaRange>> Container::Impl::reserved_regions(int group) const {
  const std::string path = root + "/kernel/iommu_groups/" + std::to_string(group) + "/reserved_regions";
  Result<std::string> text = os::read_file(path);
  if (!text) return std::vector<IovaRange>{};  // older kernels: the IOVA_RANGE capability has it
  Result<std::vector<IovaRange>> r = parse_reserved_regions(*text);
  if (!r) return make_error(Errc::io_error, path + ": " + r.error().message);
  return r;
}

Error Container::Impl::not_viable(int group, const std::string& bdf) const {
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

Container::Container(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Container::~Container() = default;

Result<std::unique_ptr<Container>> Container::create(const topo::Topology& topology,
                                                     std::string dev_root,
                                                     std::shared_ptr<Kernel> kernel, IommuBackend backend) {
  auto impl = std::make_unique<Impl>();
  impl->want = backend;
  impl->k = kernel ? std::move(kernel) : os_kernel();
  impl->root = topology.root();
  impl->dev_root = std::move(dev_root);
  return std::unique_ptr<Container>(new Container(std::move(impl)));
}

Status Container::attach(std::string_view bdf_text, std::uint64_t mask) {
  Impl& m = *impl_;
  Result<std::string> parsed = topo::parse_bdf(bdf_text);
  if (!parsed) return make_error(Errc::invalid_argument, "VFIO device: " + parsed.error().message);
  const std::string bdf = std::move(*parsed);
  Result<topo::PciDevice> pci = m.check_device(bdf, mask);
  if (!pci) return std::move(pci).error();
  if (Status s = m.choose_backend(bdf); !s) return s;
  if (m.mode == IommuBackend::noiommu) return m.attach_noiommu(bdf, mask, *pci);
  if (m.mode == IommuBackend::type1) return m.attach_type1(bdf, mask, *pci);
  Status s = m.attach_iommufd(bdf, mask, *pci);
  if (s || m.want != IommuBackend::automatic || !m.devs.empty() || !m.interface_refused) return s;
  // Automatic, and the first device does not come in over iommufd (a cdev
  // this user may not open, say): the type1 container instead.
  if (m.iommufd >= 0) m.k->close(m.iommufd);
  m.iommufd = -1;
  m.mode = IommuBackend::type1;
  Status t = m.attach_type1(bdf, mask, *pci);
  if (t) return t;
  m.mode = IommuBackend::automatic;
  Error e = std::move(t).error();
  e.message = "over iommufd: " + s.error().message + "; over the type1 container: " + e.message;
  return e;
}

Status Container::Impl::attach_type1(const std::string& bdf, std::uint64_t mask, const topo::PciDevice& pci) {
  if (Status s = open_container(); !s) return s;
  FdGuard fresh(k.get(), -1);  // a group opened here, closed unless published
  Result<GroupJoin> g = join_group(pci.iommu_group, bdf, fresh);
  if (!g) return std::move(g).error();
  Result<IovaPlan> plan = plan_iova(g->id, mask, bdf);
  if (!plan) {
    leave_group(*g);
    return std::move(plan).error();
  }
  Result<int> dfd_r = k->device_fd(g->fd, bdf);
  if (!dfd_r) {
    leave_group(*g);
    return std::move(dfd_r).error();
  }
  FdGuard dfd(k.get(), *dfd_r);
  if (Status s = narrow_iova(*plan, bdf); !s) {
    dfd.reset();  // closed before the group leaves the container
    leave_group(*g);
    return s;
  }
  publish(*g, fresh, pci, bdf, mask, dfd, plan->pgsizes);
  return {};
}

Result<std::uint64_t> Container::map(std::uintptr_t vaddr, std::uint64_t bytes, std::uint64_t align,
                                     std::uint64_t limit, std::string_view what) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.mode == IommuBackend::noiommu)
    return make_error(Errc::unsupported, std::string(what) +
                                             ": VFIO's no-IOMMU mode maps nothing (no IOMMU translates): "
                                             "the devices take physical addresses");
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
  if (Status s = m.kernel_map(vaddr, *iova, bytes); !s) {
    (void)m.iova->free(*iova, bytes);
    Error e = std::move(s).error();
    if (e.code == Errc::no_memory && memlock != ~std::uint64_t{0})
      e.message += " (RLIMIT_MEMLOCK is " + mib(memlock) + ": raise it, ulimit -l)";
    else if (e.sys_errno == ENOSPC && m.mode == IommuBackend::type1)
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
  Result<std::uint64_t> done = m.kernel_unmap(iova, bytes);
  if (!done) return std::move(done).error();
  if (*done != bytes)
    return make_error(Errc::io_error, std::string(m.mode == IommuBackend::iommufd ? "IOMMU_IOAS_UNMAP" : "VFIO_IOMMU_UNMAP_DMA") +
                                          " at " + hex(iova) + " unmapped " +
                                          std::to_string(*done) + " of " + std::to_string(bytes) + " bytes");
  m.mappings.erase(it);
  m.mapped_bytes -= bytes;
  return m.iova->free(iova, bytes);
}

IommuBackend Container::backend() const noexcept { return impl_->mode; }

std::uint64_t Container::min_mask() const noexcept {
  std::uint64_t mask = ~std::uint64_t{0};
  for (const auto& d : impl_->devs) mask = std::min(mask, d->info().dma_mask);
  return mask;
}

std::size_t Container::device_count() const noexcept { return impl_->devs.size(); }

int Container::find(std::string_view bdf_text) const noexcept {
  Result<std::string> bdf = topo::parse_bdf(bdf_text);  // "05:00.0" finds "0000:05:00.0"
  if (!bdf) return -1;
  for (std::size_t i = 0; i < impl_->devs.size(); ++i)
    if (impl_->devs[i]->info().bdf == *bdf) return static_cast<int>(i);
  return -1;
}

DeviceInfo Container::device(int index) const {
  return impl_->devs.at(static_cast<std::size_t>(index))->info();
}

Result<DeviceAccess*> Container::access(int index) const {
  if (index < 0 || static_cast<std::size_t>(index) >= impl_->devs.size())
    return make_error(Errc::not_found, "no such VFIO device");
  return impl_->devs[static_cast<std::size_t>(index)].get();
}

Result<std::uint64_t> Container::bar_size(int index, unsigned bar) {
  Result<DeviceAccess*> d = access(index);
  if (!d) return std::move(d).error();
  return (*d)->bar_size(bar);
}
Result<std::uint32_t> Container::read32(int index, unsigned bar, std::uint64_t off) {
  Result<DeviceAccess*> d = access(index);
  if (!d) return std::move(d).error();
  return (*d)->read32(bar, off);
}
Status Container::write32(int index, unsigned bar, std::uint64_t off, std::uint32_t v) {
  Result<DeviceAccess*> d = access(index);
  if (!d) return std::move(d).error();
  return (*d)->write32(bar, off, v);
}
Result<std::uint64_t> Container::read64(int index, unsigned bar, std::uint64_t off) {
  Result<DeviceAccess*> d = access(index);
  if (!d) return std::move(d).error();
  return (*d)->read64(bar, off);
}
Status Container::write64(int index, unsigned bar, std::uint64_t off, std::uint64_t v) {
  Result<DeviceAccess*> d = access(index);
  if (!d) return std::move(d).error();
  return (*d)->write64(bar, off, v);
}
Status Container::config_read(int index, std::uint32_t off, void* out, std::size_t len) {
  Result<DeviceAccess*> d = access(index);
  if (!d) return std::move(d).error();
  return (*d)->config_read(off, out, len);
}
Status Container::config_write(int index, std::uint32_t off, const void* in, std::size_t len) {
  Result<DeviceAccess*> d = access(index);
  if (!d) return std::move(d).error();
  return (*d)->config_write(off, in, len);
}

ContainerReport Container::report() const {
  const Impl& m = *impl_;
  ContainerReport rep;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.iova) rep.ranges = m.iova->usable();
  rep.pgsizes = m.pgsizes;
  rep.backend = backend_name(m.mode);
  if (m.container >= 0 && m.mode == IommuBackend::type1) {
    if (Result<IommuInfo> info = m.k->iommu_info(m.container)) rep.dma_avail = info->dma_avail;
  }
  for (const auto& d : m.devs) rep.devices.push_back(d->info());
  for (const auto& [iova, mp] : m.mappings) rep.mappings.push_back(mp);
  return rep;
}

}  // namespace numacma::vfio
