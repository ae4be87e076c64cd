// src/vfio/kernel.hpp — what a Container asks of the kernel's VFIO, as an
// interface: the real one forwards to src/os/vfio.hpp (os_kernel()); unit
// tests give a fake that keeps its own IOMMU page table, DMA_AVAIL counter,
// BARs and config space, so the container and the pool in vfio mode are
// tested (under the sanitizers too) on a machine without an IOMMU.
//
// File descriptors are plain ints here, closed through close(): a fake's
// numbers must never reach the real close(2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "numacma/result.hpp"
#include "os/iommufd.hpp"
#include "os/vfio.hpp"

namespace numacma::vfio {

using IommuInfo = os::vfio::IommuInfo;
using RegionInfo = os::vfio::RegionInfo;
using IoasRanges = os::iommufd::IovaRanges;

class Kernel {
 public:
  virtual ~Kernel() = default;
  /** open(path, O_RDWR): /dev/vfio/vfio or /dev/vfio/<group>. */
  virtual Result<int> open(const std::string& path) = 0;
  virtual void close(int fd) noexcept = 0;
  virtual Result<int> api_version(int container) = 0;
  virtual Result<bool> has_type1v2(int container) = 0;
  virtual Result<bool> group_viable(int group) = 0;
  virtual Status group_set_container(int group, int container) = 0;
  virtual Status group_unset_container(int group) = 0;
  virtual Status set_iommu_type1v2(int container) = 0;
  virtual Result<IommuInfo> iommu_info(int container) = 0;
  virtual Status map_dma(int container, std::uintptr_t vaddr, std::uint64_t iova, std::uint64_t bytes) = 0;
  virtual Result<std::uint64_t> unmap_dma(int container, std::uint64_t iova, std::uint64_t bytes) = 0;
  virtual Result<int> device_fd(int group, const std::string& bdf) = 0;
  virtual Result<RegionInfo> region_info(int device, std::uint32_t index) = 0;
  virtual std::uint32_t config_region_index() const noexcept = 0;
  virtual Status read_at(int fd, std::uint64_t offset, void* out, std::size_t len) = 0;
  virtual Status write_at(int fd, std::uint64_t offset, const void* in, std::size_t len) = 0;
  virtual Result<void*> map_region(int device, const RegionInfo& r) = 0;
  virtual void unmap_region(void* addr, std::uint64_t bytes) noexcept = 0;

  // iommufd (/dev/iommu) and a device's cdev (/dev/vfio/devices/vfioN), both
  // opened with open(): os/iommufd.hpp. A Kernel without them (an older
  // fake) answers unsupported.
  virtual Result<std::uint32_t> ioas_alloc(int /*iommufd*/) { return no_iommufd("IOMMU_IOAS_ALLOC"); }
  virtual Result<IoasRanges> ioas_iova_ranges(int /*iommufd*/, std::uint32_t /*ioas*/) {
    return no_iommufd("IOMMU_IOAS_IOVA_RANGES");
  }
  virtual Status ioas_map(int /*iommufd*/, std::uint32_t /*ioas*/, std::uintptr_t /*vaddr*/, std::uint64_t /*iova*/,
                          std::uint64_t /*bytes*/) {
    return no_iommufd("IOMMU_IOAS_MAP");
  }
  virtual Result<std::uint64_t> ioas_unmap(int /*iommufd*/, std::uint32_t /*ioas*/, std::uint64_t /*iova*/,
                                           std::uint64_t /*bytes*/) {
    return no_iommufd("IOMMU_IOAS_UNMAP");
  }
  virtual Result<std::uint32_t> device_bind_iommufd(int /*device*/, int /*iommufd*/) {
    return no_iommufd("VFIO_DEVICE_BIND_IOMMUFD");
  }
  virtual Status device_attach_ioas(int /*device*/, std::uint32_t /*ioas*/) {
    return no_iommufd("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
  }

  // VFIO's no-IOMMU mode (the type1 container's calls otherwise): a Kernel
  // without it (an older fake) says the mode is off.
  virtual Result<bool> has_noiommu(int /*container*/) { return false; }
  virtual Status set_iommu_noiommu(int /*container*/) {
    return make_error(Errc::unsupported, "VFIO_SET_IOMMU(VFIO_NOIOMMU_IOMMU): this Kernel has no no-IOMMU mode");
  }

  /** RLIMIT_MEMLOCK (UINT64_MAX: unlimited). */
  virtual std::uint64_t memlock_limit() noexcept = 0;
  /** True when pinning is not limited by RLIMIT_MEMLOCK (root). */
  virtual bool can_lock_unlimited() noexcept = 0;

 private:
  static Error no_iommufd(const char* call) {
    return make_error(Errc::unsupported, std::string(call) + ": this Kernel has no iommufd");
  }
};

/** The real kernel (src/os/vfio.hpp). */
std::shared_ptr<Kernel> os_kernel();

}  // namespace numacma::vfio
