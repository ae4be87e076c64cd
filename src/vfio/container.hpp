// src/vfio/container.hpp — one IOMMU address space for VFIO devices: a type1
// container (its groups, the IOMMU type) or an iommufd IOAS (devices through
// their cdevs: container_iommufd.cpp), the DMA mappings, and attach. Which
// one is chosen at the first attach (IommuBackend). What a device's fd reaches (regions,
// BARs, MMIO, config space) is vfio::DeviceAccess (device.hpp), one per
// attached device; the by-index calls below forward to it.
//
//   Container::create(topology)                 opens nothing yet
//   attach(bdf, mask)                           checks in this order, each with
//                                               an error that says what to do:
//     the device exists -> has an IOMMU group -> is bound to vfio-pci
//     -> /dev/vfio/vfio opens, API version, TYPE1v2 -> /dev/vfio/<group>
//     opens -> the group is viable -> SET_CONTAINER -> (first group) SET_IOMMU
//     -> the device fd -> usable IOVA ranges (IOVA_RANGE capability less
//     every group's reserved regions) -> the mask reaches one of them
//   map(vaddr, bytes, align, limit, what)       IOVA from IovaAllocator + MAP_DMA
//   unmap(iova, bytes)                          UNMAP_DMA + IOVA back
//   ~Container                                  every mapping undone, fds closed
//
// Several devices (groups) share the container and so its mappings: a group
// that joins later reaches every existing mapping (the kernel replays them
// into its IOMMU domain). Thread-safe: map/unmap and the report take one
// mutex (page-fallback buffers are the only run-time users); register
// access to a mapped BAR takes none (device.hpp). attach() is the exception:
// two attach() calls, or an attach() and find()/device()/the by-index device
// calls, must not overlap (the device table grows without a lock; the pool
// attaches at creation and in Pool::vfio_attach).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "numacma/result.hpp"
#include "topology/topology.hpp"
#include "vfio/device.hpp"
#include "vfio/iova.hpp"

namespace numacma::vfio {

struct Mapping {
  std::string what;
  std::uint64_t iova = 0;
  std::uint64_t bytes = 0;
  std::uintptr_t vaddr = 0;
  std::uint64_t map_ns = 0;   ///< how long VFIO_IOMMU_MAP_DMA took (pinning included)
};

/** Which kernel interface a Container speaks. automatic: iommufd when
 *  /dev/iommu opens and the first device has a VFIO cdev
 *  (<sysfs>/bus/pci/devices/BDF/vfio-dev/vfioN), else the type1 container.
 *  noiommu: VFIO's no-IOMMU mode (container_noiommu.cpp), never chosen
 *  automatically: groups /dev/vfio/noiommu-N in a container of type
 *  VFIO_NOIOMMU_IOMMU, which maps nothing (map() is refused): the devices
 *  reach physical memory unchecked, the caller hands them physical addresses. */
enum class IommuBackend { automatic, iommufd, type1, noiommu };
/** "auto", "iommufd", "type1", "noiommu". */
const char* backend_name(IommuBackend b) noexcept;

struct ContainerReport {
  std::string backend;             ///< "iommufd", "type1" or "noiommu" ("auto": no device yet)
  std::vector<IovaRange> ranges;
  std::uint64_t pgsizes = 0;
  std::int64_t dma_avail = -1;     ///< type1's DMA_AVAIL; -1 with iommufd (no such limit)
  std::vector<DeviceInfo> devices;
  std::vector<Mapping> mappings;   ///< by IOVA
};

class Container {
 public:
  /** dev_root: where vfio/, the group nodes and devices/ (the cdevs) are
   *  ("/dev/vfio"; iommufd is its sibling, "/dev/iommu"); kernel: the VFIO
   *  calls (nullptr: the real kernel, os_kernel()). */
  static Result<std::unique_ptr<Container>> create(const topo::Topology& topology,
                                                   std::string dev_root,
                                                   std::shared_ptr<Kernel> kernel = nullptr,
                                                   IommuBackend backend = IommuBackend::automatic);
  ~Container();
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  /** Adds a device (and its group, when new). mask: the device's DMA mask.
   *  bdf as topo::parse_bdf takes it ("05:00.0" is "0000:05:00.0"). */
  Status attach(std::string_view bdf, std::uint64_t mask);

  /** Maps [vaddr, vaddr + bytes) at an IOVA <= limit (the whole buffer's
   *  last byte), aligned to `align`; `what` names it in reports/errors. */
  Result<std::uint64_t> map(std::uintptr_t vaddr, std::uint64_t bytes, std::uint64_t align,
                            std::uint64_t limit, std::string_view what);
  /** Undoes a map() exactly. */
  Status unmap(std::uint64_t iova, std::uint64_t bytes);

  /** The backend in use (automatic until the first device is attached). */
  IommuBackend backend() const noexcept;

  /** The smallest DMA mask of the attached devices. */
  std::uint64_t min_mask() const noexcept;
  std::size_t device_count() const noexcept;
  /** Index of an attached device (either BDF form), -1 when none. */
  int find(std::string_view bdf) const noexcept;
  DeviceInfo device(int index) const;
  /** The attached device `index`'s access; not_found for no such index. */
  Result<DeviceAccess*> access(int index) const;

  // Device access by index: access(index), then the DeviceAccess call.
  Result<std::uint64_t> bar_size(int index, unsigned bar);
  Result<std::uint32_t> read32(int index, unsigned bar, std::uint64_t off);
  Status write32(int index, unsigned bar, std::uint64_t off, std::uint32_t v);
  Result<std::uint64_t> read64(int index, unsigned bar, std::uint64_t off);
  Status write64(int index, unsigned bar, std::uint64_t off, std::uint64_t v);
  Status config_read(int index, std::uint32_t off, void* out, std::size_t len);
  Status config_write(int index, std::uint32_t off, const void* in, std::size_t len);

  /** Ranges, page sizes, DMA_AVAIL read now, devices, mappings. */
  ContainerReport report() const;

  struct Impl;  // container.cpp

 private:
  explicit Container(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace numacma::vfio
