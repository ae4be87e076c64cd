// src/os/vfio.hpp — the VFIO ioctls (type1 IOMMU), wrapped one call each.
//
//   /dev/vfio/vfio        container: API version, TYPE1v2 and NOIOMMU extensions,
//                         SET_IOMMU, GET_INFO (IOVA ranges, DMA_AVAIL), MAP_DMA /
//                         UNMAP_DMA
//   /dev/vfio/<group>     group (noiommu-<group> in no-IOMMU mode): GET_STATUS
//                         (viable?), SET_CONTAINER, GET_DEVICE_FD
//   device fd             REGION_INFO, pread/pwrite/mmap of a region (BARs, config)
//
// Same error convention as os.hpp: every call returns a Result whose message
// names the ioctl, its arguments and strerror(errno). The logic that decides
// what to do with them (and what to tell the user) lives in src/vfio/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "numacma/result.hpp"
#include "os/fd.hpp"

namespace numacma::os::vfio {

using Fd = numacma::os::Fd;  // os/fd.hpp; files are opened with os::open_rw (os/shared.hpp)

/** VFIO_GET_API_VERSION. */
Result<int> api_version(int container);
/** VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU) != 0. */
Result<bool> has_type1v2(int container);
/** VFIO_GROUP_GET_STATUS: true when VFIO_GROUP_FLAGS_VIABLE is set. */
Result<bool> group_viable(int group);
/** VFIO_GROUP_SET_CONTAINER. */
Status group_set_container(int group, int container);
/** VFIO_GROUP_UNSET_CONTAINER. */
Status group_unset_container(int group);
/** VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU). */
Status set_iommu_type1v2(int container);
/** VFIO_CHECK_EXTENSION(VFIO_NOIOMMU_IOMMU) != 0: the kernel has VFIO's
 *  no-IOMMU mode and it is on (vfio's enable_unsafe_noiommu_mode). */
Result<bool> has_noiommu(int container);
/** VFIO_SET_IOMMU(VFIO_NOIOMMU_IOMMU): a container of no-IOMMU groups, which
 *  maps nothing (CAP_SYS_RAWIO). */
Status set_iommu_noiommu(int container);

struct IommuInfo {
  std::uint64_t pgsizes = 0;
  struct Range {
    std::uint64_t first, last;
  };
  std::vector<Range> ranges;   ///< IOVA_RANGE capability; empty when absent
  std::int64_t dma_avail = -1; ///< DMA_AVAIL capability; -1 when absent
};
/** VFIO_IOMMU_GET_INFO with its capability chain. */
Result<IommuInfo> iommu_info(int container);

/** VFIO_IOMMU_MAP_DMA (read + write) of [vaddr, vaddr + bytes) at iova. */
Status map_dma(int container, const void* vaddr, std::uint64_t iova, std::uint64_t bytes);
/** VFIO_IOMMU_UNMAP_DMA; returns the bytes the kernel unmapped. */
Result<std::uint64_t> unmap_dma(int container, std::uint64_t iova, std::uint64_t bytes);

/** VFIO_GROUP_GET_DEVICE_FD. */
Result<Fd> device_fd(int group, const std::string& bdf);

struct RegionInfo {
  std::uint32_t index = 0;
  std::uint32_t flags = 0;
  std::uint64_t size = 0;
  std::uint64_t offset = 0;   ///< in the device fd
  bool mmap_ok() const noexcept;
  bool readable() const noexcept;
  bool writable() const noexcept;
};
/** VFIO_DEVICE_GET_REGION_INFO for a region index (BAR0..5 = 0..5,
 *  config = VFIO_PCI_CONFIG_REGION_INDEX). */
Result<RegionInfo> region_info(int device, std::uint32_t index);
/** The config region's index. */
std::uint32_t config_region_index() noexcept;

/** pread / pwrite exactly len bytes at the offset (error on short I/O). */
Status read_at(int fd, std::uint64_t offset, void* out, std::size_t len);
Status write_at(int fd, std::uint64_t offset, const void* in, std::size_t len);

/** mmap(PROT_READ|PROT_WRITE, MAP_SHARED) of a region; unmap with os::unmap. */
Result<void*> map_region(int device, const RegionInfo& r);

/** getrlimit(RLIMIT_MEMLOCK).rlim_cur; UINT64_MAX when unlimited. */
std::uint64_t memlock_limit() noexcept;
/** True when the process may lock memory beyond the limit (CAP_IPC_LOCK,
 *  approximated by euid 0). */
bool can_lock_unlimited() noexcept;

}  // namespace numacma::os::vfio
