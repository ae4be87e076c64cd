// src/vfio/device.hpp — one device of a VFIO container: what its fd reaches.
//
//   DeviceAccess(kernel, info, fd)     takes the device fd (VFIO_GROUP_GET_DEVICE_FD)
//   bar_size(bar)                      REGION_INFO of BAR0..5, read once and kept
//   read32/64, write32/64(bar, off)    through the BAR's mmap when the region
//                                      allows one, else pread/pwrite on the fd
//   config_read/write(off, ...)        the PCI config space region
//   ~DeviceAccess                      BAR mappings undone, the fd closed
//
// The container (container.hpp) owns one per attached device and closes it
// before the device's group leaves. Thread-safe: the first use of a BAR takes
// a mutex (its REGION_INFO and mmap); a register access after that takes
// none, so MMIO on the hot path never waits on another thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "numacma/result.hpp"
#include "vfio/kernel.hpp"

namespace numacma::vfio {

struct DeviceInfo {
  std::string bdf;
  int group = -1;
  int node = -1;              ///< the BDF's numa_node (-1: none)
  std::uint64_t dma_mask = 0;
};

class DeviceAccess {
 public:
  /** Takes `fd`; `kernel` must outlive this object. */
  DeviceAccess(Kernel& kernel, DeviceInfo info, int fd) noexcept;
  ~DeviceAccess();
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;

  const DeviceInfo& info() const noexcept { return info_; }

  /** not_found for a BAR the device does not have, invalid_argument past BAR5. */
  Result<std::uint64_t> bar_size(unsigned bar);
  /** invalid_argument for an offset that is misaligned or past the BAR. */
  Result<std::uint32_t> read32(unsigned bar, std::uint64_t off);
  Status write32(unsigned bar, std::uint64_t off, std::uint32_t v);
  Result<std::uint64_t> read64(unsigned bar, std::uint64_t off);
  Status write64(unsigned bar, std::uint64_t off, std::uint64_t v);
  Status config_read(std::uint32_t off, void* out, std::size_t len);
  Status config_write(std::uint32_t off, const void* in, std::size_t len);

 private:
  static constexpr unsigned kRegions = 6;  // BAR0..BAR5

  struct Region {
    bool known = false;
    RegionInfo info;
    void* map = nullptr;  // mmap of the region, when it allows one
  };

  Result<Region*> region(unsigned bar);
  template <class T>
  Result<T> reg_read(unsigned bar, std::uint64_t off);
  template <class T>
  Status reg_write(unsigned bar, std::uint64_t off, T v);
  Result<RegionInfo> config_region(std::uint32_t off, std::size_t len, const char* what);

  Kernel& k_;
  DeviceInfo info_;
  int fd_ = -1;
  std::array<Region, kRegions> bars_;
  std::mutex bars_mu_;
};

}  // namespace numacma::vfio
