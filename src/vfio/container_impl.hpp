// src/vfio/container_impl.hpp — Container::Impl and the helpers its
// files share: container.cpp (the type1 container: groups, SET_IOMMU,
// MAP_DMA), container_iommufd.cpp (/dev/iommu, an IOAS, device cdevs) and
// container_noiommu.cpp (VFIO's no-IOMMU mode: groups, no mappings).
// Private to src/vfio.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "numacma/result.hpp"
#include "topology/topology.hpp"
#include "vfio/container.hpp"
#include "vfio/device.hpp"
#include "vfio/iova.hpp"
#include "vfio/kernel.hpp"

namespace numacma::vfio {

namespace detail {

std::string hex(std::uint64_t v);

/** "4 KiB", "8.0 MiB", "unlimited". */
std::string mib(std::uint64_t b);

/** The IOVA space a container has when the kernel reports no IOVA_RANGE
 *  capability: the 39 bits every VT-d/AMD-Vi IOMMU translates. */
inline constexpr std::uint64_t kNoCapabilityLast = (std::uint64_t{1} << 39) - 1;

/** How to turn VFIO's no-IOMMU mode on (a sentence). */
inline constexpr const char* kNoIommuModeHow =
    "Turn VFIO's no-IOMMU mode on (the kernel needs CONFIG_VFIO_NOIOMMU): echo 1 > "
    "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode, or vfio.enable_unsafe_noiommu_mode=1 "
    "on the kernel command line";

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

/** The group attach() brings the device in through. */
struct GroupJoin {
  int id = -1;
  int fd = -1;       ///< the group's fd, whether fresh or already in the container
  bool fresh = false;
};

/** What the container's IOVA space becomes with the group (plan_iova). */
struct IovaPlan {
  std::vector<IovaRange> usable;  ///< the group's usable ranges: a new allocator's
  std::vector<IovaRange> gone;    ///< what the group takes out of the current space
  std::uint64_t pgsizes = 0;
};

}  // namespace detail

struct Container::Impl {
  std::string root;      // sysfs
  std::string dev_root;  // /dev/vfio
  std::shared_ptr<Kernel> k;
  IommuBackend want = IommuBackend::automatic;
  IommuBackend mode = IommuBackend::automatic;  // automatic: no device yet
  // type1
  int container = -1;
  bool iommu_set = false;
  std::vector<detail::Group> groups;
  // iommufd
  int iommufd = -1;
  std::uint32_t ioas = 0;
  /** The last attach_iommufd failed in the interface itself (/dev/iommu, the
   *  cdev, BIND, ATTACH), not over the device or its mask: automatic may try
   *  type1 instead. */
  bool interface_refused = false;

  std::vector<std::unique_ptr<DeviceAccess>> devs;
  std::uint64_t pgsizes = 0;

  mutable std::mutex mu;  // allocator, mappings, locked bytes, pgsizes, the tables report() reads
  std::unique_ptr<IovaAllocator> iova;
  std::map<std::uint64_t, Mapping> mappings;  // by IOVA
  std::uint64_t mapped_bytes = 0;

  ~Impl();

  Result<topo::PciDevice> check_device(const std::string& bdf, std::uint64_t mask) const;
  /** A no-IOMMU group only with IommuBackend::noiommu, and that only with
   *  one (container_noiommu.cpp). */
  Status check_group_kind(const topo::PciDevice& pci) const;
  /** At the first attach: the backend `want` resolves to (auto: iommufd when
   *  /dev/iommu opens and the device has a cdev, else type1). */
  Status choose_backend(const std::string& bdf);
  // type1 (container.cpp)
  Status attach_type1(const std::string& bdf, std::uint64_t mask, const topo::PciDevice& pci);
  Status open_container();
  Result<detail::GroupJoin> join_group(int group, const std::string& bdf, detail::FdGuard& fresh);
  Error group_open_error(const std::string& gpath, int group, const std::string& bdf, Error e) const;
  Status set_iommu(int group_fd);
  void leave_group(const detail::GroupJoin& g);
  Result<detail::IovaPlan> plan_iova(int group, std::uint64_t mask, const std::string& bdf) const;
  /** The plan for kernel ranges (empty: none reported) less the group's reserved regions. */
  Result<detail::IovaPlan> plan_ranges(std::vector<IovaRange> ranges, int group, std::uint64_t pgsizes,
                                       std::uint64_t mask, const std::string& bdf) const;
  Status narrow_iova(const detail::IovaPlan& plan, const std::string& bdf);
  void publish(const detail::GroupJoin& g, detail::FdGuard& fresh, const topo::PciDevice& pci,
               const std::string& bdf, std::uint64_t mask, detail::FdGuard& dfd, std::uint64_t pgsizes);
  Result<std::vector<IovaRange>> reserved_regions(int group) const;
  Error not_viable(int group, const std::string& bdf) const;
  // iommufd (container_iommufd.cpp)
  std::string iommu_path() const;
  /** "vfioN" of the device's cdev, from sysfs; not_found when it has none. */
  Result<std::string> cdev_name(const std::string& bdf) const;
  Status open_iommufd();
  Status attach_iommufd(const std::string& bdf, std::uint64_t mask, const topo::PciDevice& pci);
  // no-IOMMU mode (container_noiommu.cpp): open_container, join_group and
  // set_iommu as type1's, for VFIO_NOIOMMU_IOMMU and /dev/vfio/noiommu-N
  Status attach_noiommu(const std::string& bdf, std::uint64_t mask, const topo::PciDevice& pci);
  // the mapping calls of whichever backend is in use
  Status kernel_map(std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes);
  Result<std::uint64_t> kernel_unmap(std::uint64_t iova, std::uint64_t bytes);
};

}  // namespace numacma::vfio
