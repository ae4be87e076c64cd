// src/pool/iova_space.hpp — where a pool's IOVAs come from and who maps them
// (private to the library).
//
//   IovaSpace            map(va, bytes, align, limit, what) -> IOVA, unmap
//   ├── container_space  vfio mode: numacma's own VFIO container
//   │                    (src/vfio/container.hpp chooses and maps)
//   └── external_space   Pool::use_external_iommu: an IovaAllocator over the
//                        ranges the framework gives, ExternalIommu::map/unmap
//                        (DPDK's VFIO container: src/dpdk/)
//
// A pool with a space hands out IOVAs only: every area is one IOVA range,
// page-fallback buffers are mapped below the device's own mask and unmapped
// before their pages go back. Thread-safe: each space takes its own lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "numacma/numacma.hpp"
#include "numacma/result.hpp"

namespace numacma::vfio {
class Container;
}

namespace numacma::detail {

class IovaSpace {
 public:
  virtual ~IovaSpace() = default;
  /** Maps [va, va + bytes) at an IOVA aligned to `align` whose last byte is
   *  at most `limit`; `what` names the mapping in reports and errors. */
  virtual Result<std::uint64_t> map(std::uintptr_t va, std::uint64_t bytes, std::uint64_t align,
                                    std::uint64_t limit, std::string_view what) = 0;
  /** Undoes exactly one map(). */
  virtual Status unmap(std::uint64_t iova, std::uint64_t bytes) = 0;
  /** The limit an area's mapping must respect (vfio: the narrowest mask of
   *  the attached devices; external: none, lowest-first keeps areas low). */
  virtual std::uint64_t area_limit() const noexcept = 0;
  /** "vfio: mapped at IOVA 0x... for 2 device(s)" and the like. */
  virtual std::string describe_mapping(std::uint64_t iova) const = 0;
};

/** vfio mode: the container maps. It must outlive the space. */
std::unique_ptr<IovaSpace> container_space(vfio::Container& container);

/** Pool::use_external_iommu: invalid_argument without an iommu or a usable
 *  range. Unmaps whatever is still mapped when destroyed. */
Result<std::unique_ptr<IovaSpace>> external_space(ExternalIommuSpec spec);

}  // namespace numacma::detail
