// src/vfio/container_noiommu.cpp — VFIO's no-IOMMU mode (IommuBackend::noiommu).
//
// With vfio's enable_unsafe_noiommu_mode on, vfio-pci gives a device that no
// IOMMU translates for a group of its own, named "vfio-noiommu" in sysfs,
// whose node is /dev/vfio/noiommu-<group> (the kernel's drivers/vfio/group.c).
// Such groups join only a container whose IOMMU type is VFIO_NOIOMMU_IOMMU,
// and nothing else joins that container (drivers/vfio/container.c). The type
// has no MAP_DMA: the device reaches physical memory unchecked, so its DMA
// handles are physical addresses (the pool in phys mode, hugetlb areas read
// as root). Opening the group, SET_CONTAINER and SET_IOMMU need CAP_SYS_RAWIO.
//
//   check_group_kind  a no-IOMMU group only when asked for, and only such groups
//   attach_noiommu    open_container (API version, the NOIOMMU extension) ->
//                     join_group (/dev/vfio/noiommu-N, viable, SET_CONTAINER,
//                     SET_IOMMU(VFIO_NOIOMMU_IOMMU)) -> the device fd ->
//                     publish; no IOVA space, no mapping
#include <string>

#include "vfio/container.hpp"
#include "vfio/container_impl.hpp"

namespace numacma::vfio {

using namespace detail;

Status Container::Impl::check_group_kind(const topo::PciDevice& pci) const {
  const std::string group = std::to_string(pci.iommu_group);
  if (want == IommuBackend::noiommu && !pci.noiommu_group)
    return make_error(Errc::unsupported,
                      pci.bdf + " is behind an IOMMU (group " + group +
                          "): no-IOMMU mode is only for devices no IOMMU translates for; leave out "
                          "--iommu noiommu (auto, iommufd or type1 map its DMA safely)");
  if (want != IommuBackend::noiommu && pci.noiommu_group)
    return make_error(Errc::unsupported,
                      "no IOMMU: " + pci.bdf + " is in VFIO's no-IOMMU group " + group + " (/dev/vfio/noiommu-" +
                          group + "): no IOMMU translates for it, so the " + backend_name(want) +
                          " interface cannot map its DMA. Either use phys mode (--backing hugetlb as root, "
                          "no --vfio), or accept that the device can write anywhere in memory and ask for "
                          "VFIO's no-IOMMU mode explicitly: --iommu noiommu (docs/vfio.md)");
  return {};
}

Status Container::Impl::attach_noiommu(const std::string& bdf, std::uint64_t mask, const topo::PciDevice& pci) {
  if (Status s = open_container(); !s) return s;
  FdGuard fresh(k.get(), -1);  // a group opened here, closed unless published
  Result<GroupJoin> g = join_group(pci.iommu_group, bdf, fresh);
  if (!g) return std::move(g).error();
  Result<int> dfd_r = k->device_fd(g->fd, bdf);
  if (!dfd_r) {
    leave_group(*g);
    return std::move(dfd_r).error();
  }
  FdGuard dfd(k.get(), *dfd_r);
  publish(*g, fresh, pci, bdf, mask, dfd, 0);
  return {};
}

}  // namespace numacma::vfio
