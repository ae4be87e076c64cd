// src/os/iommufd.hpp — the iommufd ioctls (Linux 6.2+, /dev/iommu) and the
// VFIO device-cdev calls that join a device to it (6.6+), one call each.
//
//   /dev/iommu            IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES,
//                         IOMMU_IOAS_MAP (FIXED_IOVA), IOMMU_IOAS_UNMAP
//   /dev/vfio/devices/vfioN
//                         VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT;
//                         then the same region calls as a group's device fd
//                         (os/vfio.hpp)
//
// The build machine's <linux/iommufd.h> may be older than the ABI (Debian
// 12 ships 6.1's headers, which have none of it): iommufd.cpp declares the
// structures of the stable ABI itself, each pinned by static_asserts on its
// size and field offsets. Same error convention as os.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "numacma/result.hpp"

namespace numacma::os::iommufd {

/** IOMMU_IOAS_ALLOC: a new, empty I/O address space; its id. */
Result<std::uint32_t> ioas_alloc(int iommufd);

struct IovaRanges {
  struct Range {
    std::uint64_t first, last;
  };
  std::vector<Range> ranges;     ///< where IOMMU_IOAS_MAP may place mappings now
  std::uint64_t alignment = 0;   ///< out_iova_alignment: IOVA and length must be multiples
};
/** IOMMU_IOAS_IOVA_RANGES (grown and asked again on EMSGSIZE). The ranges
 *  narrow with each device attached: ask after every attach. */
Result<IovaRanges> ioas_iova_ranges(int iommufd, std::uint32_t ioas);

/** IOMMU_IOAS_MAP with FIXED_IOVA | READABLE | WRITEABLE: [vaddr, vaddr +
 *  bytes) at exactly iova (pinned, as VFIO_IOMMU_MAP_DMA pins). */
Status ioas_map_fixed(int iommufd, std::uint32_t ioas, const void* vaddr, std::uint64_t iova,
                      std::uint64_t bytes);
/** IOMMU_IOAS_UNMAP of [iova, iova + bytes); the bytes the kernel unmapped. */
Result<std::uint64_t> ioas_unmap(int iommufd, std::uint32_t ioas, std::uint64_t iova, std::uint64_t bytes);

/** VFIO_DEVICE_BIND_IOMMUFD on a device cdev's fd: its device id. */
Result<std::uint32_t> device_bind(int device, int iommufd);
/** VFIO_DEVICE_ATTACH_IOMMUFD_PT: the device's DMA translated by `ioas`. */
Status device_attach(int device, std::uint32_t ioas);

}  // namespace numacma::os::iommufd
