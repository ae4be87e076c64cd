// src/vfio/container_iommufd.cpp — the iommufd side of Container (see
// container.hpp): one /dev/iommu fd, one IOAS, each device through its cdev.
//
//   choose_backend    at the first attach: forced, or automatic (iommufd when
//                     /dev/iommu opens and the device has a cdev, else type1)
//   open_iommufd      /dev/iommu, IOMMU_IOAS_ALLOC (once)
//   attach_iommufd    the cdev from sysfs (bus/pci/devices/BDF/vfio-dev/vfioN)
//                     -> open /dev/vfio/devices/vfioN -> BIND_IOMMUFD ->
//                     ATTACH_IOMMUFD_PT to the IOAS -> IOAS_IOVA_RANGES (they
//                     narrow with each device) -> the same plan, allocator and
//                     tables as type1 (container.cpp)
//   kernel_map/unmap  IOMMU_IOAS_MAP at the IOVA the allocator chose
//                     (FIXED_IOVA), IOMMU_IOAS_UNMAP; or type1's MAP/UNMAP_DMA
//
// A device is detached by closing its cdev fd; the IOAS and every mapping in
// it go with the /dev/iommu fd, which ~Impl closes last (after unmapping).
#include <cerrno>
#include <string>

#include "os/errno_error.hpp"
#include "os/os.hpp"
#include "vfio/bind.hpp"
#include "vfio/container.hpp"
#include "vfio/container_impl.hpp"

namespace numacma::vfio {

using namespace detail;

const char* backend_name(IommuBackend b) noexcept {
  switch (b) {
    case IommuBackend::iommufd: return "iommufd";
    case IommuBackend::type1: return "type1";
    case IommuBackend::noiommu: return "noiommu";
    case IommuBackend::automatic: break;
  }
  return "auto";
}

std::string Container::Impl::iommu_path() const {
  std::string d = dev_root;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const auto slash = d.rfind('/');
  return (slash == std::string::npos ? std::string(".") : d.substr(0, slash)) + "/iommu";
}

Result<std::string> Container::Impl::cdev_name(const std::string& bdf) const {
  const std::string dir = root + "/bus/pci/devices/" + bdf + "/vfio-dev";
  Result<std::vector<std::string>> names = os::list_dir(dir);
  if (!names) return make_error(Errc::not_found, dir + ": " + names.error().message);
  for (const std::string& n : *names)
    if (n.size() > 4 && n.compare(0, 4, "vfio") == 0 && n.find_first_not_of("0123456789", 4) == std::string::npos)
      return n;
  return make_error(Errc::not_found, dir + " names no vfioN");
}

Status Container::Impl::choose_backend(const std::string& bdf) {
  if (mode != IommuBackend::automatic) return {};  // chosen at the first attach
  if (want != IommuBackend::automatic) {
    mode = want;
    return {};
  }
  mode = cdev_name(bdf) && open_iommufd() ? IommuBackend::iommufd : IommuBackend::type1;
  return {};
}

Status Container::Impl::open_iommufd() {
  if (iommufd >= 0) return {};
  const std::string path = iommu_path();
  Result<int> fd = k->open(path);
  if (!fd) {
    if (fd.error().code == Errc::not_found)
      return make_error(Errc::unsupported, "no " + path +
                                               ": this kernel has no iommufd (CONFIG_IOMMUFD, Linux 6.2 or "
                                               "later; modprobe iommufd), so use the type1 container: "
                                               "--iommu type1 (or auto)");
    if (fd.error().code == Errc::permission)
      return make_error(Errc::permission, "permission denied on " + path + " (" + fd.error().message +
                                              "): it is root's alone by default; run as root, or give "
                                              "this user the node (a udev rule), or use --iommu type1");
    return std::move(fd).error();
  }
  FdGuard g(k.get(), *fd);
  Result<std::uint32_t> id = k->ioas_alloc(g.fd);
  if (!id) return std::move(id).error();
  iommufd = g.release();
  ioas = *id;
  return {};
}

Status Container::Impl::attach_iommufd(const std::string& bdf, std::uint64_t mask, const topo::PciDevice& pci) {
  interface_refused = true;  // until the device is in the IOAS
  if (Status s = open_iommufd(); !s) return s;
  Result<std::string> name = cdev_name(bdf);
  if (!name)
    return make_error(Errc::unsupported,
                      bdf + " has no VFIO device cdev (" + name.error().message +
                          "): the kernel lacks CONFIG_VFIO_DEVICE_CDEV (Linux 6.6 or later), so use the type1 "
                          "container: --iommu type1 (or auto)");
  const std::string path = dev_root + "/devices/" + *name;
  Result<int> opened = k->open(path);
  if (!opened) {
    if (opened.error().code == Errc::permission)
      return make_error(Errc::permission, "permission denied on " + path + " (the VFIO cdev of " + bdf +
                                              "): run as root, or give this user the node (chown USER " + path +
                                              ", or a udev rule for vfio)");
    if (opened.error().code == Errc::not_found)
      return make_error(Errc::not_found, "no " + path + " although sysfs lists " + *name + " for " + bdf +
                                             ": is devtmpfs mounted on /dev?");
    return std::move(opened).error();
  }
  FdGuard dfd(k.get(), *opened);
  if (Result<std::uint32_t> id = k->device_bind_iommufd(dfd.fd, iommufd); !id) {
    Error e = std::move(id).error();
    if (e.sys_errno == EBUSY) {  // DMA ownership of the group: another driver has it, or another opener
      Result<std::vector<GroupMember>> blocking = group_blockers(root, pci.iommu_group, bdf);
      if (blocking && !blocking->empty()) {
        interface_refused = false;  // type1 would refuse the group as well
        return not_viable(pci.iommu_group, bdf);
      }
      return os::with_errno(make_error(Errc::io_error, path + " is busy: " + bdf +
                                                           " is already in use through its VFIO group or cdev by "
                                                           "another process or container"),
                            EBUSY);
    }
    e.message = "binding " + bdf + " to " + iommu_path() + ": " + e.message;
    return e;
  }
  if (Status s = k->device_attach_ioas(dfd.fd, ioas); !s) {
    Error e = std::move(s).error();
    e.message = "attaching " + bdf + " to IOAS " + std::to_string(ioas) + ": " + e.message;
    return e;
  }
  interface_refused = false;  // the device is in; what fails from here fails over type1 too
  Result<IoasRanges> ranges = k->ioas_iova_ranges(iommufd, ioas);  // narrowed by this device now
  if (!ranges) return std::move(ranges).error();
  std::vector<IovaRange> usable;
  for (const auto& r : ranges->ranges) usable.push_back({r.first, r.last});
  if (usable.empty())
    return make_error(Errc::unsupported, "IOAS " + std::to_string(ioas) + " has no usable IOVA range with " + bdf);
  Result<IovaPlan> plan = plan_ranges(std::move(usable), pci.iommu_group, ranges->alignment, mask, bdf);
  if (!plan) return std::move(plan).error();  // closing the cdev detaches the device
  if (Status s = narrow_iova(*plan, bdf); !s) return s;
  FdGuard no_group(k.get(), -1);
  publish(GroupJoin{pci.iommu_group, -1, false}, no_group, pci, bdf, mask, dfd, plan->pgsizes);
  return {};
}

Status Container::Impl::kernel_map(std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes) {
  if (mode == IommuBackend::iommufd) return k->ioas_map(iommufd, ioas, vaddr, iova, bytes);
  return k->map_dma(container, vaddr, iova, bytes);
}

Result<std::uint64_t> Container::Impl::kernel_unmap(std::uint64_t iova, std::uint64_t bytes) {
  if (mode == IommuBackend::iommufd) return k->ioas_unmap(iommufd, ioas, iova, bytes);
  return k->unmap_dma(container, iova, bytes);
}

}  // namespace numacma::vfio
